package agent

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otok/otok/agent/uci"
	"github.com/otok/otok/flash"
)

// Config is /etc/config/otok turned into typed desired state.
type Config struct {
	Path  string
	Agent AgentConfig
	// Containers holds every container section that validated, by name;
	// Order keeps file order.
	Containers map[string]*ContainerSpec
	Order      []string
	// Errors are per-container problems (bad values, missing image…): that
	// container is not run, the others are.
	Errors map[string]error
	// Warnings name unknown sections and options; they change nothing.
	Warnings []string
}

// AgentConfig is the `config agent` section.
type AgentConfig struct {
	Store       string        // option store: image store root (flash)
	Keys        string        // option keys: trusted keys dir
	State       string        // option state: agent state dir (tmpfs)
	Socket      string        // option socket: command socket path
	StopTimeout time.Duration // option stop_timeout: graceful stop before SIGKILL
	LogSize     int64         // option log_size: output kept per container (tmpfs)
	Events      int           // option events: event ring length
	DeviceID    string        // option device_id
	UbusSocket  string        // option ubus_socket
	// option reserve: flash the store keeps free (SIZE or N%; default
	// max(2M, 10%)): imports and persistent layers stop there.
	Reserve    flash.Reserve
	ReserveSet bool
}

// Defaults.
const (
	DefaultConfigPath  = "/etc/config/otok"
	DefaultStateDir    = "/var/run/otok"
	DefaultSocket      = "/var/run/otok/otok.sock"
	DefaultStopTimeout = 10 * time.Second
	DefaultLogSize     = 64 << 10
	DefaultEvents      = 256
)

// DefaultAgentConfig returns the agent defaults.
func DefaultAgentConfig() AgentConfig {
	return AgentConfig{State: DefaultStateDir, Socket: DefaultSocket, StopTimeout: DefaultStopTimeout,
		LogSize: DefaultLogSize, Events: DefaultEvents}
}

// LoadConfig reads and parses a UCI file. A syntax error fails the whole
// file (the caller keeps its last good config); bad container sections
// only fail themselves (Config.Errors).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, Errorf(CodeNotFound, "config %s: %v", path, err)
		}
		return nil, Errorf(CodeInvalid, "config %s: %v", path, err)
	}
	return ParseConfig(path, data)
}

// Option names known in each section type (values are parsed in
// parseAgent and applyContainerOption).
var (
	agentOptions = []string{"store", "keys", "state", "socket", "stop_timeout", "log_size", "events", "device_id", "ubus_socket", "enabled",
		// read by the procd init script, not the agent
		"respawn_threshold", "respawn_timeout", "respawn_retry"}
	containerOptions = []string{"name", "image", "command", "env", "cwd", "user", "hostname", "net", "ip", "gateway", "dns", "mac",
		"publish", "mounts", "mount", "memory", "cpus", "pids", "tmpfs", "persistent", "tty", "system", "privileged", "restart",
		"healthcheck", "health_interval", "health_timeout", "health_retries", "health_restart", "depends", "autostart",
		"stop_timeout", "profile", "enabled"}
	// sections other packages read from the same file
	otherSections = []string{"fleet"}
)

// ParseConfig turns UCI text into a Config.
func ParseConfig(path string, data []byte) (*Config, error) {
	f, err := uci.Parse(path, data)
	if err != nil {
		return nil, Errorf(CodeInvalid, "%v", err)
	}
	cfg := &Config{Path: path, Agent: DefaultAgentConfig(), Containers: map[string]*ContainerSpec{}, Errors: map[string]error{}}
	warn := func(format string, a ...any) {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf(format, a...))
	}
	profiles := map[string]*uci.Section{}
	for _, s := range f.Sections {
		where := fmt.Sprintf("%s:%d", path, s.Line)
		switch s.Type {
		case "agent":
			if err := parseAgent(&cfg.Agent, s, where, warn); err != nil {
				return nil, err
			}
		case "profile":
			if s.Anonymous {
				warn("%s: profile section without a name ignored", where)
				continue
			}
			profiles[s.Name] = s
			for _, o := range s.Options {
				if o.Name == "profile" || o.Name == "name" || !slices.Contains(containerOptions, o.Name) {
					warn("%s: profile %s: unknown option %q ignored", where, s.Name, o.Name)
				}
			}
		case "container":
		default:
			if !slices.Contains(otherSections, s.Type) {
				warn("%s: unknown section type %q ignored", where, s.Type)
			}
		}
	}
	for _, s := range f.OfType("container") {
		c, err := containerFromSection(s, profiles, warn, path)
		if c == nil {
			cfg.Errors[s.Name] = err
			continue
		}
		if _, dup := cfg.Containers[c.Name]; dup || cfg.Errors[c.Name] != nil {
			cfg.Errors[c.Name] = Errorf(CodeInvalid, "container %s: defined twice (second at %s:%d)", c.Name, path, s.Line)
			delete(cfg.Containers, c.Name)
			continue
		}
		if err != nil {
			cfg.Errors[c.Name] = err
			continue
		}
		cfg.Containers[c.Name] = c
		cfg.Order = append(cfg.Order, c.Name)
	}
	return cfg, nil
}

func parseAgent(a *AgentConfig, s *uci.Section, where string, warn func(string, ...any)) error {
	for _, o := range s.Options {
		v := o.Values[len(o.Values)-1]
		bad := func(err error) error { return Errorf(CodeInvalid, "%s: agent: option %s: %v", where, o.Name, err) }
		var err error
		switch o.Name {
		case "store":
			a.Store = v
		case "keys":
			a.Keys = v
		case "state":
			a.State = v
		case "socket":
			a.Socket = v
		case "device_id":
			a.DeviceID = v
		case "ubus_socket":
			a.UbusSocket = v
		case "reserve":
			a.Reserve, err = ParseReserve(v)
			a.ReserveSet = err == nil
		case "stop_timeout":
			a.StopTimeout, err = ParseSeconds(v)
		case "log_size":
			a.LogSize, err = ParseSize(v)
		case "events":
			a.Events, err = strconv.Atoi(v)
			if err == nil && (a.Events < 16 || a.Events > 65536) {
				err = fmt.Errorf("%q: want 16-65536", v)
			}
		case "enabled":
			_, err = ParseBool(v)
		case "respawn_threshold", "respawn_timeout", "respawn_retry":
			if _, e := strconv.ParseUint(v, 10, 32); e != nil {
				err = fmt.Errorf("%q: want whole seconds or a count", v)
			}
		default:
			warn("%s: agent: unknown option %q ignored", where, o.Name)
		}
		if err != nil {
			return bad(err)
		}
	}
	return nil
}

// containerFromSection applies the listed profiles in order, then the
// section's own options (which override).
func containerFromSection(s *uci.Section, profiles map[string]*uci.Section, warn func(string, ...any), path string) (*ContainerSpec, error) {
	c := &ContainerSpec{Source: "uci", Autostart: true, Restart: RestartPolicy{Mode: RestartNo}}
	if !s.Anonymous {
		c.Name = s.Name
	}
	if n, ok := s.Get("name"); ok {
		c.Name = n
	}
	if c.Name == "" {
		return nil, Errorf(CodeInvalid, "%s:%d: container section without a name (give the section a name or option name)", path, s.Line)
	}
	subject := "container " + c.Name
	for _, p := range s.List("profile") {
		ps := profiles[p]
		if ps == nil {
			return c, Errorf(CodeInvalid, "%s: profile %q: no such profile", subject, p)
		}
		c.Profiles = append(c.Profiles, p)
		for _, o := range ps.Options {
			if o.Name == "profile" || o.Name == "name" || !slices.Contains(containerOptions, o.Name) {
				continue
			}
			if err := applyContainerOption(c, o); err != nil {
				return c, Errorf(CodeInvalid, "%s: profile %s: option %s: %v", subject, p, o.Name, err)
			}
		}
	}
	for _, o := range s.Options {
		if !slices.Contains(containerOptions, o.Name) {
			warn("%s:%d: %s: unknown option %q ignored", path, o.Line, subject, o.Name)
		}
	}
	for _, o := range s.Options {
		switch o.Name {
		case "name", "profile":
			continue
		}
		if !slices.Contains(containerOptions, o.Name) {
			continue
		}
		if err := applyContainerOption(c, o); err != nil {
			return c, Errorf(CodeInvalid, "%s: option %s: %v", subject, o.Name, err)
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

func applyContainerOption(c *ContainerSpec, o *uci.Option) error {
	v := o.Values[len(o.Values)-1]
	var err error
	health := func() *HealthCheck {
		if c.Health == nil {
			c.Health = &HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries}
		}
		return c.Health
	}
	switch o.Name {
	case "image":
		c.Image = v
	case "command":
		if o.IsList {
			c.Command = slices.Clone(o.Values)
		} else {
			// a single option is split on blanks; use list command for
			// words with spaces
			c.Command = strings.Fields(v)
		}
	case "env":
		c.Env = slices.Clone(o.Values)
	case "cwd":
		c.Cwd = v
	case "user":
		c.User = v
	case "hostname":
		c.Hostname = v
	case "net":
		c.Net = v
	case "ip":
		c.IP = slices.Clone(o.Values)
	case "gateway":
		c.Gateway = v
	case "dns":
		c.DNS = slices.Clone(o.Values)
	case "mac":
		c.MAC = v
	case "publish":
		c.Publish = slices.Clone(o.Values)
	case "mounts", "mount":
		c.Mounts = slices.Clone(o.Values)
	case "memory":
		c.Memory, err = ParseSize(v)
	case "tmpfs":
		c.TmpfsSize, err = ParseSize(v)
	case "cpus":
		c.CPUs, err = strconv.ParseFloat(v, 64)
		if err != nil || c.CPUs <= 0 {
			err = fmt.Errorf("%q: want a number of CPUs like 0.5", v)
		}
	case "pids":
		c.Pids, err = strconv.ParseInt(v, 10, 64)
		if err != nil || c.Pids < 2 {
			err = fmt.Errorf("%q: want a number ≥ 2", v)
		}
	case "persistent":
		c.Persistent, err = ParseBool(v)
	case "tty":
		c.Terminal, err = ParseBool(v)
	case "system":
		c.System, err = ParseBool(v)
	case "privileged":
		c.Privileged, err = ParseBool(v)
	case "autostart", "enabled":
		c.Autostart, err = ParseBool(v)
	case "restart":
		c.Restart, err = ParseRestart(v)
	case "healthcheck":
		var h *HealthCheck
		if h, err = ParseHealthCheck(v); err == nil {
			old := health()
			old.Exec, old.TCPPort = h.Exec, h.TCPPort
		}
	case "health_interval":
		health().Interval, err = ParseSeconds(v)
	case "health_timeout":
		health().Timeout, err = ParseSeconds(v)
	case "health_retries":
		health().Retries, err = strconv.Atoi(v)
		if err != nil || health().Retries < 1 {
			err = fmt.Errorf("%q: want a number ≥ 1", v)
		}
	case "health_restart":
		health().Restart, err = ParseBool(v)
	case "depends":
		c.Depends = nil
		for _, d := range o.Values {
			c.Depends = append(c.Depends, strings.Fields(d)...)
		}
	case "stop_timeout":
		c.StopTimeout, err = ParseSeconds(v)
	}
	return err
}

// findCycles returns, for every container on a dependency cycle, the cycle
// as "a → b → a". Dependencies on names not in specs are not cycles.
func findCycles(specs map[string]*ContainerSpec) map[string]string {
	out := map[string]string{}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range specs[n].Depends {
			if specs[d] == nil {
				continue
			}
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := slices.Index(stack, d)
				cyc := append(slices.Clone(stack[i:]), d)
				desc := strings.Join(cyc, " → ")
				for _, m := range stack[i:] {
					if _, ok := out[m]; !ok {
						out[m] = desc
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if color[n] == white {
			visit(n)
		}
	}
	return out
}

// ParseReserve parses the store's free-space reserve: a size ("4M") or a
// percentage of the filesystem ("10%"); 0 or 0% = no reserve.
func ParseReserve(v string) (flash.Reserve, error) {
	var r flash.Reserve
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 90 {
			return r, fmt.Errorf("%q: want a percentage 0%%-90%%", v)
		}
		r.Percent = n
		if n == 0 {
			r.Bytes = -1
		}
		return r, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return r, err
	}
	r.Bytes = n
	if n == 0 {
		r.Bytes = -1
	}
	return r, nil
}
