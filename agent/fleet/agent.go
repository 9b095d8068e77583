package fleet

import (
	"context"
	"errors"
)

// Agent is the fleet's view of the agent: the command API, the status
// snapshot and the event stream. It is defined here, where it is consumed,
// so that `otok fleet sim` and the tests run the real session code against a
// fake runtime (see FakeAgent). The daemon adapts agent's typed command API
// to it (see doc.go).
type Agent interface {
	// Status fills the device part of the status document: board, agent,
	// images, containers, flash. The session adds id, bdseq, time, the
	// desired versions reached and the drop counter.
	Status(ctx context.Context) (Status, error)
	// Do runs one command. progress may be called any number of times
	// with a percentage (downloads); the result is op-specific CBOR (see
	// protocol.cddl) or nil. Errors should be *Error to carry a code.
	Do(ctx context.Context, cmd *Command, progress func(pct uint8)) (result any, err error)
	// Apply makes the merged desired state (images and containers from the
	// device and group documents) the agent's fleet-managed state and
	// reconciles. It returns per-item errors; items that fail keep their
	// last good state. It must not block longer than ctx allows.
	Apply(ctx context.Context, images []ImageRef, containers []ContainerSpec) []ItemError
	// Events delivers agent events (seq and time are set by the session)
	// until ctx is done. Each event also marks the status as changed.
	Events(ctx context.Context) <-chan Event
}

// Code is an error code in replies and item errors. The agent's typed API
// errors map onto these; transports map them further (exit codes, ubus).
type Code string

const (
	CodeOK             Code = ""
	CodeInvalid        Code = "invalid"         // malformed request, wrong types, unknown fields
	CodeTooLarge       Code = "too_large"       // payload over its bound
	CodeUnknownCommand Code = "unknown_command" // op not known
	CodeNotFound       Code = "not_found"
	CodeConflict       Code = "conflict"
	CodeNoSpace        Code = "no_space"
	CodePermission     Code = "permission"
	CodeUnauthorized   Code = "unauthorized" // missing or bad signature, wrong recipient
	CodeReplay         Code = "replay"       // request id already seen, or desired version not newer
	CodeExpired        Code = "expired"      // past its deadline or issued outside the clock skew
	CodeBusy           Code = "busy"         // too many commands in flight
	CodeVerify         Code = "verify"       // image failed verification
	CodeTimeout        Code = "timeout"
	CodeUnavailable    Code = "unavailable" // a part is missing; a retry may succeed
	CodeInternal       Code = "internal"
)

// Error is a protocol-level error with a code.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// CodeOf returns err's code: that of an *Error in its chain, that of any
// error with a `FleetCode() string` method (how the agent's typed errors
// can map themselves without fleet importing them), timeout for deadline
// errors, internal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	var c interface{ FleetCode() string }
	if errors.As(err, &c) {
		return Code(c.FleetCode())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	return CodeInternal
}
