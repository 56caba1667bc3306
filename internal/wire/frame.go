package wire

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Protocol identifiers of the protocol header (part 2.2): "AMQP" id 1 0 0.
const (
	ProtoAMQP byte = 0 // plain AMQP
	ProtoTLS  byte = 2 // TLS negotiated in-band
	ProtoSASL byte = 3 // SASL security layer
)

// ProtocolHeader is the 8-byte header each side sends before its first frame.
type ProtocolHeader struct {
	ID                     byte
	Major, Minor, Revision byte
}

// ProtocolHeaderSize is the length of a protocol header.
const ProtocolHeaderSize = 8

// Bytes returns the wire form of h.
func (h ProtocolHeader) Bytes() [8]byte {
	return [8]byte{'A', 'M', 'Q', 'P', h.ID, h.Major, h.Minor, h.Revision}
}

// String returns a readable form such as "AMQP 3 1.0.0".
func (h ProtocolHeader) String() string {
	return fmt.Sprintf("AMQP %d %d.%d.%d", h.ID, h.Major, h.Minor, h.Revision)
}

// ParseProtocolHeader reads a protocol header. It returns an error when b does not start
// with "AMQP"; a header with another version is returned as read for the caller to
// refuse.
func ParseProtocolHeader(b []byte) (ProtocolHeader, error) {
	if len(b) < ProtocolHeaderSize {
		return ProtocolHeader{}, errTruncated
	}
	if b[0] != 'A' || b[1] != 'M' || b[2] != 'Q' || b[3] != 'P' {
		return ProtocolHeader{}, malformed("protocol header %q does not start with AMQP", b[:8])
	}
	return ProtocolHeader{ID: b[4], Major: b[5], Minor: b[6], Revision: b[7]}, nil
}

// Frame types (part 2.3).
const (
	FrameAMQP byte = 0x00
	FrameSASL byte = 0x01
)

// FrameHeaderSize is the size of the fixed frame header. Frames carry no extended
// header in AMQP 1.0 (doff is 2).
const FrameHeaderSize = 8

// MinMaxFrameSize is the smallest max-frame-size a peer may announce (part 2.7.1).
const MinMaxFrameSize = 512

// FrameHeader is the fixed part of a frame.
type FrameHeader struct {
	Size    uint32 // total frame size, header included
	DataOff uint8  // offset of the body in 4-byte words, at least 2
	Type    byte   // FrameAMQP or FrameSASL
	Channel uint16 // channel (ignored in SASL frames)
}

// ParseFrameHeader decodes the 8-byte frame header. It checks that the size can hold
// the header and is within maxSize (0 means no limit), so a reader can refuse an
// oversized frame before reading its body.
func ParseFrameHeader(b []byte, maxSize uint32) (FrameHeader, error) {
	if len(b) < FrameHeaderSize {
		return FrameHeader{}, errTruncated
	}
	h := FrameHeader{
		Size:    binary.BigEndian.Uint32(b),
		DataOff: b[4],
		Type:    b[5],
		Channel: binary.BigEndian.Uint16(b[6:]),
	}
	if h.DataOff < 2 {
		return h, malformed("frame data offset %d below 2", h.DataOff)
	}
	if h.Size < uint32(h.DataOff)*4 {
		return h, malformed("frame size %d smaller than its data offset %d", h.Size, uint32(h.DataOff)*4)
	}
	if maxSize != 0 && h.Size > maxSize {
		return h, &FrameTooLargeError{Size: h.Size, Max: maxSize}
	}
	return h, nil
}

// FrameTooLargeError reports a frame header announcing more than the negotiated
// max-frame-size.
type FrameTooLargeError struct {
	Size, Max uint32
}

// Error says how large the frame was and what the limit is.
func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("amqp: frame of %d bytes exceeds max-frame-size %d", e.Size, e.Max)
}

// FrameStart appends a frame header with a placeholder size; FrameEnd patches it.
func FrameStart(b []byte, typ byte, channel uint16) ([]byte, int) {
	off := len(b)
	return append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel)), off
}

// FrameEnd patches the size of the frame started at off.
func FrameEnd(b []byte, off int) []byte {
	binary.BigEndian.PutUint32(b[off:], uint32(len(b)-off))
	return b
}

// AppendFrame appends a whole frame: header, the body's encoding (nil for an empty
// frame, the keep-alive of part 2.4.5) and payload (the message bytes of a transfer).
func AppendFrame(b []byte, typ byte, channel uint16, body Marshaler, payload []byte) ([]byte, error) {
	b, off := FrameStart(b, typ, channel)
	if body != nil {
		var err error
		if b, err = body.AppendTo(b); err != nil {
			return b[:off], err
		}
	}
	b = append(b, payload...)
	return FrameEnd(b, off), nil
}

// DecodePerformative decodes an AMQP frame body into a new performative and returns
// the bytes that follow it (the payload of a transfer), aliasing body.
func DecodePerformative(body []byte) (Performative, []byte, error) {
	v, rest, err := decodeBody(body)
	if err != nil {
		return nil, nil, err
	}
	p, ok := v.(Performative)
	if !ok {
		return nil, nil, malformed("%T is not a performative", v)
	}
	return p, rest, nil
}

// DecodeSASLFrame decodes a SASL frame body.
func DecodeSASLFrame(body []byte) (SASLFrame, error) {
	v, rest, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	s, ok := v.(SASLFrame)
	if !ok {
		return nil, malformed("%T is not a SASL frame", v)
	}
	if len(rest) != 0 {
		return nil, malformed("%d bytes after a SASL frame body", len(rest))
	}
	return s, nil
}

func decodeBody(body []byte) (composite, []byte, error) {
	d := getDecoder(body)
	defer putDecoder(d)
	code, err := d.ReadDescriptor()
	if err != nil {
		return nil, nil, err
	}
	f := compositeByCode[code]
	if f == nil {
		return nil, nil, malformed("descriptor 0x%x is not a frame body", code)
	}
	v := f()
	if err := v.decodeValue(d); err != nil {
		return nil, nil, err
	}
	return v, d.Remaining(), nil
}

// decoderPool holds Decoders for the frame and message decoders: a Decoder passed to
// the composite types' decodeValue (an interface method) escapes, and would otherwise
// cost an allocation per frame.
var decoderPool = sync.Pool{New: func() any { return new(Decoder) }}

func getDecoder(b []byte) *Decoder {
	d := decoderPool.Get().(*Decoder)
	d.Reset(b)
	return d
}

func putDecoder(d *Decoder) {
	d.Reset(nil)
	decoderPool.Put(d)
}
