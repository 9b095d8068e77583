package security

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKilledCounterWrite is the deterministic form of what a random kill
// -9 during an import found (REPORT.md at 78c0a7d, TestKill9AgentImageOps
// trial 97): a process killed after the store created counters.cbor.tmp
// and before it renamed it leaves that empty file in the store root. The
// next imports must still count (otok df: imports_total) and the stale
// temp must not stay.
func TestKilledCounterWrite(t *testing.T) {
	w := newWorld(t)
	imports := func() int64 {
		out, errOut, code := w.run(time.Minute, "df", "--json")
		if code != 0 {
			t.Fatalf("otok df --json: %s", errOut)
		}
		var d struct {
			Imports int64 `json:"imports_total"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("otok df --json: %v: %s", err, out)
		}
		return d.Imports
	}
	before := imports()
	// What the killed process left: the counters' temp, created, empty.
	stale := filepath.Join(w.store, "counters.cbor.tmp")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := faultRec{Fault: "kill -9 between the store counters' temp and its rename (deterministic: the empty counters.cbor.tmp left, then 2 imports)", Trials: 1}
	for i := 0; i < 2; i++ {
		os.WriteFile(filepath.Join(w.rootfs, "etc", "otok-sec-counter"), []byte(randHex(8)), 0o644)
		img := filepath.Join(w.dir, fmt.Sprintf("counter%d.otok", i))
		w.must("image", "build", "--from", w.rootfs, "--name", fmt.Sprintf("counter%d", i), "--version", "1", "--key", w.keyPath, "-o", img, "--comp", "gzip")
		w.must("image", "import", img)
	}
	after := imports()
	var problems []string
	if after != before+2 {
		problems = append(problems, fmt.Sprintf("imports_total %d -> %d after 2 imports (counters no longer updated: flash addCounters creates its temp O_EXCL)", before, after))
	}
	if _, err := os.Stat(stale); err == nil {
		problems = append(problems, "counters.cbor.tmp still in the store root after 2 imports (the store's sweep only empties tmp/)")
	}
	w.run(time.Minute, "image", "rm", "counter0")
	w.run(time.Minute, "image", "rm", "counter1")
	if len(problems) > 0 {
		rec.Violations = 1
		rec.Detail = fmt.Sprint(problems)
		t.Errorf("%v", problems)
	} else {
		rec.Detail = fmt.Sprintf("imports_total %d -> %d, stale temp gone", before, after)
	}
	record(t, "faults", rec)
	t.Log(rec.Detail)
}
