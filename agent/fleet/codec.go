package fleet

import (
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/otok/otok/cose"
)

// Size bounds, checked before any decoding. A payload over its bound is
// rejected whole; nothing in it is trusted.
const (
	MaxStateSize   = 64
	MaxStatusSize  = 256 << 10
	MaxEventSize   = 4 << 10
	MaxCommandSize = 16 << 10
	MaxReplySize   = 128 << 10
	MaxDesiredSize = 64 << 10
	// MaxResultSize bounds Reply.Result (e.g. log tails are cut to fit).
	MaxResultSize = MaxReplySize - 1024
)

var (
	encMode cbor.EncMode
	// decMode is strict: no duplicate keys, no indefinite lengths, no
	// unknown fields, no tags (COSE's tag 18 is taken apart separately),
	// valid UTF-8, bounded nesting and lengths.
	decMode cbor.DecMode
	// looseMode only serves to read a request id out of a command that
	// failed strict decoding, so that the error can be answered.
	looseMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   8,
		MaxArrayElements:  1024,
		MaxMapPairs:       256,
		UTF8:              cbor.UTF8RejectInvalid,
	}).DecMode(); err != nil {
		panic(err)
	}
	if looseMode, err = (cbor.DecOptions{MaxNestedLevels: 8, MaxArrayElements: 1024, MaxMapPairs: 256}).DecMode(); err != nil {
		panic(err)
	}
}

// Marshal encodes v as deterministic CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

func decode(what string, b []byte, limit int, v any) error {
	if len(b) > limit {
		return &Error{Code: CodeTooLarge, Msg: fmt.Sprintf("%s: %d bytes, limit %d", what, len(b), limit)}
	}
	if len(b) == 0 {
		return &Error{Code: CodeInvalid, Msg: what + ": empty payload"}
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return &Error{Code: CodeInvalid, Msg: fmt.Sprintf("%s: %v", what, err)}
	}
	return nil
}

// DecodeState decodes and checks a state payload.
func DecodeState(b []byte) (*State, error) {
	var m State
	if err := decode("state", b, MaxStateSize, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DecodeStatus decodes and checks a status payload.
func DecodeStatus(b []byte) (*Status, error) {
	var m Status
	if err := decode("status", b, MaxStatusSize, &m); err != nil {
		return nil, err
	}
	if err := checkID("status: device", m.Device); err != nil {
		return nil, err
	}
	for _, im := range m.Images {
		if len(im.Digest) != 32 {
			return nil, invalidf("status: image %q: digest is %d bytes, want 32", im.Name, len(im.Digest))
		}
	}
	return &m, nil
}

// DecodeEvent decodes and checks an event payload.
func DecodeEvent(b []byte) (*Event, error) {
	var m Event
	if err := decode("event", b, MaxEventSize, &m); err != nil {
		return nil, err
	}
	if m.Kind == "" {
		return nil, invalidf("event: no kind")
	}
	return &m, nil
}

// DecodeReply decodes and checks a reply payload.
func DecodeReply(b []byte) (*Reply, error) {
	var m Reply
	if err := decode("reply", b, MaxReplySize, &m); err != nil {
		return nil, err
	}
	if err := checkID("reply: id", m.ID); err != nil {
		return nil, err
	}
	if m.Progress > 100 {
		return nil, invalidf("reply %s: progress %d%% > 100", m.ID, m.Progress)
	}
	return &m, nil
}

// DecodeCommand decodes and checks a bare command (no signature).
func DecodeCommand(b []byte) (*Command, error) {
	var m Command
	if err := decode("command", b, MaxCommandSize, &m); err != nil {
		return nil, err
	}
	return &m, m.check()
}

// Ops lists the commands a device accepts, with the arguments each needs.
var Ops = map[string]string{
	"ps":      "",
	"run":     "spec (name, image, argv, net, …)",
	"start":   "name",
	"stop":    "name [timeout]",
	"restart": "name [timeout]",
	"rm":      "name [force]",
	"logs":    "name [tail]",
	"stats":   "[name]",
	"import":  "url digest [name]",
	"status":  "",
	"inspect": "name",
	"df":      "",
	"images":  "",
	"rmi":     "image",
	"gc":      "",
	"reload":  "",
}

func (m *Command) check() error {
	if err := checkID("command: id", m.ID); err != nil {
		return err
	}
	if err := checkID("command "+m.ID+": to", m.To); err != nil {
		return err
	}
	if m.Deadline <= m.Issued {
		return invalidf("command %s: deadline %d is not after issued %d", m.ID, m.Deadline, m.Issued)
	}
	if _, ok := Ops[m.Op]; !ok {
		return &Error{Code: CodeUnknownCommand, Msg: fmt.Sprintf("command %s: unknown op %q", m.ID, m.Op)}
	}
	a := &m.Args
	need := func(field, v string) error {
		if v == "" {
			return invalidf("command %s: %s needs %s", m.ID, m.Op, field)
		}
		return nil
	}
	switch m.Op {
	case "rmi":
		if err := need("an image", a.Image); err != nil {
			return err
		}
	case "start", "stop", "restart", "rm", "logs", "inspect":
		if err := need("a name", a.Name); err != nil {
			return err
		}
	case "run":
		if a.Spec == nil {
			return invalidf("command %s: run needs a spec", m.ID)
		}
		if err := a.Spec.check(); err != nil {
			return invalidf("command %s: %v", m.ID, err)
		}
	case "import":
		if err := need("a url", a.URL); err != nil {
			return err
		}
		if len(a.Digest) != 32 {
			return invalidf("command %s: import digest is %d bytes, want 32", m.ID, len(a.Digest))
		}
	}
	if a.Name != "" && !nameRE.MatchString(a.Name) {
		return invalidf("command %s: bad name %q", m.ID, a.Name)
	}
	return nil
}

// DecodeDesired decodes and checks a bare desired document.
func DecodeDesired(b []byte) (*Desired, error) {
	var m Desired
	if err := decode("desired", b, MaxDesiredSize, &m); err != nil {
		return nil, err
	}
	return &m, m.check()
}

func (d *Desired) check() error {
	if !scopeRE.MatchString(d.Scope) {
		return invalidf("desired: bad scope %q (want dev/<id> or group/<name>)", d.Scope)
	}
	if d.Version == 0 {
		return invalidf("desired %s: version must be > 0", d.Scope)
	}
	seen := map[string]bool{}
	for _, im := range d.Images {
		if !nameRE.MatchString(im.Name) {
			return invalidf("desired %s v%d: bad image name %q", d.Scope, d.Version, im.Name)
		}
		if len(im.Digest) != 32 {
			return invalidf("desired %s v%d: image %s: digest is %d bytes, want 32", d.Scope, d.Version, im.Name, len(im.Digest))
		}
		if im.URL == "" || len(im.URL) > 1024 {
			return invalidf("desired %s v%d: image %s: bad url", d.Scope, d.Version, im.Name)
		}
		if len(im.Signature) > 8<<10 || (len(im.Signature) > 0 && !cose.IsSign1(im.Signature)) {
			return invalidf("desired %s v%d: image %s: signature is not a COSE_Sign1 of at most 8 KiB", d.Scope, d.Version, im.Name)
		}
		if seen["i"+im.Name] {
			return invalidf("desired %s v%d: image %s listed twice", d.Scope, d.Version, im.Name)
		}
		seen["i"+im.Name] = true
	}
	for i := range d.Containers {
		c := &d.Containers[i]
		if err := c.check(); err != nil {
			return invalidf("desired %s v%d: %v", d.Scope, d.Version, err)
		}
		if seen["c"+c.Name] {
			return invalidf("desired %s v%d: container %s listed twice", d.Scope, d.Version, c.Name)
		}
		seen["c"+c.Name] = true
	}
	return nil
}

func (c *ContainerSpec) check() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("container: bad name %q", c.Name)
	}
	if c.Image == "" || len(c.Image) > 128 {
		return fmt.Errorf("container %s: bad image %q", c.Name, c.Image)
	}
	for _, l := range [][]string{c.Argv, c.Env, c.Mounts, c.Publish} {
		if len(l) > 64 {
			return fmt.Errorf("container %s: list of %d items, limit 64", c.Name, len(l))
		}
		for _, s := range l {
			if len(s) > 4096 {
				return fmt.Errorf("container %s: item of %d bytes, limit 4096", c.Name, len(s))
			}
		}
	}
	return nil
}

// Name rules, written out instead of regexps: package regexp costs every
// otok start its init and the router's flash its code.
//
//	id:    ^[A-Za-z0-9][A-Za-z0-9_:-]{0,63}$
//	name:  ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$
//	scope: ^(dev|group)/ID$
type nameRule string // the punctuation allowed after the first character

var (
	idRE    = nameRule("_:-")
	nameRE  = nameRule("_.-")
	scopeRE = scopeRule{}
)

func (r nameRule) MatchString(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte(string(r), c) < 0) {
			return false
		}
	}
	return true
}

type scopeRule struct{}

func (scopeRule) MatchString(s string) bool {
	kind, id, ok := strings.Cut(s, "/")
	return ok && (kind == "dev" || kind == "group") && idRE.MatchString(id)
}

// ValidID reports whether s can be a device id, group name or request id:
// 1–64 of [A-Za-z0-9_:-], not starting with punctuation, so it is always
// a single MQTT topic level without wildcards. No '.': NATS maps MQTT
// topic levels to subject tokens and refuses topics with '.' (or ' '),
// disconnecting the client.
func ValidID(s string) bool { return idRE.MatchString(s) }

func checkID(what, s string) error {
	if !idRE.MatchString(s) {
		return invalidf("%s %q: want 1-64 of [A-Za-z0-9_:-]", what, s)
	}
	return nil
}

func invalidf(format string, a ...any) error {
	return &Error{Code: CodeInvalid, Msg: fmt.Sprintf(format, a...)}
}

// peekID reads the request id of a command that failed to decode, from the
// bare map or from a COSE_Sign1 payload, without trusting anything else.
func peekID(b []byte) string {
	if len(b) > MaxCommandSize {
		return ""
	}
	var id struct {
		ID any `cbor:"1,keyasint"`
	}
	if looseMode.Unmarshal(b, &id) != nil {
		p, ok := cose.PeekPayload(b)
		if !ok || looseMode.Unmarshal(p, &id) != nil {
			return ""
		}
	}
	if s, ok := id.ID.(string); ok && idRE.MatchString(s) {
		return s
	}
	return ""
}
