package ubus

import (
	"context"
	"errors"
	"fmt"
)

// Status is a ubus status code (enum ubus_msg_status) and an error. A
// handler returns one to answer with that code; a call that got a non-zero
// status returns it, so errors.Is(err, ubus.StatusNotFound) works.
type Status uint32

// Status codes, as in ubusmsg.h.
const (
	StatusOK               Status = 0
	StatusInvalidCommand   Status = 1
	StatusInvalidArgument  Status = 2
	StatusMethodNotFound   Status = 3
	StatusNotFound         Status = 4
	StatusNoData           Status = 5
	StatusPermissionDenied Status = 6
	StatusTimeout          Status = 7
	StatusNotSupported     Status = 8
	StatusUnknownError     Status = 9
	StatusConnectionFailed Status = 10
	StatusNoMemory         Status = 11
	StatusParseError       Status = 12
	StatusSystemError      Status = 13
)

// Texts from libubus's ubus_strerror, so messages read the same as `ubus`.
var statusText = [...]string{
	"Success",
	"Invalid command",
	"Invalid argument",
	"Method not found",
	"Not found",
	"No response",
	"Permission denied",
	"Request timed out",
	"Operation not supported",
	"Unknown error",
	"Connection failed",
	"Out of memory",
	"Parsing message data failed",
	"System error",
}

// Error returns libubus's text for the code ("Invalid argument").
func (s Status) Error() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return fmt.Sprintf("Unknown error: %d", uint32(s))
}

// StatusOf returns the status code that answers a request failing with err:
// StatusOK for nil; the code of a Status in err's chain; the code of the
// first error in the chain with a `UbusStatus() Status` method (how callers
// map their own error types); StatusTimeout for context deadlines; else
// StatusUnknownError.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	var m interface{ UbusStatus() Status }
	if errors.As(err, &m) {
		return m.UbusStatus()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return StatusTimeout
	}
	return StatusUnknownError
}
