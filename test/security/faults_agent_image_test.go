package security

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/agent"
)

// TestKill9AgentImageOps kills the agent with SIGKILL at random moments of
// an image import and of an image rm + gc that it performs for a client
// (its socket API, as the CLI routes them to a running agent), restarts
// it, and checks after each restart: every listed image verifies, no
// temporary file survives the next command, the trial's image can be
// removed and, after a gc, the store is back to its baseline tree (no
// half image, no orphan blob); the sentinel kept running with the same
// pid and mounts under the installation did not grow.
func TestKill9AgentImageOps(t *testing.T) {
	a := newAgentWorld(t)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	signer := filepath.Join(a.dir, "signer")
	if out, err := a.otok("key", "gen", signer).CombinedOutput(); err != nil {
		t.Fatalf("key gen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(signer + ".pub")
	os.WriteFile(filepath.Join(a.keys, "signer.pub"), pub, 0o644)
	noise := filepath.Join(t.TempDir(), "noise")
	os.MkdirAll(filepath.Join(noise, "data"), 0o755)
	blob := make([]byte, 12<<20)
	rng.Read(blob)
	os.WriteFile(filepath.Join(noise, "data", "blob"), blob, 0o644)
	big := filepath.Join(a.dir, "big.otok")
	if out, err := a.otok("image", "build", "--from", noise, "--name", "big", "--version", "1",
		"--key", signer+".key", "-o", big, "--comp", "gzip").CombinedOutput(); err != nil {
		t.Fatalf("image build: %v %s", err, out)
	}

	a.configFor([]string{"sentinel"})
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	sentinel := a.name("sentinel")
	sentPid := a.runningPid(sentinel)
	sock := agent.SocketFor("", a.state, "")
	call := func(timeout time.Duration, f func(ctx context.Context, c *agent.Client) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := agent.Dial(ctx, sock)
		if err != nil {
			return err
		}
		defer c.Close()
		return f(ctx, c)
	}
	importBig := func(ctx context.Context, c *agent.Client) error { _, err := c.ImageImport(ctx, big); return err }
	rmBig := func(ctx context.Context, c *agent.Client) error {
		if err := c.ImageRemove(ctx, "big"); err != nil {
			return err
		}
		_, err := c.ImageGC(ctx)
		return err
	}
	// Baseline: the store with the sentinel's image only; one import and
	// rm + gc through the agent measure the windows the kills land in.
	if err := call(time.Minute, func(ctx context.Context, c *agent.Client) error { _, err := c.ImageGC(ctx); return err }); err != nil {
		t.Fatalf("agent gc: %v", err)
	}
	baseline := storeTree(a.store)
	t0 := time.Now()
	if err := call(2*time.Minute, importBig); err != nil {
		t.Fatalf("agent image import: %v; log: %s", err, tail(a.log.String(), 3))
	}
	importTime := time.Since(t0)
	t0 = time.Now()
	if err := call(time.Minute, rmBig); err != nil {
		t.Fatalf("agent image rm + gc: %v", err)
	}
	rmTime := time.Since(t0)
	if got := storeTree(a.store); got != baseline {
		t.Fatalf("store not back to its baseline after import, rm and gc:\n%s", lineDiff(baseline, got))
	}
	baseMounts := len(mountsUnder(a.dir))

	n := trials()
	violations := 0
	perOp, killed := map[string]int{}, map[string]int{}
	var examples []string
	viol := func(i int, op, f string, args ...any) {
		violations++
		msg := fmt.Sprintf("trial %d (%s): %s", i, op, fmt.Sprintf(f, args...))
		if len(examples) < 5 {
			examples = append(examples, msg)
		}
		t.Error(msg)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		op := []string{"import", "image rm+gc"}[rng.Intn(2)]
		perOp[op]++
		fn, window := importBig, importTime
		if op == "image rm+gc" {
			if err := call(2*time.Minute, importBig); err != nil {
				viol(i, op, "setup import: %v", err)
				continue
			}
			fn, window = rmBig, rmTime
		}
		done := make(chan error, 1)
		go func() { done <- call(2*time.Minute, fn) }()
		time.Sleep(time.Duration(rng.Int63n(int64(window)*9/10 + 1)))
		a.kill9()
		if err := <-done; err != nil {
			killed[op]++
		}
		if err := a.start(); err != nil {
			viol(i, op, "agent restart: %v", err)
			continue
		}
		// The next commands see a consistent store.
		out, err := a.otok("image", "ls", "--json").Output()
		if err != nil {
			viol(i, op, "image ls after the restart: %v", err)
			continue
		}
		var imgs []struct{ Name, Digest string }
		json.Unmarshal(out, &imgs)
		for _, im := range imgs {
			if o, err := a.otok("image", "inspect", "--verify", im.Digest).CombinedOutput(); err != nil {
				viol(i, op, "image %s does not verify: %s", im.Name, lastLine(string(o)))
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(a.store, "tmp")); len(ents) != 0 {
			viol(i, op, "temp files left after the restart and the next command: %d", len(ents))
		}
		// Take the trial's image away: it must go without force, and the
		// store must come back to its baseline.
		for _, im := range imgs {
			if im.Name == "big" {
				if err := call(time.Minute, func(ctx context.Context, c *agent.Client) error { return c.ImageRemove(ctx, "big") }); err != nil {
					viol(i, op, "image rm big after the restart: %v", err)
				}
			}
		}
		if err := call(time.Minute, func(ctx context.Context, c *agent.Client) error { _, err := c.ImageGC(ctx); return err }); err != nil {
			viol(i, op, "gc after the restart: %v", err)
		}
		if got := storeTree(a.store); got != baseline {
			d := lineDiff(baseline, got)
			if len(d) > 300 {
				d = d[:300] + "…"
			}
			viol(i, op, "store differs from its baseline after rm + gc: %s", strings.ReplaceAll(d, "\n", "; "))
			baseline = got // count each trial once
		}
		if s := a.ps()[sentinel]; s.Status != "running" || s.Pid != sentPid {
			viol(i, op, "sentinel %+v, want running pid %d", s, sentPid)
			if s.Status == "running" {
				sentPid = s.Pid
			}
		}
		if m := len(mountsUnder(a.dir)); m > baseMounts+2 {
			viol(i, op, "mounts under the installation grew to %d (baseline %d)", m, baseMounts)
			baseMounts = m
		}
	}
	var opsDone []string
	for _, o := range []string{"import", "image rm+gc"} {
		opsDone = append(opsDone, fmt.Sprintf("%s %d (%d killed midway)", o, perOp[o], killed[o]))
	}
	detail := fmt.Sprintf("agent kill -9 during its image ops: %s; windows: import %v, rm+gc %v; %v", strings.Join(opsDone, ", "),
		importTime.Round(time.Millisecond), rmTime.Round(time.Millisecond), time.Since(start).Round(time.Second))
	if len(examples) > 0 {
		detail += "; " + strings.Join(examples, "; ")
	}
	record(t, "faults", faultRec{"kill -9 agent during image import / image rm + gc on its API (store verifies, no temp, half image or orphan blob)", n, violations, detail})
	t.Logf("%d trials, %d violations: %s", n, violations, detail)
}

// storeTree is treeDigest of the store without counters.cbor (store-wide
// import and write counters: they grow with every import by design).
func storeTree(store string) string {
	var keep []string
	for _, l := range strings.Split(treeDigest(store), "\n") {
		if !strings.HasPrefix(l, "counters.cbor ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
