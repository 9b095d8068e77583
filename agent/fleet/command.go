package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// handleCommand verifies, admits and runs one command, replying on
// dev/<id>/reply. Whatever is wrong with the message, the device answers
// with an error reply when a request id can be read, and emits a "reject"
// event either way; it never panics on input.
func (s *Session) handleCommand(l *link, b []byte) {
	reject := func(id string, err error) {
		code := CodeOf(err)
		s.emit(Event{Kind: "reject", Code: 0, Msg: truncate(fmt.Sprintf("cmd %s: %v", id, err), 512)})
		s.markDirty()
		if id != "" {
			s.reply(l, Reply{ID: id, Final: true, Code: code, Msg: truncate(err.Error(), 1024)})
		}
	}
	if len(b) > MaxCommandSize {
		reject("", &Error{Code: CodeTooLarge, Msg: fmt.Sprintf("command of %d bytes, limit %d", len(b), MaxCommandSize)})
		return
	}
	payload, err := Open(b, CtypeCommand, s.cfg.Keys)
	if err != nil {
		reject(peekID(b), err)
		return
	}
	c, err := DecodeCommand(payload)
	if err != nil {
		id := peekID(payload)
		reject(id, err)
		return
	}
	if c.To != s.cfg.DeviceID {
		reject(c.ID, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("command addressed to %q, this is %q", c.To, s.cfg.DeviceID)})
		return
	}
	cached, err := s.guard.admit(c, time.Now())
	if err != nil {
		if CodeOf(err) == CodeReplay {
			// Idempotent: never run twice; hand back the original result.
			r := Reply{ID: c.ID, Final: true, Code: CodeReplay, Msg: err.Error(), Result: cached}
			s.emit(Event{Kind: "reject", Msg: truncate("cmd "+c.ID+": "+err.Error(), 512)})
			s.reply(l, r)
			return
		}
		reject(c.ID, err)
		return
	}
	select {
	case s.cmds <- struct{}{}:
	default:
		reject(c.ID, &Error{Code: CodeBusy, Msg: fmt.Sprintf("%d commands already running", MaxInFlight)})
		return
	}
	defer func() { <-s.cmds }()
	ctx, cancel := context.WithDeadline(context.Background(), time.UnixMilli(int64(c.Deadline)))
	defer cancel()
	r := s.run(ctx, l, c)
	rb, err := encMode.Marshal(r)
	if err == nil {
		s.guard.done(c.ID, rb)
	}
	s.reply(l, r)
}

// run executes an admitted command.
func (s *Session) run(ctx context.Context, l *link, c *Command) (r Reply) {
	r = Reply{ID: c.ID, Final: true}
	defer func() {
		if p := recover(); p != nil { // an agent bug must not take the session down
			r = Reply{ID: c.ID, Final: true, Code: CodeInternal, Msg: fmt.Sprintf("panic: %v", p)}
		}
	}()
	var res any
	var err error
	if c.Op == "status" {
		res, err = s.StatusDoc(ctx)
	} else {
		last := -1
		res, err = s.agent.Do(ctx, c, func(pct uint8) {
			if pct > 100 {
				pct = 100
			}
			if int(pct) >= last+5 || (pct == 100 && last != 100) { // at most ~20 progress replies
				last = int(pct)
				s.reply(l, Reply{ID: c.ID, Progress: pct})
			}
		})
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = &Error{Code: CodeTimeout, Msg: "deadline reached before the command finished"}
		}
		r.Code, r.Msg = CodeOf(err), truncate(err.Error(), 1024)
		return r
	}
	if res != nil {
		b, err := encMode.Marshal(res)
		if err != nil {
			r.Code, r.Msg = CodeInternal, "encode result: "+err.Error()
		} else if len(b) > MaxResultSize {
			r.Code, r.Msg = CodeTooLarge, fmt.Sprintf("result of %d bytes, limit %d", len(b), MaxResultSize)
		} else {
			r.Result = cbor.RawMessage(b)
		}
	}
	return r
}

// reply publishes r on the link the command came in on (QoS 1); a lost
// link loses the reply, and the controller retries with the same id.
func (s *Session) reply(l *link, r Reply) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.publish(ctx, l, "reply", false, r); err != nil {
		s.logf("fleet %s: reply %s: %v", s.cfg.DeviceID, r.ID, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
