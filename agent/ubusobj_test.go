package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

// The ubus object against ubustest.Broker (a test double of ubusd that
// forwards bytes as ubusd does) with the agent's real command API behind
// it and the recorded runtime fakes of fake_test.go.

// fakeImages is an ImageStore that records imports.
type fakeImages struct {
	mu   sync.Mutex
	imgs []ImageInfo
}

func (f *fakeImages) Import(ctx context.Context, r *ImageImportRequest) (*ImageInfo, error) {
	path := r.Path
	if _, err := os.Stat(path); err != nil {
		return nil, Errorf(CodeNotFound, "image file %s: %v", path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	info := ImageInfo{Name: filepath.Base(path), Version: "1", Digest: "sha256:" + filepath.Base(path), Size: 4096}
	f.imgs = append(f.imgs, info)
	return &info, nil
}
func (f *fakeImages) List(ctx context.Context) ([]ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.imgs), nil
}
func (f *fakeImages) Remove(ctx context.Context, ref string) error { return nil }
func (f *fakeImages) GC(ctx context.Context, inUse func(string) bool) (*GCReply, error) {
	return &GCReply{}, nil
}
func (f *fakeImages) DF(ctx context.Context) (*DFReply, error) {
	return &DFReply{Store: "/overlay/otok", Total: 64 << 20, Free: 32 << 20, Images: len(f.imgs)}, nil
}

type ubusEnv struct {
	*testEnv
	broker *ubustest.Broker
	sock   string
	c      *ubus.Client // a caller, like `ubus call`
}

// newUbusEnv starts a broker, an agent whose config names the broker's
// socket, the agent's ubus service, and a client; it waits until the
// object is published.
func newUbusEnv(t *testing.T, uci string, images ImageStore) *ubusEnv {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "ubus.sock")
	b, err := ubustest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := "config agent\n\toption ubus_socket '" + sock + "'\n\n" + uci
	if err := os.WriteFile(filepath.Join(dir, "otok"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := newFakeRT()
	clock := newFakeClock()
	a := New(Options{ConfigPath: filepath.Join(dir, "otok"), StateDir: filepath.Join(dir, "state"), Runtime: fakeUpdater{rt},
		Store: fakeStore{}, Images: images, Clock: clock, Log: newTestLogger()})
	a.Load()
	ctx, cancel := context.WithCancel(context.Background())
	a.StartUbus(ctx)
	if _, err := a.Init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); a.Close() })
	c, err := ubus.Dial(context.Background(), ubus.Options{Path: sock, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := &ubusEnv{testEnv: &testEnv{t: t, a: a, rt: rt, clock: clock, dir: dir}, broker: b, sock: sock, c: c}
	e.waitObject()
	return e
}

func (e *ubusEnv) waitObject() {
	e.t.Helper()
	e.waitFor("object otok", func() bool {
		_, err := e.c.LookupID(context.Background(), "otok")
		return err == nil
	})
}

// call invokes a method; it returns the last DATA reply (generic form)
// and the status error.
func (e *ubusEnv) call(method string, args any) (map[string]any, error) {
	e.t.Helper()
	var out map[string]any
	err := e.c.Call(context.Background(), "otok", method, args, &out)
	return out, err
}

func (e *ubusEnv) mustCall(method string, args any) map[string]any {
	e.t.Helper()
	out, err := e.call(method, args)
	if err != nil {
		e.t.Fatalf("%s %v: %v (%v)", method, args, err, out)
	}
	return out
}

// wantStatus checks that a call failed with st and, when msg is not
// empty, that its error reply contains msg.
func (e *ubusEnv) wantStatus(method string, args any, st ubus.Status, msg string) {
	e.t.Helper()
	out, err := e.call(method, args)
	if !errors.Is(err, st) {
		e.t.Errorf("%s %v: got %v (%v), want %v", method, args, err, out, st)
		return
	}
	if msg != "" {
		if s, _ := out["error"].(string); !strings.Contains(s, msg) {
			e.t.Errorf("%s %v: error reply %v, want it to contain %q", method, args, out, msg)
		}
	}
}

func TestUbusSignature(t *testing.T) {
	e := newUbusEnv(t, "", nil)
	objs, err := e.c.Lookup(context.Background(), "otok")
	if err != nil || len(objs) != 1 {
		t.Fatalf("lookup: %v %v", objs, err)
	}
	sig := objs[0].Signature
	want := []string{"check", "create", "df", "images", "import", "kill", "list", "logs", "remove", "restart", "run", "start", "stats", "status", "stop", "update"}
	if got := objs[0].Methods(); !slices.Equal(got, want) {
		t.Errorf("methods %v, want %v", got, want)
	}
	for m, args := range map[string]map[string]ubus.Type{
		"run":    {"name": ubus.TypeString, "image": ubus.TypeString, "command": ubus.TypeArray, "cpus": ubus.TypeString, "pids": ubus.TypeInt32, "privileged": ubus.TypeBool, "memory": ubus.TypeString},
		"stop":   {"name": ubus.TypeString, "timeout": ubus.TypeInt32},
		"remove": {"name": ubus.TypeString, "force": ubus.TypeBool},
		"list":   {"all": ubus.TypeBool},
		"import": {"path": ubus.TypeString},
		"df":     {},
	} {
		for a, ty := range args {
			if sig[m][a] != ty {
				t.Errorf("%s(%s): type %v, want %v", m, a, sig[m][a], ty)
			}
		}
		if len(args) == 0 && len(sig[m]) != 0 {
			t.Errorf("%s: args %v, want none", m, sig[m])
		}
	}
	// libubus's CLI names String, Integer (int32), Boolean, Array, Table
	// and shows "(unknown)" for the rest
	for m, args := range sig {
		for a, ty := range args {
			switch ty {
			case ubus.TypeString, ubus.TypeInt32, ubus.TypeBool, ubus.TypeArray, ubus.TypeTable:
			default:
				t.Errorf("%s(%s): type %v, which `ubus -v list` cannot name", m, a, ty)
			}
		}
	}
	if !slices.Equal(sortedArgs(sig["run"]), sortedArgs(sig["create"])) || len(sig["run"]) != len(ubusRunArgs) {
		t.Errorf("run/create signatures differ: %v %v", sig["run"], sig["create"])
	}
}

func sortedArgs(m map[string]ubus.Type) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// events collects ubus events matching pattern.
type events struct {
	mu  sync.Mutex
	got []map[string]any
	ids []string
}

func (e *ubusEnv) listen(pattern string) *events {
	e.t.Helper()
	ev := &events{}
	l, err := e.c.Listen(context.Background(), pattern, func(x ubus.Event) {
		var m map[string]any
		if err := x.Decode(&m); err != nil {
			e.t.Errorf("event %s: %v", x.Type, err)
		}
		ev.mu.Lock()
		ev.got = append(ev.got, m)
		ev.ids = append(ev.ids, x.Type)
		ev.mu.Unlock()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close(context.Background()) })
	return ev
}

// summary lists "id type container state" per event.
func (ev *events) summary() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []string
	for i, m := range ev.got {
		s := ev.ids[i] + " " + str(m["type"])
		if c := str(m["container"]); c != "" {
			s += " " + c
		}
		if st := str(m["state"]); st != "" {
			s += " " + st
		}
		out = append(out, s)
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func TestUbusLifecycle(t *testing.T) {
	e := newUbusEnv(t, "config container web\n\toption image busybox\n", nil)
	ev := e.listen("otok.*")
	e.waitState("web", StateRunning)

	r := e.mustCall("run", map[string]any{"name": "api", "image": "busybox", "command": []string{"sleep", "60"},
		"env": []string{"A=1"}, "memory": "64M", "cpus": "0.5", "pids": 64, "restart": "on-failure:3", "stop_timeout": 7,
		"privileged": false})
	if r["name"] != "api" || r["state"] != StateRunning || r["pid"] == nil {
		t.Fatalf("run reply %v", r)
	}
	in, err := e.a.Inspect("api")
	if err != nil || in.Spec.Memory != 64<<20 || in.Spec.CPUs != 0.5 || in.Spec.Pids != 64 || in.Spec.Restart.MaxRetries != 3 ||
		in.Spec.StopTimeout != 7*time.Second || !slices.Equal(in.Spec.Command, []string{"sleep", "60"}) || in.Spec.Env[0] != "A=1" ||
		in.Spec.Source != "api" {
		t.Fatalf("spec from ubus: %+v %v", in.Spec, err)
	}
	list := e.mustCall("list", nil)
	cs, _ := list["containers"].([]any)
	if len(cs) != 2 {
		t.Fatalf("list %v", list)
	}
	st := e.mustCall("status", map[string]any{"name": "api"})
	if st["state"] != StateRunning || st["spec"] == nil {
		t.Errorf("status api: %v", st)
	}
	ag := e.mustCall("status", nil)
	if ag["containers"] != int32(2) || ag["running"] != int32(2) || ag["ubus"] != e.sock {
		t.Errorf("status: %v", ag)
	}
	if b, _ := ag["board"].(map[string]any); b == nil || b["source"] != "files" || b["kernel"] == "" {
		t.Errorf("status board: %v", ag["board"])
	}
	stats := e.mustCall("stats", map[string]any{"name": "api"})
	if s, _ := stats["stats"].([]any); len(s) != 1 || s[0].(map[string]any)["cpu_ns"] != int64(42) {
		t.Errorf("stats %v", stats)
	}
	if r := e.mustCall("stop", map[string]any{"name": "api", "timeout": 1}); r["state"] != StateStopped {
		t.Errorf("stop: %v", r)
	}
	if r := e.mustCall("start", map[string]any{"name": "api"}); r["state"] != StateRunning {
		t.Errorf("start: %v", r)
	}
	if r := e.mustCall("restart", map[string]any{"name": "api"}); r["state"] != StateRunning {
		t.Errorf("restart: %v", r)
	}
	if r := e.mustCall("logs", map[string]any{"name": "api", "tail": 10}); r["name"] != "api" {
		t.Errorf("logs: %v", r)
	}
	if r := e.mustCall("remove", map[string]any{"name": "api", "force": true}); len(r) != 0 {
		t.Errorf("remove replied %v", r)
	}
	if _, err := e.a.Inspect("api"); CodeOf(err) != CodeNotFound {
		t.Errorf("api still there: %v", err)
	}
	// create: made, not started
	if r := e.mustCall("create", map[string]any{"name": "later", "image": "busybox"}); r["state"] != StateCreated {
		t.Errorf("create: %v", r)
	}
	if n := len(e.rt.callsOf("create later")); n != 0 {
		t.Errorf("create started the container")
	}

	want := []string{
		"otok.container create api",
		"otok.container start api",
		"otok.container stop api",
		"otok.container start api",
		"otok.container remove api",
		"otok.container create later",
	}
	e.waitFor("events", func() bool {
		got := strings.Join(ev.summary(), "\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				return false
			}
		}
		return true
	})
	for _, s := range ev.summary() {
		if strings.HasPrefix(s, "otok.container start api") && !strings.HasSuffix(s, " "+StateRunning) {
			t.Errorf("start event without state running: %q", s)
		}
	}
	ev.mu.Lock()
	for _, m := range ev.got {
		if m["seq"] == nil || m["time"] == nil {
			t.Errorf("event without seq or time: %v", m)
		}
	}
	ev.mu.Unlock()
}

func TestUbusBadArguments(t *testing.T) {
	e := newUbusEnv(t, "config container web\n\toption image busybox\n", nil)
	e.waitState("web", StateRunning)
	before := len(e.rt.callsOf("create"))

	// Wrong types: refused before the handler (library signature check).
	e.wantStatus("run", map[string]any{"name": 5, "image": "busybox"}, ubus.StatusInvalidArgument, "")
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "command": "sleep 1"}, ubus.StatusInvalidArgument, "")
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "pids": "many"}, ubus.StatusInvalidArgument, "")
	e.wantStatus("start", map[string]any{"name": true}, ubus.StatusInvalidArgument, "")
	e.wantStatus("stop", map[string]any{"name": "web", "timeout": "soon"}, ubus.StatusInvalidArgument, "")
	e.wantStatus("list", map[string]any{"all": "yes"}, ubus.StatusInvalidArgument, "")
	// Wrong members, missing or unknown arguments, bad values: refused by
	// the handler with a reason.
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "command": []any{"sleep", 1}}, ubus.StatusInvalidArgument, "command[1]: want a string")
	e.wantStatus("run", map[string]any{"image": "busybox"}, ubus.StatusInvalidArgument, "name: missing")
	e.wantStatus("run", map[string]any{"name": "x"}, ubus.StatusInvalidArgument, "image: missing")
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "memroy": "64M"}, ubus.StatusInvalidArgument, `unknown argument "memroy"`)
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "memory": "lots"}, ubus.StatusInvalidArgument, "memory")
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "restart": "sometimes"}, ubus.StatusInvalidArgument, "restart")
	e.wantStatus("run", map[string]any{"name": "../x", "image": "busybox"}, ubus.StatusInvalidArgument, "invalid name")
	e.wantStatus("run", map[string]any{"name": "x", "image": "busybox", "env": []string{"NOEQUALS"}}, ubus.StatusInvalidArgument, "env")
	e.wantStatus("stop", nil, ubus.StatusInvalidArgument, "name: missing")
	e.wantStatus("stop", map[string]any{"name": "web", "timeout": -1}, ubus.StatusInvalidArgument, "timeout")
	e.wantStatus("logs", map[string]any{"name": "web", "tail": -3}, ubus.StatusInvalidArgument, "tail")
	e.wantStatus("import", nil, ubus.StatusInvalidArgument, "path: missing")
	// API error codes map to ubus status codes once (Error.UbusStatus).
	e.wantStatus("start", map[string]any{"name": "nope"}, ubus.StatusNotFound, "container nope: not found")
	e.wantStatus("run", map[string]any{"name": "web", "image": "busybox"}, ubus.StatusInvalidCommand, "already exists")
	e.wantStatus("remove", map[string]any{"name": "web"}, ubus.StatusInvalidCommand, "")
	e.wantStatus("images", nil, ubus.StatusNoData, "image store")
	e.wantStatus("nosuchmethod", nil, ubus.StatusMethodNotFound, "")

	if n := len(e.rt.callsOf("create")); n != before {
		t.Errorf("bad calls created containers: %v", e.rt.callsOf("create"))
	}
	if l := e.a.List(true).Containers; len(l) != 1 || l[0].Name != "web" || l[0].State != StateRunning {
		t.Errorf("bad calls changed state: %+v", l)
	}
}

func TestUbusImages(t *testing.T) {
	imgs := &fakeImages{}
	e := newUbusEnv(t, "", imgs)
	ev := e.listen("otok.image")
	f := filepath.Join(e.dir, "adguard.otok")
	os.WriteFile(f, []byte("x"), 0o644)
	r := e.mustCall("import", map[string]any{"path": f})
	if r["name"] != "adguard.otok" || r["digest"] != "sha256:adguard.otok" {
		t.Errorf("import: %v", r)
	}
	e.wantStatus("import", map[string]any{"path": "/nonexistent"}, ubus.StatusNotFound, "nonexistent")
	if r := e.mustCall("images", nil); len(r["images"].([]any)) != 1 {
		t.Errorf("images: %v", r)
	}
	if r := e.mustCall("df", nil); r["store"] != "/overlay/otok" || r["images"] != int32(1) {
		t.Errorf("df: %v", r)
	}
	e.waitFor("otok.image event", func() bool {
		s := ev.summary()
		return len(s) == 1 && s[0] == "otok.image image"
	})
	ev.mu.Lock()
	if m := ev.got[0]; m["image"] != "sha256:adguard.otok" || !strings.Contains(str(m["msg"]), "installed") {
		t.Errorf("image event %v", m)
	}
	ev.mu.Unlock()
}

func TestUbusCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("probes the kernel")
	}
	e := newUbusEnv(t, "", nil)
	r := e.mustCall("check", nil)
	if fs, _ := r["features"].([]any); len(fs) == 0 || r["kernel"] == "" {
		t.Errorf("check: %v", r)
	}
}

// With procd's system object on the bus, status takes the board from it.
func TestUbusBoardFromSystem(t *testing.T) {
	e := newUbusEnv(t, "", nil)
	sys, err := ubus.Dial(context.Background(), ubus.Options{Path: e.sock})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	err = sys.AddObject(context.Background(), &ubus.Object{Name: "system", Methods: map[string]ubus.Method{
		"board": {Handler: func(ctx context.Context, req *ubus.Request) error {
			return req.Reply(map[string]any{"kernel": "6.6.73", "hostname": "OpenWrt", "system": "ARMv8 Processor rev 4",
				"model": "CMCC RAX3000M", "board_name": "cmcc,rax3000m", "rootfs_type": "squashfs",
				"release": map[string]any{"distribution": "OpenWrt", "version": "24.10.0", "revision": "r28427-6df0e3d02a",
					"target": "mediatek/filogic", "description": "OpenWrt 24.10.0 r28427-6df0e3d02a", "builddate": "1738624177"}})
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st := e.mustCall("status", nil)
	b, _ := st["board"].(map[string]any)
	rel, _ := b["release"].(map[string]any)
	if b["source"] != "ubus" || b["model"] != "CMCC RAX3000M" || b["board_name"] != "cmcc,rax3000m" || rel["version"] != "24.10.0" || rel["target"] != "mediatek/filogic" {
		t.Errorf("board: %v", b)
	}
}

// Without ubusd the agent runs and keeps looking; a ubusd that starts
// later is found, and one that restarts gets the object again.
func TestUbusLateAndRestartedBroker(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ubus.sock")
	cfg := filepath.Join(dir, "otok")
	os.WriteFile(cfg, []byte("config agent\n\toption ubus_socket '"+sock+"'\n"), 0o644)
	a := New(Options{ConfigPath: cfg, StateDir: filepath.Join(dir, "state"), Runtime: newFakeRT(), Store: fakeStore{},
		Clock: newFakeClock(), Log: newTestLogger()})
	a.Load()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); a.Close() }()
	u := a.StartUbus(ctx)
	if _, err := a.Init(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a first attempt fails: nothing listens
	if u.Client() != nil {
		t.Fatal("connected without a broker")
	}
	b, err := ubustest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	c := waitLookup(t, sock)
	if err := c.Call(ctx, "otok", "list", nil, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// ubusd restarts: the library reconnects and adds the object again
	b.Close()
	b, err = ubustest.Start(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c = waitLookup(t, sock)
	defer c.Close()
	var r map[string]any
	if err := c.Call(ctx, "otok", "status", nil, &r); err != nil || r["pid"] == nil {
		t.Fatalf("status after restart: %v %v", r, err)
	}
}

func waitLookup(t *testing.T, sock string) *ubus.Client {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := ubus.Dial(context.Background(), ubus.Options{Path: sock, Timeout: time.Second})
		if err == nil {
			if _, err := c.LookupID(context.Background(), "otok"); err == nil {
				return c
			}
			c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("object otok did not appear")
	return nil
}

func TestUbusBoardFromFiles(t *testing.T) {
	dir := t.TempDir()
	bj := filepath.Join(dir, "board.json")
	rel := filepath.Join(dir, "openwrt_release")
	os.WriteFile(bj, []byte(`{"model":{"id":"cmcc,rax3000m","name":"CMCC RAX3000M"},"network":{"lan":{"device":"br-lan","ports":["lan1"]}}}`), 0o644)
	os.WriteFile(rel, []byte("DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.0'\nDISTRIB_TARGET='mediatek/filogic'\nDISTRIB_DESCRIPTION='OpenWrt 24.10.0'\n"), 0o644)
	b := boardFromFiles(bj, rel)
	if b.Source != "files" || b.Model != "CMCC RAX3000M" || b.BoardName != "cmcc,rax3000m" || b.Release == nil ||
		b.Release.Version != "24.10.0" || b.Release.Target != "mediatek/filogic" || b.Kernel == "" {
		t.Errorf("%+v %+v", b, b.Release)
	}
	b = boardFromFiles(filepath.Join(dir, "none"), filepath.Join(dir, "none"))
	if b.Model != "" || b.Release != nil || b.Kernel == "" {
		t.Errorf("no files: %+v", b)
	}
}

// Subscribers of the object (`ubus subscribe otok`) get every event as a
// notification of the same type.
func TestUbusSubscribe(t *testing.T) {
	e := newUbusEnv(t, "", nil)
	var mu sync.Mutex
	var got []string
	sub, err := e.c.Subscribe(context.Background(), "otok", func(ev ubus.Event) {
		var m map[string]any
		ev.Decode(&m)
		mu.Lock()
		got = append(got, ev.Type+" "+str(m["type"])+" "+str(m["container"]))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	// ubusd tells the object about its first subscriber asynchronously:
	// create containers until a notification arrives.
	n := 0
	e.waitFor("notification", func() bool {
		n++
		name := "n" + strconv.Itoa(n)
		e.mustCall("create", map[string]any{"name": name, "image": "busybox"})
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, "otok.container create "+name)
	})
}

// Every declared argument of every method, given a value of another type,
// is refused with INVALID_ARGUMENT and changes nothing.
func TestUbusEveryArgumentMistyped(t *testing.T) {
	e := newUbusEnv(t, "config container web\n\toption image busybox\n", &fakeImages{})
	e.waitState("web", StateRunning)
	e.rt.mu.Lock()
	before := len(e.rt.calls)
	e.rt.mu.Unlock()
	objs, err := e.c.Lookup(context.Background(), "otok")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for method, args := range objs[0].Signature {
		for arg, ty := range args {
			var wrong any = "x"
			if ty == ubus.TypeString {
				wrong = int32(5)
			}
			e.wantStatus(method, map[string]any{"name": "web", arg: wrong}, ubus.StatusInvalidArgument, "")
			n++
		}
	}
	e.rt.mu.Lock()
	after := len(e.rt.calls)
	e.rt.mu.Unlock()
	if after != before {
		t.Errorf("mistyped calls reached the runtime: %v", e.rt.calls[before:])
	}
	if l := e.a.List(true).Containers; len(l) != 1 || l[0].State != StateRunning {
		t.Errorf("state changed: %+v", l)
	}
	t.Logf("%d mistyped arguments refused", n)
}

// logs answers with the end of the output, cut at a line, as valid text.
func TestUbusLogsBounded(t *testing.T) {
	e := newUbusEnv(t, "", nil)
	e.mustCall("create", map[string]any{"name": "chatty", "image": "busybox"})
	var b strings.Builder
	for i := 0; b.Len() < 3*ubusLogMax; i++ {
		b.WriteString("line " + strconv.Itoa(i) + " " + strings.Repeat("x", 70) + "\n")
	}
	b.WriteString("bad bytes \x00\xff\xfe end\n")
	if err := os.WriteFile(e.a.logPath("chatty"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.mustCall("logs", map[string]any{"name": "chatty"})
	log := str(r["log"])
	if len(log) > ubusLogMax || len(log) < ubusLogMax/2 || r["truncated"] != true || !strings.HasPrefix(log, "line ") ||
		!strings.HasSuffix(log, "bad bytes \uFFFD\uFFFD end\n") {
		t.Errorf("logs: %d bytes, truncated %v, starts %q, ends %q", len(log), r["truncated"], log[:min(20, len(log))], log[max(0, len(log)-30):])
	}
	r = e.mustCall("logs", map[string]any{"name": "chatty", "tail": 2})
	if l := str(r["log"]); !strings.HasSuffix(l, "end\n") || strings.Count(l, "\n") != 2 || r["truncated"] != nil {
		t.Errorf("tail 2: %q %v", l, r)
	}
}

func TestUbusKillAndUpdate(t *testing.T) {
	e := newUbusEnv(t, "config container web\n\toption image busybox\n\toption restart always\n", nil)
	e.waitState("web", StateRunning)
	r := e.mustCall("update", map[string]any{"name": "web", "memory": "48M", "pids": 30})
	if r["live"] != true || r["saved"] == true || !strings.Contains(fmt.Sprint(r["note"]), "defined in") {
		t.Errorf("update reply %v", r)
	}
	if got := e.rt.callsOf("update web"); !slices.Equal(got, []string{"update web 50331648"}) {
		t.Errorf("runtime calls %v", got)
	}
	e.wantStatus("update", map[string]any{"name": "web", "memory": "lots"}, ubus.StatusInvalidArgument, "memory")
	e.wantStatus("update", map[string]any{"name": "web", "cpus": "fast"}, ubus.StatusInvalidArgument, "cpus")
	e.wantStatus("update", map[string]any{"name": "web"}, ubus.StatusInvalidArgument, "nothing to change")
	e.wantStatus("kill", map[string]any{"name": "web", "signal": "NOPE"}, ubus.StatusInvalidArgument, "unknown signal name")
	e.wantStatus("kill", map[string]any{"name": "ghost"}, ubus.StatusNotFound, "ghost")
	e.mustCall("kill", map[string]any{"name": "web", "signal": "TERM"})
	e.waitState("web", StateStopped) // a kill is a manual stop: always does not restart it
}
