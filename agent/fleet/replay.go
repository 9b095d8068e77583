package fleet

import (
	"fmt"
	"sync"
	"time"
)

// Replay protection for commands: a command is accepted only if it was
// issued no more than Skew in the future, its deadline has not passed, and
// the deadline is at most MaxDeadline after issue; its request id is then
// remembered until deadline + Skew, so within that window a replay is
// recognised (and answered from the cached final reply: retries are
// idempotent), and after it the command is expired anyway.
const (
	Skew        = 2 * time.Minute
	MaxDeadline = time.Hour
	maxSeen     = 4096 // request ids remembered at most; beyond, new commands get busy
	maxCached   = 4 << 10
)

type seenEntry struct {
	until time.Time
	reply []byte // final reply, if small; nil while running
}

type replayGuard struct {
	mu   sync.Mutex
	seen map[string]*seenEntry
}

func newReplayGuard() *replayGuard { return &replayGuard{seen: map[string]*seenEntry{}} }

// admit checks times and records id. If id was seen, it returns the cached
// final reply (nil if the command is still running) and a replay error.
func (g *replayGuard) admit(c *Command, now time.Time) ([]byte, error) {
	issued := time.UnixMilli(int64(c.Issued))
	deadline := time.UnixMilli(int64(c.Deadline))
	if issued.After(now.Add(Skew)) {
		return nil, &Error{Code: CodeExpired, Msg: fmt.Sprintf("command %s issued %s in the future (skew limit %s)", c.ID, issued.Sub(now).Round(time.Second), Skew)}
	}
	if !deadline.After(now) {
		return nil, &Error{Code: CodeExpired, Msg: fmt.Sprintf("command %s: deadline passed %s ago", c.ID, now.Sub(deadline).Round(time.Millisecond))}
	}
	if deadline.Sub(issued) > MaxDeadline {
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("command %s: deadline %s after issue, limit %s", c.ID, deadline.Sub(issued).Round(time.Second), MaxDeadline)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.seen[c.ID]; ok && e.until.After(now) {
		return e.reply, &Error{Code: CodeReplay, Msg: fmt.Sprintf("request id %s already seen; not run again", c.ID)}
	}
	if len(g.seen) >= maxSeen {
		for id, e := range g.seen {
			if !e.until.After(now) {
				delete(g.seen, id)
			}
		}
		if len(g.seen) >= maxSeen {
			return nil, &Error{Code: CodeBusy, Msg: fmt.Sprintf("%d request ids in the replay window", maxSeen)}
		}
	}
	g.seen[c.ID] = &seenEntry{until: deadline.Add(Skew)}
	return nil, nil
}

// done caches the final reply of id for idempotent retries.
func (g *replayGuard) done(id string, reply []byte) {
	if len(reply) > maxCached {
		return
	}
	g.mu.Lock()
	if e, ok := g.seen[id]; ok {
		e.reply = reply
	}
	g.mu.Unlock()
}
