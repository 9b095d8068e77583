package fleet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/otok/otok/agent"
)

// ParseDesiredFile reads the operator's desired-state file (JSON, or the
// small YAML subset of yaml.go) for `otok fleet deploy`:
//
//	version: 3            # optional: default one above the current
//	images:
//	  - name: adguard
//	    digest: sha256:9f…   # hex, as `otok image inspect` prints it
//	    url: https://images.example.net/adguard-0.107.55-aarch64.otok
//	    version: 0.107.55
//	containers:
//	  - name: dns
//	    image: adguard
//	    command: [/opt/adguardhome/AdGuardHome, --no-check-update]
//	    net: macvlan:lan4
//	    ip: 192.168.1.53/24
//	    memory: 64M
//	    restart: always
//
// Unknown keys are errors, like everywhere in the protocol.
func ParseDesiredFile(b []byte, scope string) (*Desired, error) {
	js := b
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		v, err := ParseYAML(b)
		if err != nil {
			return nil, err
		}
		if js, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	var f docFile
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("desired file: %w", err)
	}
	d := &Desired{Scope: scope, Version: f.Version}
	for i, im := range f.Images {
		h := strings.TrimPrefix(string(im.Digest), "sha256:")
		dg, err := hex.DecodeString(h)
		if err != nil || len(dg) != 32 {
			return nil, fmt.Errorf("desired file: images[%d] %s: digest %q: want 64 hex digits", i, im.Name, im.Digest)
		}
		sz, err := parseSize(string(im.Size))
		if err != nil {
			return nil, fmt.Errorf("desired file: images[%d] %s: size: %w", i, im.Name, err)
		}
		d.Images = append(d.Images, ImageRef{Name: im.Name, Digest: dg, URL: im.URL, Version: string(im.Version), Size: sz, Signature: im.Signature})
	}
	for i, c := range f.Containers {
		mem, err := parseSize(string(c.Memory))
		if err != nil {
			return nil, fmt.Errorf("desired file: containers[%d] %s: memory: %w", i, c.Name, err)
		}
		d.Containers = append(d.Containers, ContainerSpec{Name: c.Name, Image: c.Image, Argv: c.Command, Env: c.Env,
			Net: c.Net, IP: c.IP, Restart: c.Restart, Memory: mem, CPUs: string(c.CPUs), Mounts: c.Mounts,
			Publish: c.Publish, Stopped: c.Stopped, Persistent: c.Persistent})
	}
	if d.Version == 0 {
		d.Version = 1 // only for the check; the caller sets the real one
		defer func() { d.Version = f.Version }()
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

type docFile struct {
	Version uint64 `json:"version"`
	Images  []struct {
		Name    string  `json:"name"`
		Digest  flexStr `json:"digest"`
		URL     string  `json:"url"`
		Version flexStr `json:"version"`
		Size    flexStr `json:"size"`
		// Signature is the base64 of the image's signed manifest
		// (`otok image inspect --manifest` or the .otok header).
		Signature []byte `json:"signature"`
	} `json:"images"`
	Containers []struct {
		Name       string   `json:"name"`
		Image      string   `json:"image"`
		Command    []string `json:"command"`
		Env        []string `json:"env"`
		Net        string   `json:"net"`
		IP         string   `json:"ip"`
		Restart    string   `json:"restart"`
		Memory     flexStr  `json:"memory"`
		CPUs       flexStr  `json:"cpus"`
		Mounts     []string `json:"mounts"`
		Publish    []string `json:"publish"`
		Stopped    bool     `json:"stopped"`
		Persistent bool     `json:"persistent"`
	} `json:"containers"`
}

// flexStr takes a JSON string or number ("version: 2", "memory: 64M").
type flexStr string

func (f *flexStr) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexStr(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or number, got %s", b)
	}
	*f = flexStr(n.String())
	return nil
}

// parseSize reads an optional byte size the way the agent reads one in
// UCI and the command API (agent.ParseSize: k, M, G suffixes, powers of
// 1024); absent is 0.
func parseSize(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := agent.ParseSize(s)
	return uint64(n), err
}
