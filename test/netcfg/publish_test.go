package netcfg_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/netcfg"
)

// httpd serves a page from inside namespace ns on port 80 (busybox httpd,
// stopped by pid at cleanup).
func httpd(t *testing.T, ns, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "80", "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// fetch gets a URL from inside ns (busybox wget under timeout: its -T
// crashes in 1.35).
func fetch(ns, url string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "timeout", "5", "busybox", "wget", "-q", "-O", "-", url).CombinedOutput()
	return string(out), err
}

func nftTables(t *testing.T, ns string) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return ""
	}
	return sh(t, "ip", "netns", "exec", ns, "nft", "list", "tables")
}

// nftHas checks that `nft list table ip T` shows each line.
func nftHas(t *testing.T, ns, table string, lines ...string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return
	}
	out := sh(t, "ip", "netns", "exec", ns, "nft", "list", "table", "ip", table)
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("table %s lacks %q:\n%s", table, l, out)
		}
	}
}

func withPublish(p ...string) func(*netcfg.Config) {
	return func(c *netcfg.Config) {
		for _, s := range p {
			pub, err := netcfg.ParsePublish(s)
			if err != nil {
				panic(err)
			}
			c.Spec.Publish = append(c.Spec.Publish, pub)
		}
	}
}

func TestPublishOnLANBridge(t *testing.T) {
	need(t)
	r := newRouter(t)
	c := newContainer(t, "web")
	if _, err := r.attach(t, c, "bridge:lan", []string{"192.168.1.50/24,gw=192.168.1.1"}, withPublish("8080:80")); err != nil {
		t.Fatal(err)
	}
	httpd(t, c.ns, "hello from web")
	// A LAN host reaches the container through the router's address
	// (hairpin: same bridge both ways).
	if out, err := fetchRetry(r.hosts["lan3"], "http://192.168.1.1:8080/index.html"); err != nil || !strings.Contains(out, "hello from web") {
		t.Fatalf("LAN host via router:8080: %q, %v", out, err)
	}
	// Traffic to port 8080 elsewhere is not redirected.
	if out, err := fetch(r.hosts["lan3"], "http://203.0.113.1:8080/index.html"); err == nil {
		t.Errorf("transit traffic hijacked: %q", out)
	}
	if tb := nftTables(t, r.ns); !strings.Contains(tb, "table ip otok-web") {
		t.Errorf("no otok-web table: %q", tb)
	}
	// The kernel reads the rules back as nft would have written them.
	nftHas(t, r.ns, "otok-web",
		"type nat hook prerouting priority dstnat - 1; policy accept;",
		"type nat hook output priority -101; policy accept;",
		"type nat hook postrouting priority srcnat - 1; policy accept;",
		"fib daddr type local tcp dport 8080 dnat to 192.168.1.50:80",
		"ct status dnat ip daddr 192.168.1.50 tcp dport 80 masquerade")
	r.detach(t, c)
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("otok table left after detach: %q", tb)
	}
}

func TestPublishOnOtokBridge(t *testing.T) {
	need(t)
	r := newRouter(t)
	a, b := newContainer(t, "a"), newContainer(t, "b")
	ra, err := r.attach(t, a, "bridge", nil, withPublish("8081:80"))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := r.attach(t, b, "bridge", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Addrs[0].String() != "10.213.0.2/24" || rb.Addrs[0].String() != "10.213.0.3/24" {
		t.Errorf("otok0 addresses %v %v", ra.Addrs, rb.Addrs)
	}
	nftHas(t, r.ns, "otok", `ip saddr 10.213.0.0/24 oifname != "otok0" masquerade`)
	nftHas(t, r.ns, "otok-a", "fib daddr type local tcp dport 8081 dnat to 10.213.0.2:80")
	httpd(t, a.ns, "hello from a")
	for _, from := range []struct{ ns, url string }{
		{r.hosts["lan3"], "http://192.168.1.1:8081/index.html"},
		{r.hosts["wan"], "http://203.0.113.2:8081/index.html"},
		{b.ns, "http://10.213.0.2/index.html"},
	} {
		if out, err := fetchRetry(from.ns, from.url); err != nil || !strings.Contains(out, "hello from a") {
			t.Errorf("%s from %s: %q, %v", from.url, from.ns, out, err)
		}
	}
	// Masquerade: the upstream host has no route back to 10.213.0.0/24.
	if err := pingOK(b.ns, "203.0.113.1"); err != nil {
		t.Errorf("container on otok0 cannot reach upstream: %v", err)
	}
	// Another container cannot take the same host port.
	c := newContainer(t, "c")
	if _, err := r.attach(t, c, "bridge", nil, withPublish("8081:80")); err == nil || !strings.Contains(err.Error(), "publish 8081/tcp: already published by container a") {
		t.Errorf("second publish of 8081: %v", err)
	}
	r.detach(t, a)
	if !strings.Contains(links(t, r.ns), "otok0") {
		t.Error("otok0 removed while b still uses it")
	}
	r.detach(t, b)
	if l := links(t, r.ns); strings.Contains(l, "otok0") {
		t.Errorf("otok0 left after its last user:\n%s", l)
	}
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("otok table left: %q", tb)
	}
}
