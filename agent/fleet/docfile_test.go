package fleet

import (
	"reflect"
	"strings"
	"testing"
)

const docYAML = `---
# rollout for the lab
version: 3
images:
  - name: adguard
    digest: sha256:0101010101010101010101010101010101010101010101010101010101010101
    url: "https://images.example.net/adguard-0.107.55-aarch64.otok"
    version: 0.107.55
    size: 14M
    signature: 0oRDoQEnoEBA
containers:
- name: dns          # on its own MAC on lan4
  image: adguard
  command: [/opt/adguardhome/AdGuardHome, "--no-check-update"]
  env:
    - 'TZ=Europe/Berlin'
    - "A=b # not a comment"
  net: macvlan:lan4
  ip: 192.168.1.53/24
  memory: 64M
  cpus: 0.5
  restart: always
  publish: ["53/udp", 53/tcp]
- name: probe
  image: adguard
  stopped: true
`

const docJSON = `{"version": 3,
 "images": [{"name": "adguard", "digest": "0101010101010101010101010101010101010101010101010101010101010101",
   "url": "https://images.example.net/adguard-0.107.55-aarch64.otok", "version": "0.107.55", "size": 14680064, "signature": "0oRDoQEnoEBA"}],
 "containers": [
  {"name": "dns", "image": "adguard", "command": ["/opt/adguardhome/AdGuardHome", "--no-check-update"],
   "env": ["TZ=Europe/Berlin", "A=b # not a comment"], "net": "macvlan:lan4", "ip": "192.168.1.53/24",
   "memory": "64M", "cpus": "0.5", "restart": "always", "publish": ["53/udp", "53/tcp"]},
  {"name": "probe", "image": "adguard", "stopped": true}]}`

func TestDesiredFile(t *testing.T) {
	y, err := ParseDesiredFile([]byte(docYAML), "group/lab")
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseDesiredFile([]byte(docJSON), "group/lab")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML and JSON differ:\n%+v\n%+v", y, j)
	}
	if y.Version != 3 || len(y.Images) != 1 || y.Images[0].Size != 14<<20 || len(y.Containers) != 2 ||
		len(y.Images[0].Signature) != 9 || y.Containers[0].Memory != 64<<20 || y.Containers[0].CPUs != "0.5" || y.Containers[0].Env[1] != "A=b # not a comment" || !y.Containers[1].Stopped {
		t.Fatalf("parsed %+v", y)
	}
	bad := []struct{ doc, want string }{
		{"images:\n  - name: a\n    digest: 12\n    url: u\n", "want 64 hex digits"},
		{"containers:\n  - name: a\n    imgae: b\n", "unknown field \"imgae\""},
		{"a: &x 1\n", "anchors"},
		{"a: {b: 1}\n", "flow mappings"},
		{"a: 1\n  b: 2\n", "line 2"},
		{"a: 1\na: 2\n", "key \"a\" twice"},
		{"a:\n\t- 1\n", "tab"},
		{"containers:\n  - name: ../x\n    image: b\n", "bad name"},
		{"containers: [a, [b]]\n", "nested flow"},
		{"version: -1\n", "version"},
		{"{\"version\": 1, \"x\": 2}", "unknown field"},
		{"containers:\n  - name: a\n    image: b\n    memory: lots\n", "memory"},
	}
	for _, c := range bad {
		_, err := ParseDesiredFile([]byte(c.doc), "dev/x")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.doc, err, c.want)
		}
	}
}

func FuzzParseYAML(f *testing.F) {
	f.Add([]byte(docYAML))
	f.Add([]byte("a:\n- b\n- c: [1, 'x', \"y\"]\n"))
	f.Add([]byte("- - a\n  - b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseYAML(b)
		ParseDesiredFile(b, "dev/x")
	})
}

func TestDesiredFileSizes(t *testing.T) {
	cases := []struct {
		size string // YAML value of images[0].size and containers[0].memory
		want uint64
		err  bool
	}{
		{"", 0, false},
		{"4096", 4096, false},
		{"14M", 14 << 20, false},
		{"64k", 64 << 10, false},
		{"1G", 1 << 30, false},
		{"64MiB", 64 << 20, false}, // as UCI's `option memory` takes it
		{"lots", 0, true},
		{"-1", 0, true},
		{"1.5G", 0, true},
		{"99999999999G", 0, true}, // overflow, not a wrapped small number
	}
	for _, c := range cases {
		doc := "images:\n  - name: a\n    digest: " + strings.Repeat("01", 32) + "\n    url: u\n    size: " + c.size +
			"\ncontainers:\n  - name: a\n    image: a\n    memory: " + c.size + "\n"
		d, err := ParseDesiredFile([]byte(doc), "dev/x")
		if c.err {
			if err == nil || !strings.Contains(err.Error(), "size") {
				t.Errorf("%q: got %v, want a size error", c.size, err)
			}
			continue
		}
		if err != nil || d.Images[0].Size != c.want || d.Containers[0].Memory != c.want {
			t.Errorf("%q: got %+v %v, want %d", c.size, d, err, c.want)
		}
	}
}
