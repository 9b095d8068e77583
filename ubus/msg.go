package ubus

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MsgType is the type byte of a ubus message header (enum ubus_msg_type).
type MsgType uint8

// Message types, as in ubusmsg.h.
const (
	MsgHello        MsgType = 0
	MsgStatus       MsgType = 1
	MsgData         MsgType = 2
	MsgPing         MsgType = 3
	MsgLookup       MsgType = 4
	MsgInvoke       MsgType = 5
	MsgAddObject    MsgType = 6
	MsgRemoveObject MsgType = 7
	MsgSubscribe    MsgType = 8
	MsgUnsubscribe  MsgType = 9
	MsgNotify       MsgType = 10
	MsgMonitor      MsgType = 11
)

var msgTypeNames = [...]string{"hello", "status", "data", "ping", "lookup", "invoke",
	"add_object", "remove_object", "subscribe", "unsubscribe", "notify", "monitor"}

func (t MsgType) String() string {
	if int(t) < len(msgTypeNames) {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("msgtype(%d)", uint8(t))
}

// Attr is the id of a top-level message attribute (enum ubus_msg_attr).
type Attr uint8

// Message attributes, as in ubusmsg.h.
const (
	AttrStatus      Attr = 1  // int32
	AttrObjPath     Attr = 2  // string
	AttrObjID       Attr = 3  // int32
	AttrMethod      Attr = 4  // string
	AttrObjType     Attr = 5  // int32
	AttrSignature   Attr = 6  // nested: one blobmsg table per method
	AttrData        Attr = 7  // nested: blobmsg table content
	AttrTarget      Attr = 8  // int32
	AttrActive      Attr = 9  // int8
	AttrNoReply     Attr = 10 // int8
	AttrSubscribers Attr = 11 // nested: int32 attributes with id 0
	AttrUser        Attr = 12 // string
	AttrGroup       Attr = 13 // string
	attrMax         Attr = 14
)

// Well-known object ids inside ubusd.
const (
	objEvent = 1 // UBUS_SYSTEM_OBJECT_EVENT: methods "register" and "send"
)

// HeaderSize is the size of struct ubus_msghdr: version, type, seq (be16),
// peer (be32).
const HeaderSize = 8

// Message is one ubus message: the header and the top-level attributes of
// its blob, in wire order. Payloads alias the buffer the message was parsed
// from.
type Message struct {
	Type  MsgType
	Seq   uint16
	Peer  uint32
	Attrs []MsgAttr
}

// MsgAttr is one top-level attribute of a message.
type MsgAttr struct {
	ID   Attr
	Data []byte
}

// Get returns the payload of the first attribute id, if present.
func (m *Message) Get(id Attr) ([]byte, bool) {
	for _, a := range m.Attrs {
		if a.ID == id {
			return a.Data, true
		}
	}
	return nil, false
}

// U32 returns an int32 attribute as unsigned (ids are u32 in ubus).
func (m *Message) U32(id Attr) (uint32, bool) {
	d, ok := m.Get(id)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint32(d), true
}

// Str returns a string attribute without its NUL.
func (m *Message) Str(id Attr) (string, bool) {
	d, ok := m.Get(id)
	if !ok {
		return "", false
	}
	return string(d[:len(d)-1]), true
}

// U8 returns an int8 attribute.
func (m *Message) U8(id Attr) (uint8, bool) {
	d, ok := m.Get(id)
	if !ok {
		return 0, false
	}
	return d[0], true
}

// Add appends an attribute. Builders use PutU32/PutString/PutU8 instead.
func (m *Message) Add(id Attr, data []byte) { m.Attrs = append(m.Attrs, MsgAttr{id, data}) }

// PutU32 appends an int32 attribute.
func (m *Message) PutU32(id Attr, v uint32) { m.Add(id, binary.BigEndian.AppendUint32(nil, v)) }

// PutU8 appends an int8 attribute.
func (m *Message) PutU8(id Attr, v uint8) { m.Add(id, []byte{v}) }

// PutString appends a string attribute (NUL added).
func (m *Message) PutString(id Attr, s string) { m.Add(id, append([]byte(s), 0)) }

// attrKind is the payload check libubus/ubusd apply to a known attribute
// (their blob_attr_info policies); unknown ids pass unchecked.
var attrKind = [attrMax]uint8{
	AttrStatus: 4, AttrObjID: 4, AttrObjType: 4, AttrTarget: 4,
	AttrActive: 1, AttrNoReply: 1,
	AttrObjPath: 's', AttrMethod: 's', AttrUser: 's', AttrGroup: 's',
}

// ParseBlob parses a message blob (the bytes after the 8-byte header: one
// blob_attr with id 0 whose payload is the attribute list). Attributes with
// a known id must have the right size (int32, int8) or be NUL-terminated
// (strings); otherwise an error names the attribute and its offset.
func ParseBlob(b []byte) ([]MsgAttr, error) {
	if len(b) < blobHdrLen {
		return nil, decodeErr(0, "message blob of %d bytes is shorter than its header", len(b))
	}
	w := binary.BigEndian.Uint32(b)
	raw := int(w & blobLenMask)
	if raw < blobHdrLen {
		return nil, decodeErr(0, "message blob length %d shorter than its header", raw)
	}
	if pad4(raw) > MaxMessageSize {
		return nil, decodeErr(0, "message blob length %d exceeds %d", raw, MaxMessageSize)
	}
	if raw > len(b) {
		return nil, decodeErr(0, "message blob length %d exceeds the %d bytes received", raw, len(b))
	}
	it := blobIter{buf: b[blobHdrLen:raw], base: blobHdrLen}
	var attrs []MsgAttr
	for {
		a, ok := it.next()
		if !ok {
			break
		}
		id := Attr(a.id)
		if id < attrMax {
			switch k := attrKind[id]; k {
			case 1, 4:
				if len(a.data) != int(k) {
					return nil, decodeErr(a.off, "attribute %d: %d bytes, want %d", id, len(a.data), k)
				}
			case 's':
				if len(a.data) == 0 || a.data[len(a.data)-1] != 0 {
					return nil, decodeErr(a.off, "attribute %d: string not NUL-terminated", id)
				}
			}
		}
		attrs = append(attrs, MsgAttr{ID: id, Data: a.data})
	}
	if it.err != nil {
		return nil, it.err
	}
	return attrs, nil
}

// ParseMessage parses one complete message: header and blob.
func ParseMessage(b []byte) (*Message, error) {
	if len(b) < HeaderSize {
		return nil, decodeErr(0, "message of %d bytes is shorter than the %d byte header", len(b), HeaderSize)
	}
	if b[0] != 0 {
		return nil, decodeErr(0, "unsupported protocol version %d", b[0])
	}
	attrs, err := ParseBlob(b[HeaderSize:])
	if err != nil {
		de := err.(*DecodeError)
		de.Offset += HeaderSize
		return nil, de
	}
	return &Message{
		Type:  MsgType(b[1]),
		Seq:   binary.BigEndian.Uint16(b[2:]),
		Peer:  binary.BigEndian.Uint32(b[4:]),
		Attrs: attrs,
	}, nil
}

// ReadMessage reads one message from r. It reads the header and the blob
// header word first and allocates no more than the announced length, which
// is at most MaxMessageSize. An error here means the stream is out of step:
// close the connection. A message that is framed well but malformed inside
// is returned as raw bytes with a *DecodeError, so the caller can drop it and
// continue.
func ReadMessage(r io.Reader) (*Message, []byte, error) {
	var hdr [HeaderSize + blobHdrLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	raw := int(binary.BigEndian.Uint32(hdr[HeaderSize:]) & blobLenMask)
	if raw < blobHdrLen || pad4(raw) > MaxMessageSize {
		return nil, nil, fmt.Errorf("ubus: framing lost: message blob length %d outside [%d, %d]", raw, blobHdrLen, MaxMessageSize)
	}
	buf := make([]byte, HeaderSize+raw)
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[len(hdr):]); err != nil {
		return nil, nil, err
	}
	m, err := ParseMessage(buf)
	return m, buf, err
}

// Marshal encodes the message for the wire: header, then the blob.
func (m *Message) Marshal() ([]byte, error) {
	bb := blobBuf{b: make([]byte, HeaderSize, 64)}
	bb.b[0] = 0
	bb.b[1] = byte(m.Type)
	binary.BigEndian.PutUint16(bb.b[2:], m.Seq)
	binary.BigEndian.PutUint32(bb.b[4:], m.Peer)
	off := bb.open(0, false)
	for _, a := range m.Attrs {
		bb.put(uint8(a.ID), a.Data)
	}
	bb.close(off)
	if pad4(len(bb.b)-HeaderSize) > MaxMessageSize {
		return nil, fmt.Errorf("ubus: %s message of %d bytes exceeds %d", m.Type, len(bb.b)-HeaderSize, MaxMessageSize)
	}
	return bb.b, nil
}

func (m *Message) String() string {
	return fmt.Sprintf("%s seq=%d peer=%08x attrs=%d", m.Type, m.Seq, m.Peer, len(m.Attrs))
}
