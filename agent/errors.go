package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/otok/otok/ubus"
)

// Code is an API error code, typed once here and mapped to CLI exit codes
// (ExitCode), ubus status codes (UbusStatus) and, later, MQTT reply codes
// (the string itself is the wire form).
type Code string

// Error codes.
const (
	CodeInvalid     Code = "invalid"     // bad request or definition; nothing changed
	CodeNotFound    Code = "not_found"   // no such container, image, op
	CodeConflict    Code = "conflict"    // exists already, busy with another request, wrong state
	CodeNoSpace     Code = "no_space"    // flash or tmpfs full, limits exhausted
	CodePermission  Code = "permission"  // caller may not do this
	CodeUnavailable Code = "unavailable" // a part is missing (runtime, store, network port, image not yet there); retry may succeed
	CodeTimeout     Code = "timeout"     // deadline passed
	CodeInternal    Code = "internal"    // a bug or an unexpected system error
)

// Error is the error every API call returns: a code and a message whose
// subject comes first ("container dns: option memory: …").
type Error struct {
	Code Code   `cbor:"code" json:"code"`
	Msg  string `cbor:"msg" json:"msg"`
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an *Error.
func Errorf(code Code, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// CodeOf returns the code of the first *Error in err's chain (CodeTimeout
// for context deadlines, CodeInternal otherwise; "" for nil).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	return CodeInternal
}

// asError turns any error into an *Error for the wire.
func asError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Msg != err.Error() { // keep the wrapping context
			return &Error{Code: e.Code, Msg: err.Error()}
		}
		return e
	}
	return &Error{Code: CodeOf(err), Msg: err.Error()}
}

// Exit codes of the CLI for each error code (0 success, 2 usage stays
// the CLI's own).
var exitCodes = map[Code]int{
	CodeInternal:    1,
	CodeInvalid:     3,
	CodeNotFound:    4,
	CodeConflict:    5,
	CodeNoSpace:     6,
	CodePermission:  7,
	CodeUnavailable: 8,
	CodeTimeout:     9,
}

// ExitCode is the CLI exit status for c.
func (c Code) ExitCode() int {
	if n, ok := exitCodes[c]; ok {
		return n
	}
	return 1
}

// ExitCode is the CLI exit status for e (see Code.ExitCode).
func (e *Error) ExitCode() int { return e.Code.ExitCode() }

// UbusStatus maps the code to a ubus status (ubus.StatusOf uses it).
func (e *Error) UbusStatus() ubus.Status {
	switch e.Code {
	case CodeInvalid:
		return ubus.StatusInvalidArgument
	case CodeNotFound:
		return ubus.StatusNotFound
	case CodePermission:
		return ubus.StatusPermissionDenied
	case CodeTimeout:
		return ubus.StatusTimeout
	case CodeNoSpace:
		return ubus.StatusNoMemory
	case CodeUnavailable:
		return ubus.StatusNoData
	case CodeConflict:
		return ubus.StatusInvalidCommand
	}
	return ubus.StatusUnknownError
}
