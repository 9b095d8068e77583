package fleet

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	_, pub, _ := EncodeKeyPair(priv)
	kp := filepath.Join(dir, "ctl.pub")
	os.WriteFile(kp, pub, 0o644)
	opts := map[string][]string{
		"broker": {"tcp://a:1883", "tcp://b:1883"}, "group": {"lab", "eu"}, "key": {kp},
		"heartbeat": {"5m"}, "reconnect_max": {"60"}, "queue": {"100"}, "username": {"u"}, "password": {"p"},
	}
	get := func(n string) (string, bool) {
		v := opts[n]
		if len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	list := func(n string) []string { return opts[n] }
	cfg, on, err := ParseConfig(get, list, "94833c1a2b3c")
	if err != nil || !on {
		t.Fatal(err)
	}
	if cfg.DeviceID != "94833c1a2b3c" || len(cfg.Brokers) != 2 || len(cfg.Keys) != 1 || cfg.Heartbeat != 5*time.Minute ||
		cfg.Backoff.Max != time.Minute || cfg.Backoff.Base != DefaultBackoff.Base || cfg.QueueSize != 100 || cfg.TLS != nil || cfg.Username != "u" {
		t.Fatalf("%+v", cfg)
	}
	for name, c := range map[string]struct {
		k, v, want string
	}{
		"bad id":      {"device_id", "a/b", "device id"},
		"bad queue":   {"queue", "0", "queue"},
		"bad beat":    {"heartbeat", "soon", "heartbeat"},
		"missing key": {"key", "/nonexistent.pub", "list key"},
		"bad group":   {"group", "a+b", "group"},
		"tls files":   {"tls_ca", "/nonexistent.crt", "ca"},
	} {
		old := opts[c.k]
		opts[c.k] = []string{c.v}
		_, _, err := ParseConfig(get, list, "x")
		opts[c.k] = old
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	opts["enabled"] = []string{"0"}
	opts["broker"] = nil
	if _, on, err := ParseConfig(get, list, "x"); on || err != nil {
		t.Fatalf("disabled: %v %v", on, err)
	}
}
