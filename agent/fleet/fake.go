package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"
	"time"
)

// FakeAgent is an in-memory agent with a fake runtime: containers change
// state instantly, images "download" by checking that their digest is
// FakeDigest(url). It serves `otok fleet sim`, demos and tests; everything
// above it (the Session) is the real fleet code.
type FakeAgent struct {
	mu         sync.Mutex
	board      Board
	version    string
	started    time.Time
	images     map[string]Image
	containers map[string]*Container
	managed    map[string]bool // containers that came from desired state
	events     chan Event
	// ImportStep is the time between progress steps of an import.
	ImportStep time.Duration
}

// FakeDigest is the digest FakeAgent expects for an image at url.
func FakeDigest(url string) []byte {
	h := sha256.Sum256([]byte(url))
	return h[:]
}

// NewFakeAgent returns a fake agent for a board model.
func NewFakeAgent(model, arch string) *FakeAgent {
	return &FakeAgent{
		board:   Board{Model: model, Arch: arch, Release: "24.10.0", Kernel: "6.6.73"},
		version: "sim", started: time.Now(),
		images: map[string]Image{}, containers: map[string]*Container{}, managed: map[string]bool{},
		events: make(chan Event, 64),
	}
}

// Emit sends an event as if the runtime produced it (dropped if nobody
// reads and the channel is full).
func (f *FakeAgent) Emit(e Event) {
	select {
	case f.events <- e:
	default:
	}
}

// Events implements Agent.
func (f *FakeAgent) Events(ctx context.Context) <-chan Event { return f.events }

// Status implements Agent.
func (f *FakeAgent) Status(ctx context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Board: f.board, Agent: AgentInfo{Version: f.version, Uptime: uint64(time.Since(f.started) / time.Second)}}
	var used uint64
	for _, n := range sortedKeys(f.images) {
		st.Images = append(st.Images, f.images[n])
		used += f.images[n].Size
	}
	for _, n := range sortedKeys(f.containers) {
		st.Containers = append(st.Containers, *f.containers[n])
	}
	st.Flash = &Flash{Free: 48<<20 - used, Reserve: 4 << 20, Store: used}
	return st, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (f *FakeAgent) get(name string) (*Container, error) {
	c := f.containers[name]
	if c == nil {
		return nil, &Error{Code: CodeNotFound, Msg: fmt.Sprintf("container %s: not found", name)}
	}
	return c, nil
}

func (f *FakeAgent) hasImage(ref string) bool {
	if _, ok := f.images[ref]; ok {
		return true
	}
	for _, im := range f.images {
		if fmt.Sprintf("%x", im.Digest) == ref {
			return true
		}
	}
	return false
}

// Do implements Agent.
func (f *FakeAgent) Do(ctx context.Context, c *Command, progress func(uint8)) (any, error) {
	a := c.Args
	if c.Op == "import" {
		return nil, f.importImage(ctx, ImageRef{Name: a.Name, URL: a.URL, Digest: a.Digest}, progress)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var ev *Event
	defer func() {
		if ev != nil {
			f.Emit(*ev)
		}
	}()
	switch c.Op {
	case "ps":
		out := []Container{}
		for _, n := range sortedKeys(f.containers) {
			out = append(out, *f.containers[n])
		}
		return out, nil
	case "run":
		sp := a.Spec
		if _, ok := f.containers[sp.Name]; ok {
			return nil, &Error{Code: CodeConflict, Msg: fmt.Sprintf("container %s: already exists", sp.Name)}
		}
		if !f.hasImage(sp.Image) {
			return nil, &Error{Code: CodeNotFound, Msg: fmt.Sprintf("container %s: image %s: not found", sp.Name, sp.Image)}
		}
		f.containers[sp.Name] = &Container{Name: sp.Name, Image: sp.Image, State: "running", Started: nowMs(), Addrs: []string{"192.168.1.50/24"}}
		ev = &Event{Kind: "start", Container: sp.Name}
		return nil, nil
	case "start", "stop", "restart", "rm":
		ct, err := f.get(a.Name)
		if err != nil {
			return nil, err
		}
		switch c.Op {
		case "start":
			ct.State, ct.Started = "running", nowMs()
			ev = &Event{Kind: "start", Container: a.Name}
		case "stop":
			ct.State, ct.Exit = "stopped", &Exit{Code: 0, Signal: 15}
			ev = &Event{Kind: "exit", Container: a.Name, Code: 143}
		case "restart":
			ct.State, ct.Started = "running", nowMs()
			ct.Restarts++
			ev = &Event{Kind: "restart", Container: a.Name}
		case "rm":
			if ct.State == "running" && !a.Force {
				return nil, &Error{Code: CodeConflict, Msg: fmt.Sprintf("container %s: running (use force)", a.Name)}
			}
			delete(f.containers, a.Name)
			delete(f.managed, a.Name)
			ev = &Event{Kind: "remove", Container: a.Name}
		}
		return nil, nil
	case "inspect":
		ct, err := f.get(a.Name)
		if err != nil {
			return nil, err
		}
		return *ct, nil
	case "images":
		out := []Image{}
		for _, n := range sortedKeys(f.images) {
			out = append(out, f.images[n])
		}
		return out, nil
	case "df":
		var used uint64
		for _, im := range f.images {
			used += im.Size
		}
		return Flash{Free: 48<<20 - used, Reserve: 4 << 20, Store: used}, nil
	case "rmi":
		if _, ok := f.images[a.Image]; !ok {
			return nil, &Error{Code: CodeNotFound, Msg: fmt.Sprintf("image %s: not found", a.Image)}
		}
		for _, c := range f.containers {
			if c.Image == a.Image {
				return nil, &Error{Code: CodeConflict, Msg: fmt.Sprintf("image %s: used by container %s", a.Image, c.Name)}
			}
		}
		delete(f.images, a.Image)
		ev = &Event{Kind: "remove", Msg: "image " + a.Image}
		return nil, nil
	case "gc":
		used := map[string]bool{}
		for _, c := range f.containers {
			used[c.Image] = true
		}
		removed := []string{}
		for _, n := range sortedKeys(f.images) {
			if !used[n] {
				removed = append(removed, n)
				delete(f.images, n)
			}
		}
		return removed, nil
	case "reload":
		return nil, nil
	case "logs":
		if _, err := f.get(a.Name); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		n := int(a.Tail)
		if n == 0 || n > 100 {
			n = 100
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%s: fake log line %d\n", a.Name, i+1)
		}
		return b.Bytes(), nil
	case "stats":
		out := []Container{}
		for _, n := range sortedKeys(f.containers) {
			ct := f.containers[n]
			if a.Name != "" && n != a.Name {
				continue
			}
			out = append(out, Container{Name: n, Image: ct.Image, State: ct.State, Usage: &Usage{CPUms: 1200, Mem: 3 << 20, Pids: 2}})
		}
		if a.Name != "" && len(out) == 0 {
			return nil, &Error{Code: CodeNotFound, Msg: fmt.Sprintf("container %s: not found", a.Name)}
		}
		return out, nil
	}
	return nil, &Error{Code: CodeUnknownCommand, Msg: fmt.Sprintf("op %s not supported", c.Op)}
}

func (f *FakeAgent) importImage(ctx context.Context, im ImageRef, progress func(uint8)) error {
	for p := 0; p <= 100; p += 25 {
		if progress != nil {
			progress(uint8(p))
		}
		if f.ImportStep > 0 && !sleepCtx(ctx, f.ImportStep) {
			return ctx.Err()
		}
	}
	if len(im.Signature) > 0 && !bytes.HasPrefix(im.Signature, []byte("\xd2\x84")) {
		return &Error{Code: CodeVerify, Msg: fmt.Sprintf("image %s: manifest signature is not a COSE_Sign1", im.Name)}
	}
	if !bytes.Equal(FakeDigest(im.URL), im.Digest) {
		f.Emit(Event{Kind: "error", Msg: fmt.Sprintf("image %s: digest mismatch", im.Name)})
		return &Error{Code: CodeVerify, Msg: fmt.Sprintf("image %s from %s: sha256 %x does not match", im.Name, im.URL, im.Digest)}
	}
	name := im.Name
	if name == "" {
		name = fmt.Sprintf("%x", im.Digest[:6])
	}
	f.mu.Lock()
	f.images[name] = Image{Name: name, Version: im.Version, Digest: im.Digest, Size: 1 << 20}
	f.mu.Unlock()
	f.Emit(Event{Kind: "install", Msg: "image " + name})
	return nil
}

// Apply implements Agent: fetch missing images, then make the managed
// containers match.
func (f *FakeAgent) Apply(ctx context.Context, images []ImageRef, ctrs []ContainerSpec) []ItemError {
	var errs []ItemError
	bad := map[string]bool{}
	for _, im := range images {
		f.mu.Lock()
		have, ok := f.images[im.Name]
		f.mu.Unlock()
		if ok && bytes.Equal(have.Digest, im.Digest) {
			continue
		}
		if err := f.importImage(ctx, im, nil); err != nil {
			errs = append(errs, ItemError{Item: "image/" + im.Name, Code: CodeOf(err), Msg: err.Error()})
			bad[im.Name] = true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[string]bool{}
	for _, sp := range ctrs {
		want[sp.Name] = true
		if bad[sp.Image] || !f.hasImage(sp.Image) {
			errs = append(errs, ItemError{Item: "container/" + sp.Name, Code: CodeUnavailable, Msg: fmt.Sprintf("container %s: image %s not available", sp.Name, sp.Image)})
			continue
		}
		state := "running"
		if sp.Stopped {
			state = "stopped"
		}
		cur := f.containers[sp.Name]
		if cur != nil && cur.Image == sp.Image && cur.State == state {
			f.managed[sp.Name] = true
			continue
		}
		f.containers[sp.Name] = &Container{Name: sp.Name, Image: sp.Image, State: state, Started: nowMs(), Addrs: []string{"192.168.1.50/24"}}
		f.managed[sp.Name] = true
		f.Emit(Event{Kind: "start", Container: sp.Name})
	}
	for n := range f.managed {
		if !want[n] {
			delete(f.containers, n)
			delete(f.managed, n)
			f.Emit(Event{Kind: "remove", Container: n})
		}
	}
	return errs
}
