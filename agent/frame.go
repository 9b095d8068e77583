package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// Socket framing: each message is a 4-byte big-endian length followed by
// that many bytes of CBOR (RFC 8949), one map: a request
// {"id", "op", "body"} or a reply {"id", "err", "body", "more"}.
// Messages are bounded by MaxFrame; a frame over the bound, a truncated
// frame or CBOR that is not a well-formed request is answered with an
// invalid error and the connection closed (framing is lost), and nothing
// changes.

// MaxFrame bounds one socket message.
const MaxFrame = 1 << 20

type wireRequest struct {
	ID   uint64          `cbor:"id"`
	Op   string          `cbor:"op"`
	Body cbor.RawMessage `cbor:"body,omitempty"`
}

type wireReply struct {
	ID   uint64          `cbor:"id"`
	Err  *Error          `cbor:"err,omitempty"`
	Body cbor.RawMessage `cbor:"body,omitempty"`
	More bool            `cbor:"more,omitempty"` // a stream: more replies follow
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions() // deterministic, RFC 8949 §4.2
	eo.Time = cbor.TimeRFC3339Nano
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   16,
		MaxArrayElements:  4096,
		MaxMapPairs:       4096,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsAllowed,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// errFrameTooLarge is returned for a length over MaxFrame.
var errFrameTooLarge = fmt.Errorf("message larger than %d bytes", MaxFrame)

// readFrame reads one length-prefixed message into a buffer of exactly its
// size (never more than MaxFrame).
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, errFrameTooLarge
	}
	if n == 0 {
		return nil, errors.New("empty message")
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated message: %w", err)
	}
	return buf, nil
}

// writeFrame encodes v and writes it as one frame.
func writeFrame(w io.Writer, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxFrame {
		return errFrameTooLarge
	}
	out := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	copy(out[4:], b)
	_, err = w.Write(out)
	return err
}

// decodeRequest parses a request frame.
func decodeRequest(b []byte) (*wireRequest, error) {
	var r wireRequest
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, Errorf(CodeInvalid, "request: bad CBOR: %v", err)
	}
	if r.Op == "" {
		return &r, Errorf(CodeInvalid, "request: missing op")
	}
	return &r, nil
}

// decodeBody decodes an op's body into v (a pointer); an empty body leaves
// v zero.
func decodeBody(op string, body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := decMode.Unmarshal(body, v); err != nil {
		return Errorf(CodeInvalid, "%s: bad request body: %v", op, err)
	}
	return nil
}
