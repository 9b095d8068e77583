package agent

import (
	"context"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The command API. Every transport (the CLI socket here, ubus and MQTT in
// their own packages) does the same three things: find the Op by name,
// decode the transport's arguments into a fresh request value (op.New()),
// and call op.Call (or op.Stream for ops that send more than one reply).
// Validation, authorisation and error codes live behind Call, once.
// Request and reply types carry cbor and json tags with the same names,
// so a ubus blobmsg table (via its generic map form) or an MQTT CBOR body
// maps onto them field by field.

// Op names.
const (
	OpRun         = "run"
	OpCreate      = "create"
	OpStart       = "start"
	OpStop        = "stop"
	OpRestart     = "restart"
	OpRemove      = "remove"
	OpList        = "list"
	OpInspect     = "inspect"
	OpLogs        = "logs"
	OpStats       = "stats"
	OpEvents      = "events"
	OpReload      = "reload"
	OpStatus      = "status"
	OpImageImport = "image.import"
	OpImageList   = "image.list"
	OpImageRemove = "image.remove"
	OpImageGC     = "image.gc"
	OpDF          = "df"
)

// RunRequest creates a container from Spec (run also starts it).
type RunRequest struct {
	Spec ContainerSpec `cbor:"spec" json:"spec"`
}

// NameRequest names one container (start, inspect).
type NameRequest struct {
	Name string `cbor:"name" json:"name"`
}

// StopRequest stops (or restarts) a container; Timeout 0 = its stop timeout.
type StopRequest struct {
	Name    string        `cbor:"name" json:"name"`
	Timeout time.Duration `cbor:"timeout,omitempty" json:"timeout,omitempty"`
}

// RemoveRequest removes a container; Force stops it first.
type RemoveRequest struct {
	Name  string `cbor:"name" json:"name"`
	Force bool   `cbor:"force,omitempty" json:"force,omitempty"`
}

// ListRequest lists containers; All includes stopped ones.
type ListRequest struct {
	All bool `cbor:"all,omitempty" json:"all,omitempty"`
}

// ListReply is the answer to list.
type ListReply struct {
	Containers []ContainerStatus `cbor:"containers" json:"containers"`
}

// Container states as shown by ps.
const (
	StateCreated    = "created"
	StateStarting   = "starting"
	StateRunning    = "running"
	StateStopping   = "stopping"
	StateStopped    = "stopped"    // stopped by request
	StateExited     = "exited"     // exited, no restart due
	StateRestarting = "restarting" // exited, restart scheduled (backoff)
	StateWaiting    = "waiting"    // waiting for a dependency, image or port
	StateError      = "error"      // could not be created/started; Error says why
)

// Health states.
const (
	HealthNone      = ""
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// ContainerStatus is one container as list and inspect show it.
type ContainerStatus struct {
	Name        string    `cbor:"name" json:"name"`
	State       string    `cbor:"state" json:"state"`
	Health      string    `cbor:"health,omitempty" json:"health,omitempty"`
	Pid         int       `cbor:"pid,omitempty" json:"pid,omitempty"`
	Image       string    `cbor:"image" json:"image"`
	Digest      string    `cbor:"digest,omitempty" json:"digest,omitempty"`
	Created     time.Time `cbor:"created,omitempty" json:"created,omitzero"`
	Started     time.Time `cbor:"started,omitempty" json:"started,omitzero"`
	Finished    time.Time `cbor:"finished,omitempty" json:"finished,omitzero"`
	Restarts    int       `cbor:"restarts" json:"restarts"`
	NextRestart time.Time `cbor:"nextRestart,omitempty" json:"nextRestart,omitzero"` // crash loop: when the next try is due
	Exit        *ExitInfo `cbor:"exit,omitempty" json:"exit,omitempty"`
	Error       string    `cbor:"error,omitempty" json:"error,omitempty"`
	Source      string    `cbor:"source,omitempty" json:"source,omitempty"`
	Adopted     bool      `cbor:"adopted,omitempty" json:"adopted,omitempty"` // re-adopted after an agent restart
	Network     *NetInfo  `cbor:"network,omitempty" json:"network,omitempty"`
	// Spec is the desired state (inspect only).
	Spec *ContainerSpec `cbor:"spec,omitempty" json:"spec,omitempty"`
}

// ExitInfo says how a container's init ended.
type ExitInfo struct {
	Code   int    `cbor:"code" json:"code"`
	Signal string `cbor:"signal,omitempty" json:"signal,omitempty"`
	OOM    bool   `cbor:"oom,omitempty" json:"oom,omitempty"`
	// Unknown: the agent was not the parent (re-adopted) and could not
	// read the status.
	Unknown bool `cbor:"unknown,omitempty" json:"unknown,omitempty"`
}

// Failed reports whether the exit counts as a failure for on-failure.
func (e *ExitInfo) Failed() bool {
	return e == nil || e.Code != 0 || e.Signal != "" || e.OOM || e.Unknown
}

// NetInfo is what the network part set up.
type NetInfo struct {
	Mode  string   `cbor:"mode,omitempty" json:"mode,omitempty"`
	Addrs []string `cbor:"addrs,omitempty" json:"addrs,omitempty"`
	MAC   string   `cbor:"mac,omitempty" json:"mac,omitempty"`
	Link  string   `cbor:"link,omitempty" json:"link,omitempty"`
}

// LogsRequest reads a container's output; Tail limits to the last N lines
// (0: all kept), Follow streams new output.
type LogsRequest struct {
	Name   string `cbor:"name" json:"name"`
	Tail   int    `cbor:"tail,omitempty" json:"tail,omitempty"`
	Follow bool   `cbor:"follow,omitempty" json:"follow,omitempty"`
}

// LogsChunk is a piece of output (streamed).
type LogsChunk struct {
	Data []byte `cbor:"data" json:"data"`
}

// StatsRequest names containers (none: all running).
type StatsRequest struct {
	Names []string `cbor:"names,omitempty" json:"names,omitempty"`
}

// Stats is one container's resource use.
type Stats struct {
	Name      string `cbor:"name" json:"name"`
	CPUNanos  uint64 `cbor:"cpu" json:"cpu_ns"`
	Memory    uint64 `cbor:"mem" json:"memory"`
	MemoryMax uint64 `cbor:"memMax,omitempty" json:"memory_max,omitempty"`
	Pids      uint64 `cbor:"pids" json:"pids"`
	PidsMax   uint64 `cbor:"pidsMax,omitempty" json:"pids_max,omitempty"` // 0: no limit
	OOMKills  uint64 `cbor:"oomKills,omitempty" json:"oom_kills,omitempty"`
	NetRx     uint64 `cbor:"rx" json:"net_rx"`
	NetTx     uint64 `cbor:"tx" json:"net_tx"`
}

// StatsReply is the answer to stats.
type StatsReply struct {
	Stats []Stats `cbor:"stats" json:"stats"`
}

// EventsRequest reads the event ring from Since (a sequence number, 0 =
// everything kept); Follow streams new events.
type EventsRequest struct {
	Since  uint64 `cbor:"since,omitempty" json:"since,omitempty"`
	Follow bool   `cbor:"follow,omitempty" json:"follow,omitempty"`
}

// ReloadReply reports what a reload changed.
type ReloadReply struct {
	Warnings []string          `cbor:"warnings,omitempty" json:"warnings,omitempty"`
	Errors   map[string]string `cbor:"errors,omitempty" json:"errors,omitempty"`       // container → error
	Restart  []string          `cbor:"restarted,omitempty" json:"restarted,omitempty"` // containers restarted to apply changes
	Updated  []string          `cbor:"updated,omitempty" json:"updated,omitempty"`     // limits applied live
	Started  []string          `cbor:"started,omitempty" json:"started,omitempty"`     // newly started
	Removed  []string          `cbor:"removed,omitempty" json:"removed,omitempty"`     // no longer configured
}

// StatusReply is the agent's own status.
type StatusReply struct {
	Version    string    `cbor:"version" json:"version"`
	Pid        int       `cbor:"pid" json:"pid"`
	Started    time.Time `cbor:"started" json:"started"`
	Config     string    `cbor:"config" json:"config"`
	ConfigErr  string    `cbor:"configError,omitempty" json:"config_error,omitempty"`
	Containers int       `cbor:"containers" json:"containers"`
	Running    int       `cbor:"running" json:"running"`
	Goroutines int       `cbor:"goroutines" json:"goroutines"`
	RSS        uint64    `cbor:"rss" json:"rss"`
	EventSeq   uint64    `cbor:"eventSeq" json:"event_seq"`
}

// ImageImportRequest imports a file already on the device: a signed
// .otok, or (with Name and InsecureSkipVerify: they carry no signature) a
// bare squashfs or a rootfs tarball, as `otok image import` takes them.
type ImageImportRequest struct {
	Path string `cbor:"path" json:"path"`
	// Name, Version, Arch describe a bare squashfs or tarball (a .otok
	// names itself). Version defaults to a timestamp, Arch to the device's.
	Name    string `cbor:"name,omitempty" json:"name,omitempty"`
	Version string `cbor:"version,omitempty" json:"version,omitempty"`
	Arch    string `cbor:"arch,omitempty" json:"arch,omitempty"`
	// InsecureSkipVerify accepts an unsigned or untrusted image.
	InsecureSkipVerify bool `cbor:"insecure,omitempty" json:"insecure,omitempty"`
	// AllowSpecial allows device nodes and setuid files in a tarball.
	AllowSpecial bool `cbor:"allowSpecial,omitempty" json:"allow_special,omitempty"`
	// MaxSize caps a tarball's expanded size (0: the free space above the
	// reserve).
	MaxSize int64 `cbor:"maxSize,omitempty" json:"max_size,omitempty"`
}

// ImageRequest names an image (name[:version] or digest).
type ImageRequest struct {
	Ref string `cbor:"ref" json:"ref"`
}

// ImageInfo is one stored image.
type ImageInfo struct {
	Name    string `cbor:"name" json:"name"`
	Version string `cbor:"version,omitempty" json:"version,omitempty"`
	Digest  string `cbor:"digest" json:"digest"`
	Size    int64  `cbor:"size" json:"size"`
	InUse   bool   `cbor:"inUse,omitempty" json:"in_use,omitempty"`
	// Set by image.import:
	Kind    string `cbor:"kind,omitempty" json:"kind,omitempty"` // otok, squashfs, dir
	Arch    string `cbor:"arch,omitempty" json:"arch,omitempty"`
	KeyID   string `cbor:"keyId,omitempty" json:"key_id,omitempty"` // signer; "" = unsigned
	Existed bool   `cbor:"existed,omitempty" json:"existed,omitempty"`
	Written int64  `cbor:"written,omitempty" json:"written,omitempty"` // bytes written to flash
}

// ImageListReply is the answer to image.list.
type ImageListReply struct {
	Images []ImageInfo `cbor:"images" json:"images"`
}

// GCReply is the answer to image.gc.
type GCReply struct {
	Removed []string `cbor:"removed,omitempty" json:"removed,omitempty"`
	Freed   int64    `cbor:"freed" json:"freed"`
}

// DFReply is the answer to df.
type DFReply struct {
	Store    string `cbor:"store" json:"store"`
	Total    int64  `cbor:"total" json:"total"`
	Free     int64  `cbor:"free" json:"free"`
	Reserve  int64  `cbor:"reserve" json:"reserve"`
	Images   int    `cbor:"images" json:"images"`
	ImageUse int64  `cbor:"imageBytes" json:"image_bytes"`
}

// Empty is the request or reply of ops that carry nothing.
type Empty struct{}

// Op is one API operation, transport-neutral.
type Op struct {
	Name string
	// New returns a pointer to a zero request value to decode into.
	New func() any
	// Call runs a one-reply op.
	Call func(ctx context.Context, a *Agent, req any) (any, error)
	// Stream runs an op that sends replies until it returns (logs -f,
	// events -f). emit returns an error when the peer is gone.
	Stream func(ctx context.Context, a *Agent, req any, emit func(any) error) error
	// Duplex runs an op that also reads from the peer after its request
	// (attach): input carries the bodies of the peer's further frames and
	// is closed when the peer goes.
	Duplex func(ctx context.Context, a *Agent, req any, emit func(any) error, input <-chan cbor.RawMessage) error
	// Mutating ops are refused to read-only callers (ubus ACLs, MQTT
	// without a controller signature…).
	Mutating bool
}

// Ops is the table of every operation, keyed by name.
var Ops = map[string]*Op{}

func op[Req any](name string, mutating bool, call func(ctx context.Context, a *Agent, r *Req) (any, error)) {
	Ops[name] = &Op{Name: name, Mutating: mutating,
		New:  func() any { return new(Req) },
		Call: func(ctx context.Context, a *Agent, r any) (any, error) { return call(ctx, a, r.(*Req)) },
	}
}

func streamOp[Req any](name string, stream func(ctx context.Context, a *Agent, r *Req, emit func(any) error) error) {
	Ops[name] = &Op{Name: name,
		New: func() any { return new(Req) },
		Stream: func(ctx context.Context, a *Agent, r any, emit func(any) error) error {
			return stream(ctx, a, r.(*Req), emit)
		},
	}
}

func init() {
	op(OpRun, true, func(ctx context.Context, a *Agent, r *RunRequest) (any, error) { return a.Run(ctx, &r.Spec, true) })
	op(OpCreate, true, func(ctx context.Context, a *Agent, r *RunRequest) (any, error) { return a.Run(ctx, &r.Spec, false) })
	op(OpStart, true, func(ctx context.Context, a *Agent, r *NameRequest) (any, error) { return a.Start(ctx, r.Name) })
	op(OpStop, true, func(ctx context.Context, a *Agent, r *StopRequest) (any, error) {
		return a.Stop(ctx, r.Name, r.Timeout)
	})
	op(OpRestart, true, func(ctx context.Context, a *Agent, r *StopRequest) (any, error) {
		return a.Restart(ctx, r.Name, r.Timeout)
	})
	op(OpRemove, true, func(ctx context.Context, a *Agent, r *RemoveRequest) (any, error) {
		return Empty{}, a.Remove(ctx, r.Name, r.Force)
	})
	op(OpList, false, func(ctx context.Context, a *Agent, r *ListRequest) (any, error) { return a.List(r.All), nil })
	op(OpInspect, false, func(ctx context.Context, a *Agent, r *NameRequest) (any, error) { return a.Inspect(r.Name) })
	op(OpStats, false, func(ctx context.Context, a *Agent, r *StatsRequest) (any, error) { return a.Stats(ctx, r.Names) })
	op(OpReload, true, func(ctx context.Context, a *Agent, r *Empty) (any, error) { return a.Reload(ctx) })
	op(OpStatus, false, func(ctx context.Context, a *Agent, r *Empty) (any, error) { return a.Status(), nil })
	op(OpImageImport, true, func(ctx context.Context, a *Agent, r *ImageImportRequest) (any, error) {
		return a.ImageImport(ctx, r)
	})
	op(OpImageList, false, func(ctx context.Context, a *Agent, r *Empty) (any, error) { return a.ImageList(ctx) })
	op(OpImageRemove, true, func(ctx context.Context, a *Agent, r *ImageRequest) (any, error) {
		return Empty{}, a.ImageRemove(ctx, r.Ref)
	})
	op(OpImageGC, true, func(ctx context.Context, a *Agent, r *Empty) (any, error) { return a.ImageGC(ctx) })
	op(OpDF, false, func(ctx context.Context, a *Agent, r *Empty) (any, error) { return a.DF(ctx) })
	streamOp(OpLogs, func(ctx context.Context, a *Agent, r *LogsRequest, emit func(any) error) error {
		return a.Logs(ctx, r, emit)
	})
	streamOp(OpEvents, func(ctx context.Context, a *Agent, r *EventsRequest, emit func(any) error) error {
		return a.Events(ctx, r, emit)
	})
}
