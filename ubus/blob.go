package ubus

import (
	"encoding/binary"
	"fmt"
)

// A blob_attr on the wire is a 4-byte big-endian word followed by its
// payload and zero padding up to the next multiple of 4:
//
//	bit 31      extended (blobmsg: a name header follows)
//	bits 30..24 id (7 bits)
//	bits 23..0  length of header + payload, padding not included
//
// A container's length covers its children including their padding.
const (
	blobHdrLen   = 4
	blobIDMask   = 0x7f000000
	blobIDShift  = 24
	blobLenMask  = 0x00ffffff
	blobExtended = 0x80000000
	blobAlign    = 4
)

// MaxMessageSize is the largest message ubusd accepts (UBUS_MAX_MSGLEN):
// the padded length of a message's blob, header word included.
const MaxMessageSize = 1 << 20

// MaxDepth bounds the nesting of blobmsg tables and arrays that this package
// decodes or encodes; deeper input is rejected instead of recursing further.
const MaxDepth = 32

// DecodeError reports malformed wire data: what is wrong and at which byte
// offset of the decoded buffer.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("ubus: decode: offset %d: %s", e.Offset, e.Msg)
}

// UbusStatus makes malformed arguments map to UBUS_STATUS_INVALID_ARGUMENT
// when a handler returns a decode error.
func (e *DecodeError) UbusStatus() Status { return StatusInvalidArgument }

func decodeErr(off int, format string, args ...any) error {
	return &DecodeError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func pad4(n int) int { return (n + blobAlign - 1) &^ (blobAlign - 1) }

// blobAttr is one parsed attribute; data aliases the input buffer.
type blobAttr struct {
	id       uint8
	extended bool
	data     []byte // payload: raw length minus the header word
	off      int    // offset of the header word in the decoded buffer
}

// blobIter walks a list of attributes that must fill buf exactly (each one
// padded to 4 bytes; the last one's padding may be cut off by the end of
// the container, as libubox tolerates when counting the raw length).
type blobIter struct {
	buf  []byte
	pos  int
	base int // offset of buf[0] in the whole decoded input, for errors
	err  error
}

func (it *blobIter) next() (blobAttr, bool) {
	if it.err != nil || it.pos >= len(it.buf) {
		return blobAttr{}, false
	}
	rem := len(it.buf) - it.pos
	off := it.base + it.pos
	if rem < blobHdrLen {
		it.err = decodeErr(off, "%d trailing bytes, too short for an attribute header", rem)
		return blobAttr{}, false
	}
	w := binary.BigEndian.Uint32(it.buf[it.pos:])
	raw := int(w & blobLenMask)
	if raw < blobHdrLen {
		it.err = decodeErr(off, "attribute length %d shorter than its header", raw)
		return blobAttr{}, false
	}
	if raw > rem {
		it.err = decodeErr(off, "attribute length %d exceeds the %d bytes left in its container", raw, rem)
		return blobAttr{}, false
	}
	a := blobAttr{
		id:       uint8((w & blobIDMask) >> blobIDShift),
		extended: w&blobExtended != 0,
		data:     it.buf[it.pos+blobHdrLen : it.pos+raw],
		off:      off,
	}
	it.pos += min(pad4(raw), rem)
	return a, true
}

// blobBuf builds attributes by appending; nested attributes are opened and
// closed, and close patches the length word like blob_nest_end.
type blobBuf struct {
	b []byte
}

func (bb *blobBuf) putHdr(id uint8, extended bool, rawLen int) {
	w := uint32(id)<<blobIDShift&blobIDMask | uint32(rawLen)&blobLenMask
	if extended {
		w |= blobExtended
	}
	bb.b = binary.BigEndian.AppendUint32(bb.b, w)
}

func (bb *blobBuf) padTo4() {
	for len(bb.b)%blobAlign != 0 {
		bb.b = append(bb.b, 0)
	}
}

// open starts a nested attribute and returns the offset to pass to close.
func (bb *blobBuf) open(id uint8, extended bool) int {
	off := len(bb.b)
	bb.putHdr(id, extended, 0)
	return off
}

// close sets the length of the attribute opened at off to everything
// appended since, then pads.
func (bb *blobBuf) close(off int) {
	raw := len(bb.b) - off
	w := binary.BigEndian.Uint32(bb.b[off:])
	binary.BigEndian.PutUint32(bb.b[off:], w&^blobLenMask|uint32(raw)&blobLenMask)
	bb.padTo4()
}

// put appends a complete non-extended attribute with a payload.
func (bb *blobBuf) put(id uint8, payload []byte) {
	bb.putHdr(id, false, blobHdrLen+len(payload))
	bb.b = append(bb.b, payload...)
	bb.padTo4()
}

func (bb *blobBuf) putU32(id uint8, v uint32) {
	bb.putHdr(id, false, blobHdrLen+4)
	bb.b = binary.BigEndian.AppendUint32(bb.b, v)
}

func (bb *blobBuf) putU8(id uint8, v uint8) {
	bb.putHdr(id, false, blobHdrLen+1)
	bb.b = append(bb.b, v, 0, 0, 0)
}

func (bb *blobBuf) putString(id uint8, s string) {
	bb.putHdr(id, false, blobHdrLen+len(s)+1)
	bb.b = append(bb.b, s...)
	bb.b = append(bb.b, 0)
	bb.padTo4()
}
