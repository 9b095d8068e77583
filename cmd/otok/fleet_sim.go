package main

// otok fleet keys gen and sim.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/otok/otok/agent/fleet"
)

func fleetKeys(e *env, args []string) error {
	if len(args) != 2 || args[0] != "gen" {
		return usagef("want 'keys gen PATH'")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pk, pub, err := fleet.EncodeKeyPair(priv)
	if err != nil {
		return err
	}
	path := args[1]
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{path + ".key", pk, 0o600}, {path + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("key %s: %w (not overwriting)", f.name, err)
		}
		if _, err := fh.Write(f.b); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "controller key %x: %s.key (keep secret, --key), %s.pub (list key in devices' config fleet)\n",
		fleet.KeyID(priv.Public().(ed25519.PublicKey)), path, path)
	return nil
}

func fleetSim(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "sim", &c)
	n := fs.Int("devices", 10, "number of simulated devices")
	prefix := fs.String("prefix", "sim", "device id prefix")
	groups := fs.String("groups", "all", "comma-separated groups of every device; {n%K} adds group gK of n mod K (e.g. all,ring{n%4})")
	var trust repeatFlag
	fs.Var(&trust, "trust", "controller public key `FILE` the devices trust (repeatable)")
	bmax := fs.Duration("backoff-max", 2*time.Second, "reconnect backoff cap (grow with the fleet)")
	hb := fs.Duration("heartbeat", 5*time.Minute, "status heartbeat")
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	sc := fleet.SimConfig{Devices: *n, Prefix: *prefix, Brokers: brokers, Backoff: fleet.Backoff{Base: 250 * time.Millisecond, Max: *bmax},
		Heartbeat: fleet.Config{Heartbeat: *hb}, Username: c.user, Password: c.password,
		Groups: simGroups(*groups)}
	for _, p := range trust {
		k, err := fleet.LoadPublicKey(p)
		if err != nil {
			return err
		}
		sc.Keys = append(sc.Keys, k)
	}
	if c.ca != "" || c.cert != "" {
		if sc.TLS, err = fleet.TLSFiles(c.ca, c.cert, c.ckey); err != nil {
			return err
		}
	}
	if os.Getenv("GOGC") == "" {
		// N devices in one process share one big heap that no real device
		// has; a lazier collector keeps the per-device cost flat in N.
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(2 << 30)
	}
	start := time.Now()
	sim, err := fleet.StartSim(ctx, sc)
	if err != nil {
		return err
	}
	allAt := time.Duration(0)
	last, lastPrint := -1, time.Time{}
	for ctx.Err() == nil {
		on := sim.Online()
		switch {
		case on == *n && allAt == 0:
			allAt = time.Since(start)
			fmt.Fprintf(e.stdout, "all %d devices online in %s\n", *n, allAt.Round(time.Millisecond))
		case on != last && (on == *n || time.Since(lastPrint) >= time.Second):
			fmt.Fprintf(e.stdout, "%s online %d/%d\n", time.Now().Format("15:04:05.000"), on, *n)
			lastPrint = time.Now()
		default:
			sleepOrDone(ctx, 10*time.Millisecond)
			continue
		}
		last = on
	}
	fmt.Fprintln(e.stdout, "stopping: publishing death for every device")
	sim.Wait()
	return nil
}

func sleepOrDone(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// simGroups turns "all,ring{n%4}" into a per-device group function.
func simGroups(spec string) func(int) []string {
	parts := strings.Split(spec, ",")
	return func(n int) []string {
		var out []string
		for _, p := range parts {
			p = strings.TrimSpace(p)
			if i := strings.Index(p, "{n%"); i >= 0 && strings.HasSuffix(p, "}") {
				var m int
				if _, err := fmt.Sscanf(p[i+3:len(p)-1], "%d", &m); err == nil && m > 0 {
					out = append(out, fmt.Sprintf("%s%d", p[:i], n%m))
					continue
				}
			}
			if p != "" {
				out = append(out, p)
			}
		}
		return out
	}
}
