package frameclient

import (
	"errors"
	"fmt"
	"net"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The helpers below open client connections that then stay idle and cost next to
// nothing on the client side: each returns the bare net.Conn once the handshake is
// done (no goroutine, no buffer kept), for tests and benchmarks that measure what an
// intermediary pays for thousands of clients.

// OpenIdle connects to addr with the plain AMQP header (no SASL layer), sends open and
// returns once the server has answered with its open.
func OpenIdle(addr string) (net.Conn, error) {
	return openAndWait(addr, []wire.Marshaler{idleOpen("frameclient-idle", 65535)}, 0)
}

// Receivers connects to addr, begins one session and attaches one receiving link
// (the server sends) to each of addrs, without granting credit; it returns once the
// server has answered every attach. A refused link or connection is an error.
func Receivers(addr string, addrs []string) (net.Conn, error) {
	frames := []wire.Marshaler{
		idleOpen("frameclient-receivers", 1),
		&wire.Begin{IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, HandleMax: uint32(len(addrs))},
	}
	for i, a := range addrs {
		frames = append(frames, &wire.Attach{Name: fmt.Sprintf("frameclient-%d", i), Handle: uint32(i),
			Role: wire.RoleReceiver, Source: &wire.Source{Address: a}, Target: &wire.Target{}})
	}
	return openAndWait(addr, frames, len(addrs))
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

func idleOpen(container string, channelMax uint16) *wire.Open {
	return &wire.Open{ContainerID: container, MaxFrameSize: 65536, ChannelMax: channelMax}
}

// openAndWait writes the header and frames in one write, then reads until the
// server's open and attaches answers have arrived, and returns the bare connection.
func openAndWait(addr string, frames []wire.Marshaler, attaches int) (net.Conn, error) {
	c, err := Dial(addr)
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
	if err = c.WriteRaw(out); err == nil {
		err = c.awaitAnswers(attaches)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c.nc, nil
}

// awaitAnswers reads the server's protocol header and frames until it has seen its
// open and n attaches; a detach or close is an error.
func (c *Conn) awaitAnswers(n int) error {
	h, err := c.ReadHeader()
	if err != nil {
		return fmt.Errorf("frameclient: reading the protocol header: %w", err)
	}
	if h != (wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}) {
		return fmt.Errorf("frameclient: the server answered the header with %v", h)
	}
	opened := false
	for !opened || n > 0 {
		f, err := c.Next()
		if err != nil {
			return fmt.Errorf("frameclient: waiting for open and %d attaches: %w", n, err)
		}
		switch p := f.Body.(type) {
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
				return fmt.Errorf("frameclient: link refused: %w", p.Error)
			}
			return errors.New("frameclient: link refused")
		case *wire.Close:
			if p.Error != nil {
				return fmt.Errorf("frameclient: connection closed: %w", p.Error)
			}
			return errors.New("frameclient: connection closed")
		}
	}
	return nil
}
