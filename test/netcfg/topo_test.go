// Package netcfg_test builds throwaway router topologies in network
// namespaces and drives netcfg against them. Every namespace, link and
// process a test makes is removed in t.Cleanup; the host's own network is
// never touched (the "router" is a namespace too).
package netcfg_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
	"github.com/otok/otok/test/testenv"
)

var seq atomic.Int32

// need skips a test that cannot run here, saying why.
func need(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t)
	if err := exec.Command("ip", "netns", "list").Run(); err != nil {
		t.Skip("needs iproute2's ip with netns support to build topologies (busybox ip has none)")
	}
}

// sh runs a command and fails the test on error.
func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// try runs a command and returns its error (with output).
func try(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNS creates a named network namespace removed at cleanup; it returns
// the name (its path is /run/netns/NAME).
func newNS(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("otn%d-%d-%s", os.Getpid()%10000, seq.Add(1), role)
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Kill what still runs inside, then delete the namespace.
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", p).Run()
			}
		}
		try("ip", "netns", "del", name)
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }

// in runs a command inside namespace ns.
func in(ns string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// router is a fake OpenWrt box: a namespace with br-lan over port lan3,
// stand-alone ports lan1, lan2 and wan, each a veth whose other end sits
// in its own "host" namespace.
type router struct {
	ns    string
	hosts map[string]string // port → namespace of the machine behind it
	state string            // netcfg state dir
}

func newRouter(t *testing.T) *router {
	t.Helper()
	r := &router{ns: newNS(t, "rtr"), hosts: map[string]string{}, state: t.TempDir()}
	for _, port := range []string{"lan1", "lan2", "lan3", "wan"} {
		h := newNS(t, port)
		r.hosts[port] = h
		sh(t, "ip", "-n", r.ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h)
		sh(t, "ip", "-n", r.ns, "link", "set", port, "up")
		sh(t, "ip", "-n", h, "link", "set", "eth0", "up")
	}
	sh(t, "ip", "-n", r.ns, "link", "add", "br-lan", "type", "bridge")
	sh(t, "ip", "-n", r.ns, "link", "set", "lan3", "master", "br-lan")
	sh(t, "ip", "-n", r.ns, "addr", "add", "192.168.1.1/24", "dev", "br-lan")
	sh(t, "ip", "-n", r.ns, "link", "set", "br-lan", "up")
	sh(t, "ip", "-n", r.hosts["lan3"], "addr", "add", "192.168.1.10/24", "dev", "eth0")
	sh(t, "ip", "-n", r.hosts["lan3"], "route", "add", "default", "via", "192.168.1.1")
	sh(t, "ip", "-n", r.ns, "addr", "add", "203.0.113.2/24", "dev", "wan")
	sh(t, "ip", "-n", r.hosts["wan"], "addr", "add", "203.0.113.1/24", "dev", "eth0")
	t.Cleanup(func() {
		// Whatever a failed test left attached.
		netcfg.Sweep(context.Background(), r.state, nsPath(r.ns), func(string) bool { return false })
	})
	return r
}

// resolve maps the router's port names like board.ResolvePort would.
func (r *router) resolve(p string) (string, error) {
	switch p {
	case "lan":
		return "br-lan", nil
	case "lan1", "lan2", "lan3", "wan", "br-lan":
		return p, nil
	}
	return "", fmt.Errorf("no port %s on this board (ports: lan lan1 lan2 lan3 wan)", p)
}

// container is a namespace standing in for a container, with a root
// directory for /etc files.
type container struct {
	name, ns, root string
}

func newContainer(t *testing.T, name string) *container {
	t.Helper()
	c := &container{name: name, ns: newNS(t, name), root: t.TempDir()}
	return c
}

// attach attaches c to r with the given --net/--ip/… values.
func (r *router) attach(t *testing.T, c *container, net string, ips []string, mods ...func(*netcfg.Config)) (*netcfg.Record, error) {
	t.Helper()
	sp, err := netcfg.ParseNet(net)
	if err != nil {
		return nil, err
	}
	for _, s := range ips {
		a, err := netcfg.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		sp.Addrs = append(sp.Addrs, a)
	}
	cfg := netcfg.Config{
		Container: c.name, Spec: sp, NetNS: nsPath(c.ns), HostNS: nsPath(r.ns),
		RootDir: c.root, StateDir: r.state, Resolve: r.resolve, DeviceID: "test-device",
		DHCPWait: 20 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	rec, err := netcfg.Attach(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { netcfg.Detach(context.Background(), r.state, c.name) })
	}
	return rec, err
}

func (r *router) detach(t *testing.T, c *container) {
	t.Helper()
	if err := netcfg.Detach(context.Background(), r.state, c.name); err != nil {
		t.Fatal(err)
	}
}

// links lists "name alias" of every link in ns.
func links(t *testing.T, ns string) string {
	t.Helper()
	return sh(t, "ip", "-n", ns, "-o", "link", "show")
}

var linkLineRe = regexp.MustCompile(`^\d+: ([^:@ ]+)`)
var aliasRe = regexp.MustCompile(`alias (\S+)`)

// linkSet is the set of links of ns as "name alias" lines — what a failed
// attach must leave unchanged (states and flags change on their own).
func linkSet(t *testing.T, ns string) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(links(t, ns), "\n") {
		m := linkLineRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		e := m[1]
		if a := aliasRe.FindStringSubmatch(l); a != nil {
			e += " " + a[1]
		}
		out = append(out, e)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// fetchRetry is fetch, retried for a few seconds while the server starts.
func fetchRetry(ns, url string) (string, error) {
	var out string
	var err error
	for i := 0; i < 30; i++ {
		if out, err = fetch(ns, url); err == nil {
			return out, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out, err
}

func pingOK(ns, ip string) error {
	return try(in(ns, "busybox", "ping", "-c", "1", "-W", "2", ip)...)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func etc(c *container, f string) string { return filepath.Join(c.root, "etc", f) }
