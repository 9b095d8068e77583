package security

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/agent"
)

// crashRT is a runtime whose containers exit with code 1 as soon as they
// start (a crash loop), counting what the agent asks of it.
type crashRT struct {
	mu      sync.Mutex
	exits   map[string]chan *agent.ExitInfo
	pid     int
	creates int
	deletes int
}

func (r *crashRT) Create(ctx context.Context, s *agent.RunSpec) (agent.Proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.creates++
	r.pid++
	r.exits[s.Spec.Name] = make(chan *agent.ExitInfo, 1)
	return agent.Proc{Pid: 100000 + r.pid, StartTime: 1}, nil
}
func (r *crashRT) Start(ctx context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exits[name] <- &agent.ExitInfo{Code: 1}
	return nil
}
func (r *crashRT) Kill(ctx context.Context, name string, sig syscall.Signal) error { return nil }
func (r *crashRT) Wait(ctx context.Context, name string, p agent.Proc) (*agent.ExitInfo, error) {
	r.mu.Lock()
	ch := r.exits[name]
	r.mu.Unlock()
	select {
	case e := <-ch:
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (r *crashRT) Delete(ctx context.Context, name string) error {
	r.mu.Lock()
	r.deletes++
	r.mu.Unlock()
	return nil
}
func (r *crashRT) List(ctx context.Context) ([]agent.RuntimeState, error) { return nil, nil }
func (r *crashRT) Exec(ctx context.Context, name string, args []string) (int, error) {
	return 0, nil
}
func (r *crashRT) Stats(ctx context.Context, name string) (agent.Stats, error) {
	return agent.Stats{Name: name}, nil
}
func (r *crashRT) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.creates, r.deletes
}

type nopStore struct{}

func (nopStore) Resolve(ctx context.Context, ref string) (*agent.Image, error) {
	return &agent.Image{Name: ref, Digest: "d-" + ref}, nil
}
func (nopStore) Mount(ctx context.Context, img *agent.Image, user string) (string, error) {
	return "/", nil
}
func (nopStore) Release(ctx context.Context, img *agent.Image, user string) error { return nil }

// stepClock is a fake clock: the test moves it to the next timer.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*stepTimer
	asked  []time.Duration
}

type stepTimer struct {
	c       *stepClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *stepTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) agent.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &stepTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.asked = append(c.asked, d)
	return t
}

// next fires the earliest pending timer (advancing time to it); false if
// none is pending.
func (c *stepClock) next() bool {
	c.mu.Lock()
	var first *stepTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		keep = append(keep, t)
		if first == nil || t.at.Before(first.at) {
			first = t
		}
	}
	c.timers = keep
	if first == nil {
		c.mu.Unlock()
		return false
	}
	first.stopped = true
	if first.at.After(c.now) {
		c.now = first.at
	}
	c.mu.Unlock()
	first.f()
	return true
}

func (c *stepClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// TestCrashLoopFakeClock runs the agent (in process, with a runtime whose
// container crashes at once) for 10 minutes of fake clock: restarts must
// follow the exponential backoff (no restart without its delay, delays
// never shrinking, capped), and goroutines, pending timers, heap and the
// state file must not grow with the restarts.
func TestCrashLoopFakeClock(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "otok")
	os.WriteFile(cfg, []byte("config container crasher\n\toption image 'img'\n\tlist command /bin/false\n\toption restart always\n"), 0o644)
	rt := &crashRT{exits: map[string]chan *agent.ExitInfo{}}
	clock := &stepClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	start := clock.now
	a := agent.New(agent.Options{ConfigPath: cfg, StateDir: filepath.Join(dir, "state"), Runtime: rt, Store: nopStore{},
		Clock: clock, Log: log.New(io.Discard, "", 0)})
	a.Load()
	if _, err := a.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	var violations []string
	type sample struct {
		fake       time.Duration
		goroutines int
		heap       uint64
		state      int64
		timers     int
	}
	var samples []sample
	take := func() sample {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var sz int64
		filepath.Walk(filepath.Join(dir, "state"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				sz += fi.Size()
			}
			return nil
		})
		return sample{clock.Now().Sub(start), runtime.NumGoroutine(), ms.HeapAlloc, sz, clock.pending()}
	}
	// Drive: wait (real time) for the agent to arm its next timer, fire it.
	for clock.Now().Sub(start) < 10*time.Minute {
		deadline := time.Now().Add(5 * time.Second)
		for clock.pending() == 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		if clock.pending() == 0 {
			violations = append(violations, fmt.Sprintf("no restart timer armed at %v of fake time", clock.Now().Sub(start)))
			break
		}
		if clock.pending() > 2 {
			violations = append(violations, fmt.Sprintf("%d timers pending at once", clock.pending()))
		}
		clock.next()
		time.Sleep(5 * time.Millisecond) // let the restart and its exit run
		if c, _ := rt.counts(); c == 2 || c%5 == 0 {
			samples = append(samples, take())
		}
	}
	time.Sleep(50 * time.Millisecond)
	samples = append(samples, take())
	creates, deletes := rt.counts()
	clock.mu.Lock()
	asked := append([]time.Duration(nil), clock.asked...)
	clock.mu.Unlock()
	// Backoff: each delay ≥ the previous (until the cap), ≥ BackoffMin,
	// ≤ BackoffMax; one create per fired delay (plus the first start).
	for i, d := range asked {
		if d < agent.BackoffMin || d > agent.BackoffMax {
			violations = append(violations, fmt.Sprintf("delay %d is %v, outside [%v, %v]", i, d, agent.BackoffMin, agent.BackoffMax))
		}
		if i > 0 && d < asked[i-1] {
			violations = append(violations, fmt.Sprintf("delay %d (%v) shorter than the one before (%v)", i, d, asked[i-1]))
		}
	}
	var sum time.Duration
	maxCreates := 1
	for _, d := range asked {
		sum += d
		if sum <= 10*time.Minute {
			maxCreates++
		}
	}
	if creates > maxCreates+1 {
		violations = append(violations, fmt.Sprintf("%d starts in 10 min, backoff allows %d", creates, maxCreates))
	}
	if creates < 5 {
		violations = append(violations, fmt.Sprintf("only %d starts in 10 min of crash loop", creates))
	}
	if creates-deletes > 1 {
		violations = append(violations, fmt.Sprintf("%d creates but %d deletes (runtime state piling up)", creates, deletes))
	}
	first, last := samples[0], samples[len(samples)-1]
	if last.goroutines > first.goroutines+3 {
		violations = append(violations, fmt.Sprintf("goroutines %d -> %d", first.goroutines, last.goroutines))
	}
	if last.heap > first.heap+2<<20 {
		violations = append(violations, fmt.Sprintf("heap %d -> %d bytes", first.heap, last.heap))
	}
	if last.state > first.state*2+4096 {
		violations = append(violations, fmt.Sprintf("state files %d -> %d bytes", first.state, last.state))
	}
	detail := fmt.Sprintf("%d starts over %v of fake clock, delays %v; goroutines %d->%d, heap %d->%d KiB, state %d->%d B",
		creates, last.fake.Round(time.Second), asked, first.goroutines, last.goroutines, first.heap>>10, last.heap>>10, first.state, last.state)
	for _, v := range violations {
		t.Error(v)
		detail += "; " + v
	}
	record(t, "faults", faultRec{"crash loop, 10 min of fake clock (backoff respected, no resource growth)", 1, min(len(violations), 1), detail})
	t.Log(detail)
}
