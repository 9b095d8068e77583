package fleet

import "github.com/fxamacker/cbor/v2"

// The Go side of protocol.cddl. Every map key is a small integer (declared in
// the CDDL); the encoder is deterministic CBOR (RFC 8949 §4.2), so equal
// values give equal bytes and golden vectors are stable. Field comments name
// the CDDL rule.

// State is the payload of dev/<id>/state (retained). The offline value is
// the MQTT Will registered at CONNECT; the online value is the birth,
// published right after CONNACK with the same bdseq (Sparkplug B's rule: a
// death only counts for the birth with the same sequence).
type State struct {
	Online bool   `cbor:"1,keyasint"`
	BdSeq  uint64 `cbor:"2,keyasint"`
	Time   uint64 `cbor:"3,keyasint,omitempty"` // unix ms of the birth; absent in the Will
}

// Status is the payload of dev/<id>/status (retained).
type Status struct {
	Device     string             `cbor:"1,keyasint"`
	BdSeq      uint64             `cbor:"2,keyasint"`
	Time       uint64             `cbor:"3,keyasint"` // unix ms
	Board      Board              `cbor:"4,keyasint"`
	Agent      AgentInfo          `cbor:"5,keyasint"`
	Images     []Image            `cbor:"6,keyasint,omitempty"`
	Containers []Container        `cbor:"7,keyasint,omitempty"`
	Flash      *Flash             `cbor:"8,keyasint,omitempty"`
	Reached    map[string]Reached `cbor:"9,keyasint,omitempty"`  // scope ("dev/<id>" or "group/<g>") → version reached
	Dropped    uint64             `cbor:"10,keyasint,omitempty"` // events dropped from the offline queue
	Groups     []string           `cbor:"11,keyasint,omitempty"`
	Heartbeat  uint32             `cbor:"12,keyasint,omitempty"` // seconds between statuses at most
}

// Board says what the device is.
type Board struct {
	Model   string `cbor:"1,keyasint"`
	Arch    string `cbor:"2,keyasint"`
	Release string `cbor:"3,keyasint,omitempty"` // OpenWrt release, e.g. "24.10.0"
	Kernel  string `cbor:"4,keyasint,omitempty"`
}

// AgentInfo is the agent's version and uptime.
type AgentInfo struct {
	Version string `cbor:"1,keyasint"`
	Uptime  uint64 `cbor:"2,keyasint"` // seconds
}

// Image is one image in the device's store.
type Image struct {
	Name    string `cbor:"1,keyasint"`
	Version string `cbor:"2,keyasint,omitempty"`
	Digest  []byte `cbor:"3,keyasint"` // sha256 of the squashfs, 32 bytes
	Size    uint64 `cbor:"4,keyasint,omitempty"`
}

// Container is one container's observed state.
type Container struct {
	Name     string   `cbor:"1,keyasint"`
	Image    string   `cbor:"2,keyasint"`
	State    string   `cbor:"3,keyasint"` // created running exited failed restarting stopped
	Health   string   `cbor:"4,keyasint,omitempty"`
	Restarts uint32   `cbor:"5,keyasint,omitempty"`
	Exit     *Exit    `cbor:"6,keyasint,omitempty"`
	Addrs    []string `cbor:"7,keyasint,omitempty"`
	Usage    *Usage   `cbor:"8,keyasint,omitempty"`
	Started  uint64   `cbor:"9,keyasint,omitempty"` // unix ms
}

// Exit is how a container's last process ended.
type Exit struct {
	Code   int64  `cbor:"1,keyasint"`
	Signal uint8  `cbor:"2,keyasint,omitempty"`
	OOM    bool   `cbor:"3,keyasint,omitempty"`
	Reason string `cbor:"4,keyasint,omitempty"`
}

// Usage is a container's resource use.
type Usage struct {
	CPUms uint64 `cbor:"1,keyasint"`
	Mem   uint64 `cbor:"2,keyasint"` // bytes
	Pids  uint32 `cbor:"3,keyasint"`
	RxB   uint64 `cbor:"4,keyasint,omitempty"`
	TxB   uint64 `cbor:"5,keyasint,omitempty"`
}

// Flash is the store's view of flash space, in bytes.
type Flash struct {
	Free    uint64 `cbor:"1,keyasint"`
	Reserve uint64 `cbor:"2,keyasint"`
	Store   uint64 `cbor:"3,keyasint"`
}

// Reached is the desired version a device converged to for one scope, with
// the items that failed (the device keeps running its last good items).
type Reached struct {
	Version  uint64      `cbor:"1,keyasint"`
	Errors   []ItemError `cbor:"2,keyasint,omitempty"`
	Applying uint64      `cbor:"3,keyasint,omitempty"` // version being applied now
}

// ItemError is one desired item (image or container) that could not be
// applied.
type ItemError struct {
	Item string `cbor:"1,keyasint"` // "image/<name>" or "container/<name>" or "doc"
	Code Code   `cbor:"2,keyasint"`
	Msg  string `cbor:"3,keyasint"`
}

// Event is the payload of dev/<id>/event (not retained).
type Event struct {
	Seq       uint64 `cbor:"1,keyasint"`
	Time      uint64 `cbor:"2,keyasint"` // unix ms
	Kind      string `cbor:"3,keyasint"` // start exit oom restart health install remove error reject
	Container string `cbor:"4,keyasint,omitempty"`
	Code      int64  `cbor:"5,keyasint,omitempty"`
	Msg       string `cbor:"6,keyasint,omitempty"`
	BdSeq     uint64 `cbor:"7,keyasint,omitempty"`
}

// Command is the payload of dev/<id>/cmd, bare or as the payload of a
// COSE_Sign1 (required when the device trusts controller keys).
type Command struct {
	ID       string `cbor:"1,keyasint"` // request id, 1..64 bytes, unique per controller
	To       string `cbor:"2,keyasint"` // device id: a command signed for one device is useless on another
	Issued   uint64 `cbor:"3,keyasint"` // unix ms
	Deadline uint64 `cbor:"4,keyasint"` // unix ms; later than Issued, at most MaxDeadline after it
	Op       string `cbor:"5,keyasint"` // run stop start restart rm logs stats ps import
	Args     Args   `cbor:"6,keyasint"`
}

// Args are a command's arguments; which ones an op uses is in protocol.cddl.
type Args struct {
	Name    string         `cbor:"1,keyasint,omitempty"`
	Image   string         `cbor:"2,keyasint,omitempty"`
	Argv    []string       `cbor:"3,keyasint,omitempty"`
	URL     string         `cbor:"4,keyasint,omitempty"`
	Digest  []byte         `cbor:"5,keyasint,omitempty"`
	Tail    uint32         `cbor:"6,keyasint,omitempty"`
	Force   bool           `cbor:"7,keyasint,omitempty"`
	Spec    *ContainerSpec `cbor:"8,keyasint,omitempty"`
	Timeout uint32         `cbor:"9,keyasint,omitempty"` // seconds (stop)
}

// Reply is the payload of dev/<id>/reply: zero or more progress replies,
// then exactly one final one.
type Reply struct {
	ID       string          `cbor:"1,keyasint"`
	Final    bool            `cbor:"2,keyasint,omitempty"`
	Progress uint8           `cbor:"3,keyasint,omitempty"` // percent, progress replies only
	Code     Code            `cbor:"4,keyasint,omitempty"` // "" = ok
	Msg      string          `cbor:"5,keyasint,omitempty"`
	Result   cbor.RawMessage `cbor:"6,keyasint,omitempty"` // op-specific, see protocol.cddl
}

// Desired is the payload of dev/<id>/desired and group/<g>/desired
// (retained), bare or signed like a Command.
type Desired struct {
	Scope      string          `cbor:"1,keyasint"` // "dev/<id>" or "group/<g>": must match the topic
	Version    uint64          `cbor:"2,keyasint"` // only moves forward
	Issued     uint64          `cbor:"3,keyasint"` // unix ms
	Images     []ImageRef      `cbor:"4,keyasint,omitempty"`
	Containers []ContainerSpec `cbor:"5,keyasint,omitempty"`
}

// ImageRef names an image by digest and where to fetch it.
type ImageRef struct {
	Name    string `cbor:"1,keyasint"`
	Digest  []byte `cbor:"2,keyasint"` // 32 bytes
	URL     string `cbor:"3,keyasint"`
	Version string `cbor:"4,keyasint,omitempty"`
	Size    uint64 `cbor:"5,keyasint,omitempty"`
	// Signature is the image's signed manifest (flash's COSE_Sign1 over the
	// manifest, as in the .otok file), so a device can check name, digest
	// and signer against its image keys before it downloads anything.
	Signature []byte `cbor:"6,keyasint,omitempty"`
}

// ContainerSpec is a container as the operator wants it, the same options
// as a `config container` section in /etc/config/otok.
type ContainerSpec struct {
	Name       string   `cbor:"1,keyasint" json:"name"`
	Image      string   `cbor:"2,keyasint" json:"image"`
	Argv       []string `cbor:"3,keyasint,omitempty" json:"command,omitempty"`
	Env        []string `cbor:"4,keyasint,omitempty" json:"env,omitempty"`
	Net        string   `cbor:"5,keyasint,omitempty" json:"net,omitempty"`
	IP         string   `cbor:"6,keyasint,omitempty" json:"ip,omitempty"`
	Restart    string   `cbor:"7,keyasint,omitempty" json:"restart,omitempty"`
	Memory     uint64   `cbor:"8,keyasint,omitempty" json:"memory,omitempty"`
	CPUs       string   `cbor:"9,keyasint,omitempty" json:"cpus,omitempty"`
	Mounts     []string `cbor:"10,keyasint,omitempty" json:"mounts,omitempty"`
	Publish    []string `cbor:"11,keyasint,omitempty" json:"publish,omitempty"`
	Stopped    bool     `cbor:"12,keyasint,omitempty" json:"stopped,omitempty"`
	Persistent bool     `cbor:"13,keyasint,omitempty" json:"persistent,omitempty"`
}
