package agent

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otok/otok/agent/uci"
	"github.com/otok/otok/board"
	"github.com/otok/otok/ubus"
)

// The ubus transport: the object "otok" on OpenWrt's bus, for scripts
// (`ubus call otok list`), LuCI (through rpcd) and other daemons. Like the
// CLI socket it is a thin layer over the command API (Ops): each method
// decodes its blobmsg arguments, fills the op's request, calls the op and
// replies with the op's reply as a blobmsg table. Errors are the API's
// *Error: the call fails with the UBUS_STATUS_* code of its Code
// (Error.UbusStatus) after one DATA reply {"error": MSG, "code": CODE}, so
// `ubus call` prints why before "Command failed". Arguments of the wrong
// type are refused by the ubus library before a handler runs
// (INVALID_ARGUMENT, nothing changes); missing required ones by the
// handler, also INVALID_ARGUMENT.
//
// Who may call is ubusd's business (its ACLs, /usr/share/acl.d): a call
// that reaches the object is allowed, mutating or not.
//
// ubus is optional: without `option ubus_socket` the agent looks for
// ubusd's default sockets (ubus.FindSocket) and, when there is none
// (Debian, a test box), waits quietly and looks again with backoff, so a
// ubusd started later is still found. Once connected, the library
// reconnects and registers the object again after ubusd restarts.
//
// Events go out as ubus events (ubusevents.go): otok.container,
// otok.image, otok.agent, and as notifications of the object to its
// subscribers.

// UbusObject is the name of the agent's ubus object.
const UbusObject = "otok"

// Limits of the ubus transport.
const (
	// ubusLogMax bounds the output one `logs` call returns (the tail is
	// kept); ubusd refuses messages over 1 MiB.
	ubusLogMax = 256 << 10
	// ubusRetryMax bounds the wait between looks for ubusd's socket.
	ubusRetryMax = 30 * time.Second
)

// UbusService is the agent's presence on ubus: the connection, the otok
// object and the event forwarder.
type UbusService struct {
	a    *Agent
	path string // configured socket; "" = ubus.DefaultSocket, then FallbackSocket
	log  *log.Logger
	obj  *ubus.Object

	mu    sync.Mutex
	c     *ubus.Client
	board *BoardInfo // from `system board`, once read
}

// StartUbus puts the agent on ubus: it returns at once and, in a goroutine
// the agent owns, connects (to the config's ubus_socket, else the default
// sockets when ubusd runs), publishes the object "otok" and forwards events,
// until ctx ends or the agent closes. Call it once, after Load.
func (a *Agent) StartUbus(ctx context.Context) *UbusService {
	u := newUbusService(a, a.Config().Agent.UbusSocket)
	a.goroutine(func() { u.run(ctx) })
	return u
}

func newUbusService(a *Agent, path string) *UbusService {
	u := &UbusService{a: a, path: path, log: a.log}
	u.obj = &ubus.Object{Name: UbusObject, Methods: u.methods()}
	return u
}

// Client returns the current ubus client, nil while not connected.
func (u *UbusService) Client() *ubus.Client {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.c
}

// run connects, serves and forwards events until ctx or the agent ends.
func (u *UbusService) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(u.a.ctx, cancel)
	defer stop()
	// Events from now on, straight from the ring (not Agent.Subscribe,
	// which stops relaying when the agent closes: the last events of a
	// shutdown must still go out). Those of a first dial that succeeds
	// (Init's adopt and start) wait in the channel; while ubusd is absent
	// they are dropped.
	_, events, unsub := u.a.events.subscribe(u.a.events.lastSeq())
	defer unsub()
	c := u.connect(ctx, events)
	if c == nil {
		return
	}
	defer func() {
		u.mu.Lock()
		u.c = nil
		u.mu.Unlock()
		c.Close() // ubusd drops the object with the connection
	}()
	u.forward(ctx, events)
}

// connect dials ubusd until it answers and the object is published; it
// returns nil when ctx ends first. Events that arrive meanwhile are
// dropped: nobody could have heard them.
func (u *UbusService) connect(ctx context.Context, events <-chan Event) *ubus.Client {
	wait := time.Second
	lastErr := ""
	for {
		if u.path != "" || ubus.FindSocket() != "" {
			c, err := u.dial(ctx)
			if err == nil {
				u.mu.Lock()
				u.c = c
				u.mu.Unlock()
				u.log.Printf("ubus: object %s on %s (client %08x)", UbusObject, u.socketName(), c.ID())
				return c
			}
			// Say it once, not every retry; a missing socket that was
			// not configured is the normal case off OpenWrt.
			if msg := err.Error(); msg != lastErr && (u.path != "" || !errors.Is(err, os.ErrNotExist)) {
				u.log.Printf("%v (retrying in the background)", err)
				lastErr = msg
			}
		}
		t := time.NewTimer(wait)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-events: // nobody to tell
			case <-t.C:
				waiting = false
			}
		}
		wait = min(wait*2, ubusRetryMax)
	}
}

func (u *UbusService) socketName() string {
	if u.path != "" {
		return u.path
	}
	if p := ubus.FindSocket(); p != "" {
		return p
	}
	return ubus.DefaultSocket
}

// dial makes one connection and publishes the object on it.
func (u *UbusService) dial(ctx context.Context) (*ubus.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := ubus.Dial(dctx, ubus.Options{Path: u.path, Reconnect: true, Logger: slogTo(u.log)})
	if err != nil {
		return nil, err
	}
	if err := c.AddObject(dctx, u.obj); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// slogTo sends the ubus library's log lines (connection lost, reconnected,
// refused calls) to the agent's logger, without timestamps (procd's log
// adds them).
func slogTo(l *log.Logger) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{l}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey && a.Value.String() == "INFO") {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// logWriter writes each line through a log.Logger (its prefix and flags).
type logWriter struct{ l *log.Logger }

func (w logWriter) Write(b []byte) (int, error) {
	w.l.Print(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// ubusMethod is one method of the object: its signature and what it does.
type ubusMethod struct {
	args map[string]ubus.Type
	call func(ctx context.Context, u *UbusService, req *ubus.Request) (any, error)
}

// Signatures shared by several methods.
var (
	ubusNameArg = map[string]ubus.Type{"name": ubus.TypeString}
	ubusStopArg = map[string]ubus.Type{"name": ubus.TypeString, "timeout": ubus.TypeInt32}
	ubusNoArgs  = map[string]ubus.Type{}
)

// ubusRunArgs are the arguments of run and create: the options of a
// `config container` section, with the same names and meanings (see
// applyContainerOption), typed for blobmsg. Lists are arrays of strings;
// sizes and CPU counts are strings as in UCI ("64M", "0.5"); durations
// are whole seconds. Only types the ubus CLI can name are used (no double,
// no int64), so `ubus -v list otok` shows every argument's type.
var ubusRunArgs = map[string]ubus.Type{
	"name": ubus.TypeString, "image": ubus.TypeString, "command": ubus.TypeArray,
	"env": ubus.TypeArray, "cwd": ubus.TypeString, "user": ubus.TypeString, "hostname": ubus.TypeString,
	"net": ubus.TypeString, "ip": ubus.TypeArray, "gateway": ubus.TypeString, "dns": ubus.TypeArray,
	"mac": ubus.TypeString, "publish": ubus.TypeArray, "mounts": ubus.TypeArray,
	"memory": ubus.TypeString, "tmpfs": ubus.TypeString, "cpus": ubus.TypeString, "pids": ubus.TypeInt32,
	"persistent": ubus.TypeBool, "tty": ubus.TypeBool, "system": ubus.TypeBool, "privileged": ubus.TypeBool,
	"restart": ubus.TypeString, "healthcheck": ubus.TypeString, "health_interval": ubus.TypeInt32,
	"health_timeout": ubus.TypeInt32, "health_retries": ubus.TypeInt32, "health_restart": ubus.TypeBool,
	"depends": ubus.TypeArray, "stop_timeout": ubus.TypeInt32,
}

func (u *UbusService) methods() map[string]ubus.Method {
	ms := map[string]ubusMethod{
		"list":    {map[string]ubus.Type{"all": ubus.TypeBool}, ubusList},
		"status":  {ubusNameArg, ubusStatus},
		"run":     {ubusRunArgs, ubusRun(OpRun)},
		"create":  {ubusRunArgs, ubusRun(OpCreate)},
		"start":   {ubusNameArg, ubusStart},
		"stop":    {ubusStopArg, ubusStop(OpStop)},
		"restart": {ubusStopArg, ubusStop(OpRestart)},
		"remove":  {map[string]ubus.Type{"name": ubus.TypeString, "force": ubus.TypeBool}, ubusRemove},
		"logs":    {map[string]ubus.Type{"name": ubus.TypeString, "tail": ubus.TypeInt32}, ubusLogs},
		"stats":   {map[string]ubus.Type{"name": ubus.TypeString, "names": ubus.TypeArray}, ubusStats},
		"images":  {ubusNoArgs, ubusOp(OpImageList)},
		"import":  {map[string]ubus.Type{"path": ubus.TypeString}, ubusImport},
		"df":      {ubusNoArgs, ubusOp(OpDF)},
		"check":   {ubusNoArgs, ubusCheck},
		"kill":    {map[string]ubus.Type{"name": ubus.TypeString, "signal": ubus.TypeString}, ubusKill},
		"update": {map[string]ubus.Type{"name": ubus.TypeString, "memory": ubus.TypeString, "cpus": ubus.TypeString,
			"pids": ubus.TypeInt32}, ubusUpdate},
	}
	out := make(map[string]ubus.Method, len(ms))
	for name, m := range ms {
		out[name] = ubus.Method{Args: m.args, Handler: u.handler(name, m.call)}
	}
	return out
}

// handler wraps a method: errors become an *Error (decode errors are
// CodeInvalid), are logged when unexpected, and are answered with one DATA
// reply naming them; the returned error sets the status
// (Error.UbusStatus). A nil or Empty result sends no DATA.
func (u *UbusService) handler(name string, call func(context.Context, *UbusService, *ubus.Request) (any, error)) ubus.Handler {
	return func(ctx context.Context, req *ubus.Request) error {
		res, err := call(ctx, u, req)
		if err != nil {
			var te *ubus.TypeError
			var de *ubus.DecodeError
			if errors.As(err, &te) || errors.As(err, &de) {
				err = Errorf(CodeInvalid, "%s: %v", name, err)
			}
			e := asError(err)
			if e.Code == CodeInternal {
				u.log.Printf("ubus %s: %v", name, e.Msg)
			}
			_ = req.Reply(map[string]any{"error": e.Msg, "code": string(e.Code)})
			return e
		}
		switch res.(type) {
		case nil, Empty, *Empty:
			return nil
		}
		return req.Reply(res)
	}
}

// callOp runs a one-reply op of the command API with req.
func (u *UbusService) callOp(ctx context.Context, name string, req any) (any, error) {
	op := Ops[name]
	if op == nil || op.Call == nil {
		return nil, Errorf(CodeInternal, "ubus: no op %q", name)
	}
	return op.Call(ctx, u.a, req)
}

// ubusOp maps a method without arguments onto op.
func ubusOp(op string) func(context.Context, *UbusService, *ubus.Request) (any, error) {
	return func(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
		return u.callOp(ctx, op, &Empty{})
	}
}

// needName checks the name argument that most methods require.
func needName(name string) error {
	if name == "" {
		return Errorf(CodeInvalid, "name: missing")
	}
	return nil
}

func ubusList(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		All bool `ubus:"all"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	return u.callOp(ctx, OpList, &ListRequest{All: args.All})
}

// UbusStatusReply is the answer to status without a name: the agent's
// status and what the device is.
type UbusStatusReply struct {
	StatusReply
	Board *BoardInfo `ubus:"board,omitempty"`
	Ubus  string     `ubus:"ubus"` // the socket the agent is on
}

// ubusStatus: with a name the container's full status (inspect), else the
// agent's own with the board.
func ubusStatus(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		Name string `ubus:"name"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	if args.Name != "" {
		return u.callOp(ctx, OpInspect, &NameRequest{Name: args.Name})
	}
	st, err := u.callOp(ctx, OpStatus, &Empty{})
	if err != nil {
		return nil, err
	}
	r := &UbusStatusReply{StatusReply: *st.(*StatusReply), Ubus: u.socketName()}
	r.Board = u.Board(ctx)
	return r, nil
}

func ubusStart(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	r := &NameRequest{}
	if err := req.Decode(r); err != nil {
		return nil, err
	}
	if err := needName(r.Name); err != nil {
		return nil, err
	}
	return u.callOp(ctx, OpStart, r)
}

// ubusStop maps stop and restart: timeout is in seconds (0 or absent: the
// container's stop timeout).
func ubusStop(op string) func(context.Context, *UbusService, *ubus.Request) (any, error) {
	return func(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
		var args struct {
			Name    string `ubus:"name"`
			Timeout int64  `ubus:"timeout"`
		}
		if err := req.Decode(&args); err != nil {
			return nil, err
		}
		if err := needName(args.Name); err != nil {
			return nil, err
		}
		if args.Timeout < 0 || args.Timeout > 24*3600 {
			return nil, Errorf(CodeInvalid, "timeout: %d: want seconds, 0-86400", args.Timeout)
		}
		return u.callOp(ctx, op, &StopRequest{Name: args.Name, Timeout: time.Duration(args.Timeout) * time.Second})
	}
}

func ubusRemove(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		Name  string `ubus:"name"`
		Force bool   `ubus:"force"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	if err := needName(args.Name); err != nil {
		return nil, err
	}
	return u.callOp(ctx, OpRemove, &RemoveRequest{Name: args.Name, Force: args.Force})
}

// UbusLogsReply is the answer to logs: the container's kept output as
// text (invalid UTF-8 and NUL bytes replaced), at most ubusLogMax bytes
// of its end.
type UbusLogsReply struct {
	Name      string `ubus:"name"`
	Log       string `ubus:"log"`
	Truncated bool   `ubus:"truncated,omitempty"`
}

// ubusLogs reads the output like `otok logs` without -f: a ubus call has
// one answer, so following is left to `otok logs -f`.
func ubusLogs(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		Name string `ubus:"name"`
		Tail int    `ubus:"tail"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	if err := needName(args.Name); err != nil {
		return nil, err
	}
	if args.Tail < 0 {
		return nil, Errorf(CodeInvalid, "tail: %d: want a number of lines ≥ 0", args.Tail)
	}
	op := Ops[OpLogs]
	var buf []byte
	cut := false
	err := op.Stream(ctx, u.a, &LogsRequest{Name: args.Name, Tail: args.Tail}, func(v any) error {
		if ch, ok := v.(LogsChunk); ok {
			buf = append(buf, ch.Data...)
		} else if ch, ok := v.(*LogsChunk); ok {
			buf = append(buf, ch.Data...)
		}
		if len(buf) > 2*ubusLogMax { // keep memory bounded while reading
			buf = append(buf[:0], buf[len(buf)-ubusLogMax:]...)
			cut = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(buf) > ubusLogMax {
		buf = buf[len(buf)-ubusLogMax:]
		cut = true
	}
	if cut { // start at a line
		if i := strings.IndexByte(string(buf), '\n'); i >= 0 && i+1 < len(buf) {
			buf = buf[i+1:]
		}
	}
	text := strings.ToValidUTF8(strings.ReplaceAll(string(buf), "\x00", "\uFFFD"), "\uFFFD")
	return &UbusLogsReply{Name: args.Name, Log: text, Truncated: cut}, nil
}

// ubusStats: name or names select containers; neither means all running.
func ubusStats(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		Name  string   `ubus:"name"`
		Names []string `ubus:"names"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	r := &StatsRequest{Names: args.Names}
	if args.Name != "" {
		r.Names = append([]string{args.Name}, r.Names...)
	}
	return u.callOp(ctx, OpStats, r)
}

func ubusImport(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	r := &ImageImportRequest{}
	if err := req.Decode(r); err != nil {
		return nil, err
	}
	if r.Path == "" {
		return nil, Errorf(CodeInvalid, "path: missing (a file on the device)")
	}
	if r.InsecureSkipVerify || r.AllowSpecial {
		// ubus ACLs are coarser than root on the socket: unsigned code
		// and device nodes are for the CLI (root) only
		return nil, Errorf(CodePermission, "image %s: insecure and allowSpecial imports are refused over ubus (use otok image import as root)", r.Path)
	}
	return u.callOp(ctx, OpImageImport, r)
}

// ubusCheck is `otok check --json`: the kernel's and device's features,
// probed in throwaway namespaces when the agent runs as root.
func ubusCheck(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	store := u.a.Config().Agent.Store
	if df, err := u.a.DF(ctx); err == nil && df.Store != "" {
		store = df.Store
	}
	return board.Check(board.CheckOptions{StorePath: store, Probe: os.Geteuid() == 0}), nil
}

// ubusRun maps run and create. The arguments are a `config container`
// section's options in blobmsg form; each is turned into the UCI option
// it mirrors and applied by the same code that reads /etc/config/otok,
// so values mean the same everywhere. Unknown arguments are refused:
// a misspelt limit must not be dropped silently.
func ubusRun(op string) func(context.Context, *UbusService, *ubus.Request) (any, error) {
	return func(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
		spec, err := specFromUbus(req.Data)
		if err != nil {
			return nil, err
		}
		return u.callOp(ctx, op, &RunRequest{Spec: *spec})
	}
}

// specFromUbus builds a container spec from run/create arguments.
func specFromUbus(data []byte) (*ContainerSpec, error) {
	var t ubus.Table
	if err := ubus.Unmarshal(data, &t); err != nil {
		return nil, err
	}
	c := &ContainerSpec{Restart: RestartPolicy{Mode: RestartNo}}
	seen := map[string]bool{}
	var unknown []string
	for _, f := range t {
		if seen[f.Name] {
			return nil, Errorf(CodeInvalid, "%s: given twice", f.Name)
		}
		seen[f.Name] = true
		if _, ok := ubusRunArgs[f.Name]; !ok {
			unknown = append(unknown, strconv.Quote(f.Name))
			continue
		}
		if f.Name == "name" {
			s, ok := f.Value.(string)
			if !ok {
				return nil, Errorf(CodeInvalid, "name: want a string")
			}
			c.Name = s
			continue
		}
		vals, isList, err := ubusOptionValues(f.Name, f.Value)
		if err != nil {
			return nil, err
		}
		if len(vals) == 0 { // an empty list: nothing to set
			continue
		}
		if err := applyContainerOption(c, &uci.Option{Name: f.Name, Values: vals, IsList: isList}); err != nil {
			return nil, Errorf(CodeInvalid, "container %s: %s: %v", c.Name, f.Name, err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, Errorf(CodeInvalid, "unknown argument %s (see `ubus -v list otok`)", strings.Join(unknown, ", "))
	}
	if c.Name == "" {
		return nil, Errorf(CodeInvalid, "name: missing")
	}
	if c.Image == "" {
		return nil, Errorf(CodeInvalid, "container %s: image: missing", c.Name)
	}
	return c, nil
}

// ubusOptionValues turns one decoded argument into UCI option values:
// strings as they are, arrays of strings as a list, booleans as 1/0,
// numbers in decimal. The library already checked the top-level type
// against the signature; array members are checked here.
func ubusOptionValues(name string, v any) ([]string, bool, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, false, nil
	case bool:
		if x {
			return []string{"1"}, false, nil
		}
		return []string{"0"}, false, nil
	case int8, int16, int32, int64:
		return []string{fmt.Sprint(x)}, false, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, false, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, true, Errorf(CodeInvalid, "%s[%d]: want a string", name, i)
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, false, Errorf(CodeInvalid, "%s: unexpected type %T", name, v)
}

// ubusKill sends a signal (name or number; absent: SIGKILL).
func ubusKill(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	r := &KillRequest{}
	if err := req.Decode(r); err != nil {
		return nil, err
	}
	if err := needName(r.Name); err != nil {
		return nil, err
	}
	return u.callOp(ctx, OpKill, r)
}

// ubusUpdate changes limits: memory as a size ("64M", "0" = none), cpus
// as a number ("0.5"), pids; an absent argument keeps its value.
func ubusUpdate(ctx context.Context, u *UbusService, req *ubus.Request) (any, error) {
	var args struct {
		Name   string  `ubus:"name"`
		Memory *string `ubus:"memory"`
		CPUs   *string `ubus:"cpus"`
		Pids   *int64  `ubus:"pids"`
	}
	if err := req.Decode(&args); err != nil {
		return nil, err
	}
	if err := needName(args.Name); err != nil {
		return nil, err
	}
	r := &UpdateRequest{Name: args.Name, Pids: args.Pids}
	if args.Memory != nil {
		m, err := ParseSize(*args.Memory)
		if err != nil {
			return nil, Errorf(CodeInvalid, "memory: %v", err)
		}
		r.Memory = &m
	}
	if args.CPUs != nil {
		c, err := strconv.ParseFloat(*args.CPUs, 64)
		if err != nil {
			return nil, Errorf(CodeInvalid, "cpus: %q: want a number of CPUs", *args.CPUs)
		}
		r.CPUs = &c
	}
	return u.callOp(ctx, OpUpdate, r)
}
