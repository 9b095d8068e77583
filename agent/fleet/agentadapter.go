package fleet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otok/otok/agent"
)

// AgentAdapter makes the daemon's command API (package agent) the fleet's
// Agent: the one place where fleet messages meet agent types. The daemon
// (`otok agent` with a `config fleet` section) builds it and a Session:
//
//	ad := &fleet.AgentAdapter{A: a, Board: board, ManagedFile: filepath.Join(stateDir, "fleet.cbor")}
//	s, _ := fleet.NewSession(cfg, ad)
//	go s.Run(ctx)
type AgentAdapter struct {
	A     *agent.Agent
	Board Board // from /etc/board.json, /etc/openwrt_release, uname
	// ImportURL fetches an image by URL into the store and verifies it
	// against digest (flash's HTTP import). nil: imports and desired
	// images fail with "unavailable" until the agent offers it.
	ImportURL func(ctx context.Context, url string, digest []byte, name string, progress func(uint8)) error
	// ManagedFile remembers which containers desired state created, so an
	// agent restart does not mistake them for the operator's own (state
	// dir, tmpfs: written only when the set changes). "" keeps it in RAM.
	ManagedFile string

	mu      sync.Mutex
	managed map[string]ContainerSpec // name → the fleet spec it was created from
	loaded  bool
}

// agentErr carries an agent error's code into the fleet's.
func agentErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *agent.Error
	if errors.As(err, &ae) {
		return &Error{Code: Code(ae.Code), Msg: err.Error()}
	}
	return &Error{Code: CodeOf(err), Msg: err.Error()}
}

// Status implements Agent.
func (ad *AgentAdapter) Status(ctx context.Context) (Status, error) {
	a := ad.A
	s := a.Status()
	st := Status{Board: ad.Board, Agent: AgentInfo{Version: s.Version, Uptime: uint64(time.Since(s.Started) / time.Second)}}
	if il, err := a.ImageList(ctx); err == nil {
		for _, im := range il.Images {
			d, err := hex.DecodeString(strings.TrimPrefix(im.Digest, "sha256:"))
			if err != nil || len(d) != 32 {
				continue
			}
			st.Images = append(st.Images, Image{Name: im.Name, Version: im.Version, Digest: d, Size: uint64(max(im.Size, 0))})
		}
	}
	usage := map[string]*Usage{}
	if sr, err := a.Stats(ctx, nil); err == nil {
		for _, x := range sr.Stats {
			usage[x.Name] = &Usage{CPUms: x.CPUNanos / 1e6, Mem: x.Memory, Pids: uint32(x.Pids), RxB: x.NetRx, TxB: x.NetTx}
		}
	}
	for _, c := range a.List(true).Containers {
		fc := fromAgent(c)
		fc.Usage = usage[c.Name]
		st.Containers = append(st.Containers, fc)
	}
	if df, err := a.DF(ctx); err == nil {
		st.Flash = &Flash{Free: uint64(max(df.Free, 0)), Reserve: uint64(max(df.Reserve, 0)), Store: uint64(max(df.ImageUse, 0))}
	}
	return st, nil
}

func fromAgent(c agent.ContainerStatus) Container {
	fc := Container{Name: c.Name, Image: c.Image, State: c.State, Health: c.Health, Restarts: uint32(max(c.Restarts, 0))}
	if !c.Started.IsZero() {
		fc.Started = uint64(c.Started.UnixMilli())
	}
	if c.Network != nil {
		fc.Addrs = c.Network.Addrs
	}
	if e := c.Exit; e != nil {
		fc.Exit = &Exit{Code: int64(e.Code), OOM: e.OOM, Reason: strings.TrimSpace(strings.Join([]string{e.Signal, c.Error}, " "))}
	} else if c.Error != "" {
		fc.Exit = &Exit{Code: -1, Reason: c.Error}
	}
	return fc
}

// toAgent converts a fleet container spec into the agent's.
func toAgent(s *ContainerSpec) (*agent.ContainerSpec, error) {
	as := &agent.ContainerSpec{Name: s.Name, Image: s.Image, Command: s.Argv, Env: s.Env, Net: s.Net,
		Memory: int64(s.Memory), Mounts: s.Mounts, Publish: s.Publish, Persistent: s.Persistent, Autostart: !s.Stopped}
	if s.IP != "" {
		as.IP = []string{s.IP}
	}
	if s.Restart != "" {
		p, err := agent.ParseRestart(s.Restart)
		if err != nil {
			return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("container %s: restart: %v", s.Name, err)}
		}
		as.Restart = p
	}
	if s.CPUs != "" {
		f, err := strconv.ParseFloat(s.CPUs, 64)
		if err != nil {
			return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("container %s: cpus %q", s.Name, s.CPUs)}
		}
		as.CPUs = f
	}
	return as, nil
}

// Do implements Agent.
func (ad *AgentAdapter) Do(ctx context.Context, c *Command, progress func(uint8)) (any, error) {
	a, args := ad.A, c.Args
	stopT := time.Duration(args.Timeout) * time.Second
	var err error
	switch c.Op {
	case "ps":
		out := []Container{}
		for _, x := range a.List(true).Containers {
			out = append(out, fromAgent(x))
		}
		return out, nil
	case "run":
		var as *agent.ContainerSpec
		if as, err = toAgent(args.Spec); err == nil {
			_, err = a.Run(ctx, as, true)
		}
	case "start":
		_, err = a.Start(ctx, args.Name)
	case "stop":
		_, err = a.Stop(ctx, args.Name, stopT)
	case "restart":
		_, err = a.Restart(ctx, args.Name, stopT)
	case "rm":
		err = a.Remove(ctx, args.Name, args.Force)
		if err == nil {
			ad.forget(args.Name)
		}
	case "logs":
		var out []byte
		err = a.Logs(ctx, &agent.LogsRequest{Name: args.Name, Tail: int(args.Tail)}, func(v any) error {
			if ch, ok := v.(*agent.LogsChunk); ok {
				out = append(out, ch.Data...)
			} else if ch, ok := v.(agent.LogsChunk); ok {
				out = append(out, ch.Data...)
			}
			if len(out) > MaxResultSize-64 { // keep the newest output
				out = out[len(out)-(MaxResultSize-64):]
			}
			return nil
		})
		if err == nil {
			return out, nil
		}
	case "stats":
		var names []string
		if args.Name != "" {
			names = []string{args.Name}
		}
		sr, err := a.Stats(ctx, names)
		if err != nil {
			return nil, agentErr(err)
		}
		out := []Container{}
		for _, x := range sr.Stats {
			out = append(out, Container{Name: x.Name, State: "running", Usage: &Usage{CPUms: x.CPUNanos / 1e6, Mem: x.Memory, Pids: uint32(x.Pids), RxB: x.NetRx, TxB: x.NetTx}})
		}
		return out, nil
	case "inspect":
		cs, err := a.Inspect(args.Name)
		if err != nil {
			return nil, agentErr(err)
		}
		return fromAgent(*cs), nil
	case "images":
		st, _ := ad.Status(ctx)
		if st.Images == nil {
			st.Images = []Image{}
		}
		return st.Images, nil
	case "df":
		df, err := a.DF(ctx)
		if err != nil {
			return nil, agentErr(err)
		}
		return Flash{Free: uint64(max(df.Free, 0)), Reserve: uint64(max(df.Reserve, 0)), Store: uint64(max(df.ImageUse, 0))}, nil
	case "rmi":
		err = a.ImageRemove(ctx, args.Image)
	case "gc":
		r, err := a.ImageGC(ctx)
		if err != nil {
			return nil, agentErr(err)
		}
		if r.Removed == nil {
			r.Removed = []string{}
		}
		return r.Removed, nil
	case "reload":
		_, err = a.Reload(ctx)
	case "import":
		if ad.ImportURL == nil {
			return nil, &Error{Code: CodeUnavailable, Msg: "image import from a URL is not available in this agent"}
		}
		err = ad.ImportURL(ctx, args.URL, args.Digest, args.Name, progress)
	default:
		return nil, &Error{Code: CodeUnknownCommand, Msg: fmt.Sprintf("op %s not supported by this agent", c.Op)}
	}
	return nil, agentErr(err)
}

// Events implements Agent: the agent's event stream, as fleet events.
func (ad *AgentAdapter) Events(ctx context.Context) <-chan Event {
	_, ch := ad.A.Subscribe(ctx, ad.A.Status().EventSeq) // new events only
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-ch:
				if !ok {
					return
				}
				fe := Event{Time: uint64(e.Time.UnixMilli()), Kind: e.Type, Container: e.Container, Msg: truncate(e.Msg, 512)}
				if e.Exit != nil {
					fe.Code = int64(e.Exit.Code)
					if e.Exit.OOM {
						fe.Kind = "oom"
					}
				}
				if e.Health != "" && fe.Msg == "" {
					fe.Msg = e.Health
				}
				select {
				case out <- fe:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Apply implements Agent: images first (by digest, fetched by URL when
// missing), then the fleet-managed containers: created when new,
// recreated when their spec changed, removed when no longer desired.
// Containers the operator made locally (UCI, CLI) are never touched; a
// desired container with the same name is an item error.
func (ad *AgentAdapter) Apply(ctx context.Context, images []ImageRef, ctrs []ContainerSpec) []ItemError {
	a := ad.A
	ad.load()
	var errs []ItemError
	have := map[string]bool{}
	if il, err := a.ImageList(ctx); err == nil {
		for _, im := range il.Images {
			have[strings.TrimPrefix(im.Digest, "sha256:")] = true
		}
	}
	bad := map[string]bool{}
	for _, im := range images {
		if have[hex.EncodeToString(im.Digest)] {
			continue
		}
		var err error
		if ad.ImportURL == nil {
			err = &Error{Code: CodeUnavailable, Msg: fmt.Sprintf("image %s: import from %s: not available in this agent", im.Name, im.URL)}
		} else {
			err = ad.ImportURL(ctx, im.URL, im.Digest, im.Name, nil)
		}
		if err != nil {
			errs = append(errs, ItemError{Item: "image/" + im.Name, Code: CodeOf(agentErr(err)), Msg: truncate(err.Error(), 256)})
			bad[im.Name] = true
		}
	}
	ad.mu.Lock()
	managed := make(map[string]ContainerSpec, len(ad.managed))
	for k, v := range ad.managed {
		managed[k] = v
	}
	ad.mu.Unlock()
	want := map[string]bool{}
	for i := range ctrs {
		s := &ctrs[i]
		want[s.Name] = true
		item := "container/" + s.Name
		fail := func(err error) {
			errs = append(errs, ItemError{Item: item, Code: CodeOf(agentErr(err)), Msg: truncate(err.Error(), 256)})
		}
		if bad[s.Image] {
			fail(&Error{Code: CodeUnavailable, Msg: fmt.Sprintf("container %s: image %s failed", s.Name, s.Image)})
			continue
		}
		old, mine := managed[s.Name]
		if _, err := a.Inspect(s.Name); err == nil {
			if !mine {
				fail(&Error{Code: CodeConflict, Msg: fmt.Sprintf("container %s exists and is not managed by the fleet", s.Name)})
				continue
			}
			if reflect.DeepEqual(old, *s) {
				continue
			}
			if err := a.Remove(ctx, s.Name, true); err != nil {
				fail(err)
				continue
			}
		}
		as, err := toAgent(s)
		if err == nil {
			_, err = a.Run(ctx, as, !s.Stopped)
		}
		if err != nil && agent.CodeOf(err) != agent.CodeUnavailable {
			// Created but not started for want of a part counts as
			// applied: the agent keeps trying and reports the state.
			if _, ierr := a.Inspect(s.Name); ierr != nil {
				fail(err)
				continue
			}
		}
		managed[s.Name] = *s
		if err != nil {
			fail(err)
		}
	}
	for name := range managed {
		if want[name] {
			continue
		}
		if err := a.Remove(ctx, name, true); err != nil && agent.CodeOf(err) != agent.CodeNotFound {
			errs = append(errs, ItemError{Item: "container/" + name, Code: CodeOf(agentErr(err)), Msg: truncate(err.Error(), 256)})
			continue
		}
		delete(managed, name)
	}
	ad.save(managed)
	return errs
}

func (ad *AgentAdapter) forget(name string) {
	ad.load()
	ad.mu.Lock()
	_, ok := ad.managed[name]
	m := make(map[string]ContainerSpec, len(ad.managed))
	for k, v := range ad.managed {
		if k != name {
			m[k] = v
		}
	}
	ad.mu.Unlock()
	if ok {
		ad.save(m)
	}
}

func (ad *AgentAdapter) load() {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.loaded {
		return
	}
	ad.loaded = true
	ad.managed = map[string]ContainerSpec{}
	if ad.ManagedFile == "" {
		return
	}
	b, err := os.ReadFile(ad.ManagedFile)
	if err != nil || len(b) > MaxDesiredSize {
		return
	}
	var list []ContainerSpec
	if decMode.Unmarshal(b, &list) == nil {
		for _, s := range list {
			ad.managed[s.Name] = s
		}
	}
}

// save replaces the managed set, writing the file only if it changed.
func (ad *AgentAdapter) save(m map[string]ContainerSpec) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if reflect.DeepEqual(m, ad.managed) {
		return
	}
	ad.managed = m
	if ad.ManagedFile == "" {
		return
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	list := make([]ContainerSpec, 0, len(m))
	for _, n := range names {
		list = append(list, m[n])
	}
	b, err := encMode.Marshal(list)
	if err != nil {
		return
	}
	tmp := ad.ManagedFile + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, ad.ManagedFile)
	}
}

// AgentOptions are what ForAgent needs besides the agent and the section.
type AgentOptions struct {
	DefaultID string // device id unless the section sets device_id (DeviceIDFromMAC of the label MAC)
	StateDir  string // fleet state files (tmpfs is fine); "" keeps them in RAM
	Board     Board
	// ImportURL fetches images by URL into the store (see AgentAdapter).
	ImportURL func(ctx context.Context, url string, digest []byte, name string, progress func(uint8)) error
}

// ForAgent is the whole wiring for `otok agent`: it reads the `config
// fleet` section (through the UCI section's Get and List), and returns the
// session over the agent, or on=false when the section says enabled '0'.
// The caller runs s.Run(ctx) and cancels ctx on shutdown, which publishes
// death (cmd/otok/fleet_agent.go does all of it).
func ForAgent(a *agent.Agent, get func(string) (string, bool), list func(string) []string, o AgentOptions) (s *Session, on bool, err error) {
	cfg, on, err := ParseConfig(get, list, o.DefaultID)
	if err != nil || !on {
		return nil, on, err
	}
	ad := &AgentAdapter{A: a, Board: o.Board, ImportURL: o.ImportURL}
	if o.StateDir != "" {
		if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
			return nil, on, fmt.Errorf("fleet: %w", err)
		}
		cfg.VersionsFile = filepath.Join(o.StateDir, "fleet-versions.cbor")
		ad.ManagedFile = filepath.Join(o.StateDir, "fleet-managed.cbor")
	}
	cfg.Version = a.Status().Version
	s, err = NewSession(cfg, ad)
	return s, on, err
}
