package netcfg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
)

// TestBenchSetupTeardown measures per-mode network setup + teardown of
// one container (median of OTOK_BENCH_N ≥ 50 rounds) with netcfg and with
// the same operations done by ip commands in a shell script, and prints
// the ratio. It runs only with OTOK_BENCH=1 (make bench), as root.
//
//	OTOK_BENCH=1 go test -count=1 -run BenchSetupTeardown -v ./test/netcfg
func TestBenchSetupTeardown(t *testing.T) {
	if os.Getenv("OTOK_BENCH") == "" {
		t.Skip("benchmark: set OTOK_BENCH=1")
	}
	need(t)
	n := 50
	fmt.Sscan(os.Getenv("OTOK_BENCH_N"), &n)
	r := newRouter(t)
	sh(t, "ip", "-n", r.hosts["lan1"], "addr", "add", "10.1.0.1/24", "dev", "eth0")
	c := newContainer(t, "bench")
	rtr, ctr := nsPath(r.ns), nsPath(c.ns)
	mac := netcfg.StableMAC("test-device", "bench").String()
	modes := []struct {
		name, net string
		ips       []string
		publish   string
		script    string
	}{
		{"none", "none", nil, "", `ip -n $C link set lo up`},
		{"bridge:br-lan", "bridge:lan", []string{"192.168.1.50/24,gw=192.168.1.1"}, "", `
ip -n $R link add otkbench type veth peer name eth0 netns $C address $M
ip -n $R link set otkbench alias otok:bench
ip -n $R link set otkbench master br-lan up
ip -n $C link set lo up
ip -n $C link set eth0 alias otok:bench
ip -n $C addr add 192.168.1.50/24 dev eth0
ip -n $C link set eth0 up
ip -n $C route add default via 192.168.1.1
ip -n $R link del otkbench`},
		{"macvlan:lan1", "macvlan:lan1", []string{"10.1.0.50/24,gw=10.1.0.1"}, "", `
ip -n $R link add link lan1 name eth0 netns $C address $M type macvlan mode bridge
ip -n $C link set lo up
ip -n $C link set eth0 alias otok:bench
ip -n $C addr add 10.1.0.50/24 dev eth0
ip -n $C link set eth0 up
ip -n $C route add default via 10.1.0.1
ip -n $C link del eth0`},
		{"bridge (otok0) -p", "bridge", nil, "8080:80", `
ip -n $R link add otok0 type bridge
ip -n $R addr add 10.213.0.1/24 dev otok0
ip -n $R link set otok0 up
ip -n $R link add otkbench type veth peer name eth0 netns $C address $M
ip -n $R link set otkbench master otok0 up
ip -n $C link set lo up
ip -n $C addr add 10.213.0.2/24 dev eth0
ip -n $C link set eth0 up
ip -n $C route add default via 10.213.0.1
ip netns exec $RN nft -f - <<'N'
table ip otok {
  chain prerouting { type nat hook prerouting priority -101; fib daddr type local tcp dport 8080 dnat to 10.213.0.2:80; }
  chain output { type nat hook output priority -101; fib daddr type local tcp dport 8080 dnat to 10.213.0.2:80; }
  chain postrouting { type nat hook postrouting priority 99; ip saddr 10.213.0.0/24 oifname != "otok0" masquerade; }
}
N
ip netns exec $RN nft delete table ip otok
ip -n $R link del otkbench
ip -n $R link del otok0`},
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-20s %12s %12s %9s   (median of %d, setup+teardown)\n", "mode", "netcfg", "ip script", "ip÷netcfg", n)
	for _, m := range modes {
		if m.publish != "" {
			if _, err := exec.LookPath("nft"); err != nil {
				fmt.Fprintf(&table, "%-20s skipped: no nft command for the comparison script\n", m.name)
				continue
			}
		}
		var lib, ipt []time.Duration
		for i := 0; i < n; i++ {
			mods := []func(*netcfg.Config){}
			if m.publish != "" {
				mods = append(mods, withPublish(m.publish))
			}
			start := time.Now()
			if _, err := r.attach(t, c, m.net, m.ips, mods...); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			if err := netcfg.Detach(context.Background(), r.state, c.name); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			lib = append(lib, time.Since(start))

			script := "set -e\nR=" + r.ns + " RN=" + r.ns + " C=" + c.ns + " M=" + mac + "\n" + m.script
			start = time.Now()
			if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
				t.Fatalf("%s ip script: %v\n%s", m.name, err, out)
			}
			ipt = append(ipt, time.Since(start))
		}
		ml, mi := median(lib), median(ipt)
		fmt.Fprintf(&table, "%-20s %12v %12v %6.2fx\n", m.name, ml.Round(time.Microsecond), mi.Round(time.Microsecond), float64(mi)/float64(ml))
	}
	_ = rtr
	_ = ctr
	t.Logf("\n%s", table.String())
	fmt.Print(table.String())
}
