package agent

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ContainerSpec is the desired state of one container: what a `config
// container` section, an API run/create request, or (later) a fleet desired
// document says. It is plain data, encoded as CBOR on the socket and in the
// state dir and as JSON by `otok inspect`.
type ContainerSpec struct {
	Name     string   `cbor:"name" json:"name"`
	Image    string   `cbor:"image" json:"image"`
	Command  []string `cbor:"command,omitempty" json:"command,omitempty"` // argv; empty: the image's default
	Env      []string `cbor:"env,omitempty" json:"env,omitempty"`         // KEY=VALUE
	Cwd      string   `cbor:"cwd,omitempty" json:"cwd,omitempty"`
	User     string   `cbor:"user,omitempty" json:"user,omitempty"` // UID[:GID] or NAME[:GROUP] from the image's /etc/passwd
	Hostname string   `cbor:"hostname,omitempty" json:"hostname,omitempty"`

	Net     string   `cbor:"net,omitempty" json:"net,omitempty"` // none|host|bridge[:BR]|macvlan:PORT[.VLAN][,opts]|ipvlan:…
	IP      []string `cbor:"ip,omitempty" json:"ip,omitempty"`   // CIDR, or "dhcp"
	Gateway string   `cbor:"gateway,omitempty" json:"gateway,omitempty"`
	DNS     []string `cbor:"dns,omitempty" json:"dns,omitempty"`
	MAC     string   `cbor:"mac,omitempty" json:"mac,omitempty"`
	Publish []string `cbor:"publish,omitempty" json:"publish,omitempty"` // [HOSTIP:]HOSTPORT:PORT[/tcp|udp]
	Mounts  []string `cbor:"mounts,omitempty" json:"mounts,omitempty"`   // SRC:DST[:ro]

	Memory int64   `cbor:"memory,omitempty" json:"memory,omitempty"` // bytes
	CPUs   float64 `cbor:"cpus,omitempty" json:"cpus,omitempty"`
	Pids   int64   `cbor:"pids,omitempty" json:"pids,omitempty"`
	// TmpfsSize caps the writable layer when not persistent (bytes).
	TmpfsSize  int64 `cbor:"tmpfs,omitempty" json:"tmpfs,omitempty"`
	Persistent bool  `cbor:"persistent,omitempty" json:"persistent,omitempty"`
	Terminal   bool  `cbor:"tty,omitempty" json:"tty,omitempty"`
	System     bool  `cbor:"system,omitempty" json:"system,omitempty"`
	Privileged bool  `cbor:"privileged,omitempty" json:"privileged,omitempty"`

	Restart   RestartPolicy `cbor:"restart" json:"restart"`
	Health    *HealthCheck  `cbor:"health,omitempty" json:"health,omitempty"`
	Depends   []string      `cbor:"depends,omitempty" json:"depends,omitempty"`
	Autostart bool          `cbor:"autostart,omitempty" json:"autostart,omitempty"`
	// StopTimeout overrides the agent's stop timeout for this container.
	StopTimeout time.Duration `cbor:"stopTimeout,omitempty" json:"stopTimeout,omitempty"`
	Profiles    []string      `cbor:"profiles,omitempty" json:"profiles,omitempty"`

	// Source is where this desired state came from: "uci" or "api".
	Source string `cbor:"source,omitempty" json:"source,omitempty"`
}

// Restart policy modes, as docker names them.
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// RestartPolicy says what supervision does when the container exits.
type RestartPolicy struct {
	Mode       string `cbor:"mode" json:"mode"`
	MaxRetries int    `cbor:"max,omitempty" json:"max,omitempty"` // on-failure:N; 0 = unlimited
}

func (p RestartPolicy) String() string {
	if p.Mode == "" {
		return RestartNo
	}
	if p.Mode == RestartOnFailure && p.MaxRetries > 0 {
		return fmt.Sprintf("%s:%d", p.Mode, p.MaxRetries)
	}
	return p.Mode
}

// ParseRestart parses no | on-failure[:N] | always | unless-stopped.
func ParseRestart(s string) (RestartPolicy, error) {
	mode, n, hasN := strings.Cut(s, ":")
	switch mode {
	case RestartNo, RestartAlways, RestartUnlessStopped:
		if hasN {
			return RestartPolicy{}, fmt.Errorf("%q: only on-failure takes a retry count", s)
		}
		return RestartPolicy{Mode: mode}, nil
	case RestartOnFailure:
		p := RestartPolicy{Mode: mode}
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return p, fmt.Errorf("%q: retry count must be a number ≥ 0", s)
			}
			p.MaxRetries = v
		}
		return p, nil
	}
	return RestartPolicy{}, fmt.Errorf("%q: want no, on-failure[:N], always or unless-stopped", s)
}

// HealthCheck is run inside the container (exec) or against its address
// (tcp) every Interval; Retries consecutive failures make it unhealthy.
type HealthCheck struct {
	Exec     []string      `cbor:"exec,omitempty" json:"exec,omitempty"`
	TCPPort  int           `cbor:"tcp,omitempty" json:"tcp,omitempty"`
	Interval time.Duration `cbor:"interval" json:"interval"`
	Timeout  time.Duration `cbor:"timeout" json:"timeout"`
	Retries  int           `cbor:"retries" json:"retries"`
	// Restart the container when it becomes unhealthy.
	Restart bool `cbor:"restart,omitempty" json:"restart,omitempty"`
}

// Health check defaults (docker's are 30 s / 30 s / 3).
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 10 * time.Second
	DefaultHealthRetries  = 3
)

// ParseHealthCheck parses "exec CMD ARGS…" or "tcp PORT".
func ParseHealthCheck(s string) (*HealthCheck, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return nil, fmt.Errorf("%q: want \"exec CMD [ARG…]\" or \"tcp PORT\"", s)
	}
	h := &HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}
	switch f[0] {
	case "exec":
		h.Exec = f[1:]
	case "tcp":
		p, err := strconv.Atoi(f[1])
		if err != nil || p < 1 || p > 65535 || len(f) > 2 {
			return nil, fmt.Errorf("%q: tcp wants one port 1-65535", s)
		}
		h.TCPPort = p
	default:
		return nil, fmt.Errorf("%q: want \"exec CMD [ARG…]\" or \"tcp PORT\"", s)
	}
	return h, nil
}

// ParseSize parses a byte size: a number with an optional k, M, G suffix
// (powers of 1024, as docker and LXD read them; "b" and "iB" forms accepted).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "iB"), "B")
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a size like 64M (a number with suffix k, M or G)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}

// ParseSeconds parses a duration: whole seconds ("10") or Go syntax ("1m30s").
func ParseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want seconds (10) or a duration (1m30s)", s)
	}
	return d, nil
}

// ParseBool reads UCI booleans: 1/yes/on/true/enabled and 0/no/off/false/disabled.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "on", "true", "enabled":
		return true, nil
	case "0", "no", "off", "false", "disabled", "":
		return false, nil
	}
	return false, fmt.Errorf("%q: want 1 or 0 (yes/no, on/off, true/false)", s)
}

// ValidName reports whether s can name a container: 1–64 characters of
// [a-zA-Z0-9_.-], starting with a letter or digit (the runtime's rule).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

var netModes = []string{"none", "host", "bridge", "macvlan", "ipvlan"}

// Validate checks what can be checked without the device (image existence,
// ports and addresses are checked by the store and the network when the
// container is created). Errors name the field.
func (c *ContainerSpec) Validate() error {
	if !ValidName(c.Name) {
		return &Error{Code: CodeInvalid, Msg: fmt.Sprintf("container %q: invalid name (1-64 of a-z A-Z 0-9 _ . -, starting with a letter or digit)", c.Name)}
	}
	bad := func(field, format string, a ...any) error {
		return &Error{Code: CodeInvalid, Msg: fmt.Sprintf("container %s: %s: %s", c.Name, field, fmt.Sprintf(format, a...))}
	}
	if c.Image == "" {
		return bad("image", "missing")
	}
	if c.Net != "" {
		mode, _, _ := strings.Cut(c.Net, ":")
		mode, _, _ = strings.Cut(mode, ",")
		if !slices.Contains(netModes, mode) {
			return bad("net", "%q: want none, host, bridge[:BR], macvlan:PORT or ipvlan:PORT", c.Net)
		}
		if (mode == "macvlan" || mode == "ipvlan") && !strings.Contains(c.Net, ":") {
			return bad("net", "%q: %s needs a port (%s:lan4)", c.Net, mode, mode)
		}
	}
	if (c.Net == "" || c.Net == "none" || c.Net == "host") && len(c.IP) > 0 {
		return bad("ip", "needs a bridge, macvlan or ipvlan network")
	}
	for _, e := range c.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return bad("env", "%q: want KEY=VALUE", e)
		}
	}
	for _, m := range c.Mounts {
		p := strings.Split(m, ":")
		if len(p) < 2 || len(p) > 3 || !strings.HasPrefix(p[0], "/") || !strings.HasPrefix(p[1], "/") || len(p) == 3 && p[2] != "ro" && p[2] != "rw" {
			return bad("mounts", "%q: want /HOST/PATH:/CONTAINER/PATH[:ro]", m)
		}
	}
	if c.Memory != 0 && c.Memory < 4<<20 {
		return bad("memory", "%d bytes: at least 4M", c.Memory)
	}
	if c.CPUs < 0 || c.CPUs > 1024 {
		return bad("cpus", "%g: want a number of CPUs > 0", c.CPUs)
	}
	if c.Pids < 0 || c.Pids == 1 {
		return bad("pids", "%d: want at least 2", c.Pids)
	}
	if c.Restart.Mode == "" {
		c.Restart.Mode = RestartNo
	}
	if _, err := ParseRestart(c.Restart.String()); err != nil {
		return bad("restart", "%v", err)
	}
	if h := c.Health; h != nil {
		if len(h.Exec) == 0 && h.TCPPort == 0 {
			return bad("healthcheck", "want exec CMD or tcp PORT")
		}
		if h.Interval < time.Second || h.Timeout <= 0 || h.Retries < 1 {
			return bad("healthcheck", "interval ≥ 1s, timeout > 0 and retries ≥ 1 required")
		}
	}
	for _, d := range c.Depends {
		if d == c.Name {
			return bad("depends", "depends on itself")
		}
		if !ValidName(d) {
			return bad("depends", "%q: not a container name", d)
		}
	}
	return nil
}

// Clone returns a deep copy.
func (c *ContainerSpec) Clone() *ContainerSpec {
	n := *c
	n.Command = slices.Clone(c.Command)
	n.Env = slices.Clone(c.Env)
	n.IP = slices.Clone(c.IP)
	n.DNS = slices.Clone(c.DNS)
	n.Publish = slices.Clone(c.Publish)
	n.Mounts = slices.Clone(c.Mounts)
	n.Depends = slices.Clone(c.Depends)
	n.Profiles = slices.Clone(c.Profiles)
	if c.Health != nil {
		h := *c.Health
		h.Exec = slices.Clone(h.Exec)
		n.Health = &h
	}
	return &n
}
