// Package rawclient opens AMQP 1.0 client connections from frames written by hand
// with internal/wire. Tests and benchmarks use it where they need thousands of
// clients that cost next to nothing on the client side (no goroutines, no buffers
// kept), to measure what a fake intermediary pays for them.
package rawclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Open connects to addr with the plain AMQP header (no SASL layer), sends open and
// returns once the server has answered with its open. The connection then stays
// idle until the caller closes it.
func Open(addr string) (net.Conn, error) {
	return dialAndWait(addr, []wire.Marshaler{openFrame("rawclient-idle", 65535)}, 0)
}

// Receivers connects to addr, begins one session and attaches one receiving link (the
// server sends) to each of addrs, without granting credit; it returns once the
// server has answered every attach. A refused link or connection is an error.
func Receivers(addr string, addrs []string) (net.Conn, error) {
	frames := []wire.Marshaler{
		openFrame("rawclient-receivers", 1),
		&wire.Begin{IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, HandleMax: uint32(len(addrs))},
	}
	for i, a := range addrs {
		frames = append(frames, &wire.Attach{Name: fmt.Sprintf("rawclient-%d", i), Handle: uint32(i),
			Role: wire.RoleReceiver, Source: &wire.Source{Address: a}, Target: &wire.Target{}})
	}
	return dialAndWait(addr, frames, len(addrs))
}

// ManyReceivers opens conns connections with Receivers, perConn links each, link j of
// connection i attached to address(i, j). On an error it closes what it opened.
func ManyReceivers(addr string, conns, perConn int, address func(conn, link int) string) ([]net.Conn, error) {
	out := make([]net.Conn, 0, conns)
	for i := range conns {
		addrs := make([]string, perConn)
		for j := range addrs {
			addrs[j] = address(i, j)
		}
		c, err := Receivers(addr, addrs)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func openFrame(container string, channelMax uint16) *wire.Open {
	return &wire.Open{ContainerID: container, MaxFrameSize: 65536, ChannelMax: channelMax}
}

// dialAndWait writes the header and frames in one write, then reads until the
// server's open and attaches answers have arrived.
func dialAndWait(addr string, frames []wire.Marshaler, attaches int) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	hdr := wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	out := append([]byte{}, hdr[:]...)
	for _, f := range frames {
		if out, err = wire.AppendFrame(out, wire.FrameAMQP, 0, f, nil); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err = c.Write(out); err == nil {
		err = await(bufio.NewReader(c), attaches)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// await reads the server's protocol header and frames until it has seen its open and
// n attaches; a detach or close is an error.
func await(rd *bufio.Reader, n int) error {
	var hb [wire.FrameHeaderSize]byte
	if _, err := io.ReadFull(rd, hb[:]); err != nil {
		return fmt.Errorf("rawclient: reading the protocol header: %w", err)
	}
	if hb != (wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()) {
		return fmt.Errorf("rawclient: the server answered the header with % x", hb)
	}
	opened := false
	for !opened || n > 0 {
		if _, err := io.ReadFull(rd, hb[:]); err != nil {
			return fmt.Errorf("rawclient: waiting for open and %d attaches: %w", n, err)
		}
		h, err := wire.ParseFrameHeader(hb[:], 0)
		if err != nil {
			return fmt.Errorf("rawclient: %w", err)
		}
		body := make([]byte, h.Size-wire.FrameHeaderSize)
		if _, err := io.ReadFull(rd, body); err != nil {
			return fmt.Errorf("rawclient: %w", err)
		}
		body = body[int(h.DataOff)*4-wire.FrameHeaderSize:]
		if len(body) == 0 {
			continue // keep-alive
		}
		p, _, err := wire.DecodePerformative(body)
		if err != nil {
			return fmt.Errorf("rawclient: %w", err)
		}
		switch p := p.(type) {
		case *wire.Open:
			opened = true
		case *wire.Attach:
			// A refusal is an attach without the source, then a detach with the
			// reason: read on to report it.
			if p.Source != nil {
				n--
			}
		case *wire.Detach:
			if p.Error != nil {
				return fmt.Errorf("rawclient: link refused: %w", p.Error)
			}
			return errors.New("rawclient: link refused")
		case *wire.Close:
			if p.Error != nil {
				return fmt.Errorf("rawclient: connection closed: %w", p.Error)
			}
			return errors.New("rawclient: connection closed")
		}
	}
	return nil
}
