package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func startServer(t *testing.T, e *testEnv) string {
	t.Helper()
	path := filepath.Join(e.dir, "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.a.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestSocketRoundTrip(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container web\n option image busybox\n", rt)
	path := startServer(t, e)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path); CodeOf(err) != CodeConflict {
		t.Errorf("second listener: %v", err)
	}
	ctx := context.Background()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.waitState("web", StateRunning)
	st, err := c.Run(ctx, &ContainerSpec{Name: "api1", Image: "busybox", Command: []string{"sleep", "1"}})
	if err != nil || st.State != StateRunning || st.Pid == 0 {
		t.Fatalf("run: %+v %v", st, err)
	}
	list, err := c.List(ctx, true)
	if err != nil || len(list) != 2 || list[0].Name != "api1" || list[1].Name != "web" {
		t.Fatalf("list %+v %v", list, err)
	}
	in, err := c.Inspect(ctx, "api1")
	if err != nil || in.Spec == nil || in.Spec.Command[0] != "sleep" || in.Digest != "d-busybox" {
		t.Fatalf("inspect %+v %v", in, err)
	}
	if _, err := c.Inspect(ctx, "nope"); CodeOf(err) != CodeNotFound || err.Error() != "container nope: not found" {
		t.Errorf("inspect missing: %v", err)
	}
	if _, err := c.Run(ctx, &ContainerSpec{Name: "api1", Image: "busybox"}); CodeOf(err) != CodeConflict {
		t.Errorf("dup run: %v", err)
	}
	stats, err := c.Stats(ctx)
	if err != nil || len(stats) != 2 || stats[0].CPUNanos != 42 {
		t.Errorf("stats %+v %v", stats, err)
	}
	if _, err := c.Stop(ctx, "api1", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "api1", false); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "web", true); CodeOf(err) != CodeConflict || !strings.Contains(err.Error(), "defined in") {
		t.Errorf("remove uci container: %v", err)
	}
	// events: the kept ones, then a followed one
	var seen []string
	err = c.Events(ctx, &EventsRequest{}, func(ev *Event) error { seen = append(seen, ev.Type+" "+ev.Container); return nil })
	if err != nil || len(seen) < 4 {
		t.Errorf("events %v %v", seen, err)
	}
	c2, _ := Dial(ctx, path)
	fctx, cancel := context.WithCancel(ctx)
	got := make(chan *Event, 1)
	go c2.Events(fctx, &EventsRequest{Since: e.a.events.lastSeq(), Follow: true}, func(ev *Event) error {
		got <- ev
		cancel()
		return nil
	})
	time.Sleep(20 * time.Millisecond)
	e.a.event(Event{Type: EvReload, Msg: "x"})
	select {
	case ev := <-got:
		if ev.Type != EvReload {
			t.Errorf("followed %+v", ev)
		}
	case <-time.After(3 * time.Second):
		t.Error("no followed event")
	}
	st2, err := c.Status(ctx)
	if err != nil || st2.Containers != 1 || st2.Pid != os.Getpid() {
		t.Errorf("status %+v %v", st2, err)
	}
}

func TestSocketLogs(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container web\n option image busybox\n", rt)
	path := startServer(t, e)
	e.waitState("web", StateRunning)
	lp := e.a.logPath("web")
	os.WriteFile(lp, []byte("one\ntwo\nthree\n"), 0o600)
	c, _ := Dial(context.Background(), path)
	var b bytes.Buffer
	if err := c.Logs(context.Background(), &LogsRequest{Name: "web", Tail: 2}, func(p []byte) error { b.Write(p); return nil }); err != nil {
		t.Fatal(err)
	}
	if b.String() != "two\nthree\n" {
		t.Errorf("tail 2: %q", b.String())
	}
	// follow sees appended output
	c2, _ := Dial(context.Background(), path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var f bytes.Buffer
	go func() {
		time.Sleep(100 * time.Millisecond)
		fh, _ := os.OpenFile(lp, os.O_APPEND|os.O_WRONLY, 0)
		fh.WriteString("four\n")
		fh.Close()
	}()
	c2.Logs(ctx, &LogsRequest{Name: "web", Follow: true}, func(p []byte) error {
		f.Write(p)
		if strings.Contains(f.String(), "four") {
			cancel()
		}
		return nil
	})
	if f.String() != "one\ntwo\nthree\nfour\n" {
		t.Errorf("follow: %q", f.String())
	}
}

func TestTrimLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.log")
	var b bytes.Buffer
	for i := 0; b.Len() < 64<<10; i++ {
		b.WriteString(strings.Repeat("x", 99) + "\n")
	}
	os.WriteFile(p, b.Bytes(), 0o600)
	trimFile(p, 8<<10)
	f, _ := os.Open(p)
	defer f.Close()
	start := logStart(f)
	if start == 0 {
		t.Skip("filesystem without hole punching")
	}
	// the hole is whole pages: between keep and keep + a page (16 KiB on
	// the mips guest's kernel) + the partial line are kept
	fi, _ := f.Stat()
	page := int64(os.Getpagesize())
	if kept := fi.Size() - start; kept > 8<<10+page+100 || kept < 8<<10-100 {
		t.Errorf("kept %d bytes (page %d)", kept, page)
	}
	one := make([]byte, 1)
	f.ReadAt(one, start)
	if one[0] != 'x' {
		t.Errorf("kept part does not start at a line: %q", one)
	}
	if start%100 != 0 {
		t.Errorf("kept part starts at %d, not at a line start", start)
	}
}

// A hole that ends inside a page (punched with a smaller page size than
// the filesystem's, as on a 16 KiB-page kernel) reads as zeros up to its
// end, and SEEK_DATA reports the page as data: the kept part still starts
// at the first whole line after those zeros.
func TestLogStartAfterPartialHole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	var b bytes.Buffer
	for b.Len() < 64<<10 {
		b.WriteString(strings.Repeat("y", 99) + "\n")
	}
	os.WriteFile(p, b.Bytes(), 0o600)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := int64(os.Getpagesize())
	cut := 2*page + 1234 // not page aligned: the last page is zeroed, not freed
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, cut); err != nil {
		t.Skipf("no hole punching here: %v", err)
	}
	if d, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA); err != nil || d == 0 || d >= cut {
		t.Skipf("SEEK_DATA after the hole: %d, %v (no partial-page case on this filesystem)", d, err)
	}
	want := (cut/100 + 1) * 100 // first line start after the zeros
	if got := logStart(f); got != want {
		t.Fatalf("logStart = %d, want %d (hole ends at %d)", got, want, cut)
	}
}

func rawConn(t *testing.T, path string) net.Conn {
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func readReply(t *testing.T, c net.Conn) *wireReply {
	t.Helper()
	b, err := readFrame(c)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	var r wireReply
	if err := decMode.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestSocketHostileInput: garbage, oversized frames, unknown ops and
// wrong body types get a clear error and change nothing.
func TestSocketHostileInput(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "", rt)
	path := startServer(t, e)

	c := rawConn(t, path)
	c.Write(frame([]byte("this is not cbor")))
	if r := readReply(t, c); r.Err == nil || r.Err.Code != CodeInvalid || !strings.Contains(r.Err.Msg, "bad CBOR") {
		t.Errorf("garbage: %+v", r.Err)
	}
	// the connection survives a bad message inside a good frame
	body, _ := encMode.Marshal(map[string]any{"spec": map[string]any{"name": 7}})
	req, _ := encMode.Marshal(wireRequest{ID: 5, Op: OpRun, Body: body})
	c.Write(frame(req))
	if r := readReply(t, c); r.ID != 5 || r.Err == nil || r.Err.Code != CodeInvalid {
		t.Errorf("wrong type: %+v", r)
	}
	req, _ = encMode.Marshal(wireRequest{ID: 6, Op: "format-disk"})
	c.Write(frame(req))
	if r := readReply(t, c); r.Err == nil || r.Err.Code != CodeNotFound || r.Err.Msg != `unknown op "format-disk"` {
		t.Errorf("unknown op: %+v", r.Err)
	}
	c.Close()

	c = rawConn(t, path)
	c.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
	if r := readReply(t, c); r.Err == nil || !strings.Contains(r.Err.Msg, "message larger than 1048576 bytes") {
		t.Errorf("oversized: %+v", r.Err)
	}
	if _, err := readFrame(c); err == nil {
		t.Error("connection kept after framing was lost")
	}
	c.Close()

	c = rawConn(t, path)
	c.Write([]byte{0, 0, 0, 50, 1, 2, 3})
	c.(*net.UnixConn).CloseWrite()
	if r := readReply(t, c); r.Err == nil || !strings.Contains(r.Err.Msg, "truncated") {
		t.Errorf("truncated: %+v", r.Err)
	}
	c.Close()

	if n := len(e.a.List(true).Containers); n != 0 {
		t.Errorf("hostile input created %d containers", n)
	}
	if len(rt.calls) != 0 {
		t.Errorf("runtime calls %v", rt.calls)
	}
	// and the agent still answers
	cl, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSocketPermission: a non-root user cannot connect (mode 0600).
func TestSocketPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if os.Getenv("OTOK_TEST_DIAL") != "" {
		_, err := Dial(context.Background(), os.Getenv("OTOK_TEST_DIAL"))
		if CodeOf(err) != CodePermission {
			println("dial as nobody:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	rt := newFakeRT()
	e := newTestAgent(t, "", rt)
	pub, err := os.MkdirTemp("", "otok-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(pub)
	os.Chmod(pub, 0o755)
	bin, _ := os.ReadFile(os.Args[0])
	os.WriteFile(filepath.Join(pub, "agent.test"), bin, 0o755)
	path := filepath.Join(pub, "otok.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.a.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	cmd := exec.Command(filepath.Join(pub, "agent.test"), "-test.run=^TestSocketPermission$")
	cmd.Dir = pub
	cmd.Env = append(os.Environ(), "OTOK_TEST_DIAL="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "permission denied") || cmd.ProcessState == nil {
			t.Skipf("cannot run the test binary as nobody: %v %s", err, out)
		}
		t.Fatalf("non-root client: %v\n%s", err, out)
	}
}
