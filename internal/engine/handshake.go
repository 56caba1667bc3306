package engine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

var (
	headerAMQP = wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	headerSASL = wire.ProtocolHeader{ID: wire.ProtoSASL, Major: 1}.Bytes()
	headerTLS  = wire.ProtocolHeader{ID: wire.ProtoTLS, Major: 1}.Bytes()
)

// Handshake errors, wrapped with details; Closed receives them.
var (
	// ErrProtocolHeader reports a client that did not send an AMQP 1.0 header the
	// listener accepts.
	ErrProtocolHeader = errors.New("protocol header refused")
	// ErrAuthentication reports a failed SASL exchange.
	ErrAuthentication = errors.New("SASL authentication failed")
)

// bufferedConn lets a TLS server read bytes the handshake already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// handshake negotiates the protocol layers up to (not including) the open frame.
func (c *Conn) handshake() error {
	opts := &c.srv.opts
	tlsDone, saslDone := false, false
	for {
		if opts.TLS != nil && !tlsDone {
			first, err := c.rd.Peek(1)
			if err != nil {
				return err
			}
			if first[0] == 0x16 { // a TLS ClientHello: TLS from the first byte
				if err := c.startTLS(); err != nil {
					return err
				}
				tlsDone = true
				continue
			}
		}
		var raw [8]byte
		if _, err := io.ReadFull(c.rd, raw[:]); err != nil {
			return fmt.Errorf("reading protocol header: %w", err)
		}
		h, err := wire.ParseProtocolHeader(raw[:])
		if err != nil {
			c.refuseHeader(c.preferredHeader(tlsDone, saslDone))
			return fmt.Errorf("%w: client sent %q", ErrProtocolHeader, raw[:])
		}
		if h.Major != 1 || h.Minor != 0 || h.Revision != 0 {
			// Part 2.2: answer with a version the server supports, of the same
			// layer when that layer is welcome here.
			c.refuseHeader(c.supportedHeader(h.ID, tlsDone, saslDone))
			return fmt.Errorf("%w: client sent %q (version %d.%d.%d, only 1.0.0 is served)",
				ErrProtocolHeader, raw[:], h.Major, h.Minor, h.Revision)
		}
		switch h.ID {
		case wire.ProtoTLS:
			if opts.TLS == nil || tlsDone {
				c.refuseHeader(c.preferredHeader(tlsDone, saslDone))
				return fmt.Errorf("%w: TLS header but TLS is not offered here", ErrProtocolHeader)
			}
			if _, err := c.nc.Write(headerTLS[:]); err != nil {
				return err
			}
			if err := c.startTLS(); err != nil {
				return err
			}
			tlsDone = true
		case wire.ProtoSASL:
			if opts.RequireTLS && !tlsDone {
				c.refuseHeader(headerTLS)
				return fmt.Errorf("%w: SASL before TLS but the listener requires TLS", ErrProtocolHeader)
			}
			if saslDone {
				c.refuseHeader(headerAMQP)
				return fmt.Errorf("%w: second SASL header", ErrProtocolHeader)
			}
			if _, err := c.nc.Write(headerSASL[:]); err != nil {
				return err
			}
			if err := c.sasl(); err != nil {
				return err
			}
			saslDone = true
		case wire.ProtoAMQP:
			if opts.RequireTLS && !tlsDone {
				c.refuseHeader(headerTLS)
				return fmt.Errorf("%w: plain AMQP but the listener requires TLS", ErrProtocolHeader)
			}
			if !saslDone && opts.DenyAnonymous {
				c.refuseHeader(headerSASL)
				return fmt.Errorf("%w: client skipped SASL but the listener requires authentication", ErrProtocolHeader)
			}
			if !saslDone {
				c.user = ""
				c.mechanism = ""
			}
			_, err := c.nc.Write(headerAMQP[:])
			return err
		default:
			c.refuseHeader(c.preferredHeader(tlsDone, saslDone))
			return fmt.Errorf("%w: unknown protocol id %d", ErrProtocolHeader, h.ID)
		}
	}
}

func (c *Conn) preferredHeader(tlsDone, saslDone bool) [8]byte {
	opts := &c.srv.opts
	switch {
	case opts.RequireTLS && !tlsDone:
		return headerTLS
	case !saslDone:
		return headerSASL
	}
	return headerAMQP
}

// supportedHeader is the 1.0.0 header of protocol id when the listener would accept
// that layer at this point of the handshake, else the header it prefers.
func (c *Conn) supportedHeader(id byte, tlsDone, saslDone bool) [8]byte {
	opts := &c.srv.opts
	tlsFirst := opts.RequireTLS && !tlsDone
	switch {
	case id == wire.ProtoTLS && opts.TLS != nil && !tlsDone:
		return headerTLS
	case id == wire.ProtoSASL && !tlsFirst && !saslDone:
		return headerSASL
	case id == wire.ProtoAMQP && !tlsFirst && (saslDone || !opts.DenyAnonymous):
		return headerAMQP
	}
	return c.preferredHeader(tlsDone, saslDone)
}

// refuseHeader answers a header the server does not accept with the one it would,
// as part 2.2 says, before the connection is closed.
func (c *Conn) refuseHeader(h [8]byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(h[:])
}

func (c *Conn) startTLS() error {
	tc := tls.Server(&bufferedConn{Conn: c.nc, r: c.rd}, c.srv.opts.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	c.mu.Lock()
	c.nc = tc
	c.mu.Unlock()
	c.rd = bufio.NewReaderSize(tc, readBufferSize)
	return nil
}

// sasl runs the server side of a SASL exchange after the SASL headers.
func (c *Conn) sasl() error {
	opts := &c.srv.opts
	var mechs []wire.Symbol
	external := opts.AllowExternal && c.tlsState != nil && len(c.tlsState.VerifiedChains) > 0
	if external {
		mechs = append(mechs, "EXTERNAL")
	}
	anyPlain := opts.AnyPLAIN && opts.Users == nil
	if opts.Users != nil {
		mechs = append(mechs, "PLAIN")
	}
	if !opts.DenyAnonymous {
		mechs = append(mechs, "ANONYMOUS")
	}
	if anyPlain {
		mechs = append(mechs, "PLAIN") // after ANONYMOUS, as qpidd lists them
	}
	if len(mechs) == 0 {
		return fmt.Errorf("%w: no SASL mechanism is enabled on this listener", ErrAuthentication)
	}
	if err := c.writeSASL(&wire.SASLMechanisms{SASLServerMechanisms: mechs}); err != nil {
		return err
	}
	init, err := readSASL[*wire.SASLInit](c)
	if err != nil {
		return err
	}
	offered := false
	for _, m := range mechs {
		if m == init.Mechanism {
			offered = true
		}
	}
	fail := func(reason string) error {
		_ = c.writeSASL(&wire.SASLOutcome{Code: wire.SASLCodeAuth})
		return fmt.Errorf("%w: %s", ErrAuthentication, reason)
	}
	if !offered {
		return fail(fmt.Sprintf("mechanism %q was not offered (offered %v)", init.Mechanism, mechs))
	}
	switch init.Mechanism {
	case "ANONYMOUS":
		c.user = "anonymous"
	case "EXTERNAL":
		c.user = c.tlsState.VerifiedChains[0][0].Subject.CommonName
	case "PLAIN":
		resp := init.InitialResponse
		if anyPlain {
			authz, authc, ok := bytes.Cut(resp, []byte{0})
			if !ok {
				return fail("PLAIN response without a NUL separator (or none)")
			}
			if user, _, _ := bytes.Cut(authc, []byte{0}); len(authz) > 0 {
				c.user = string(authz)
			} else {
				c.user = string(user)
			}
			break
		}
		if len(resp) == 0 {
			if err := c.writeSASL(&wire.SASLChallenge{Challenge: []byte{}}); err != nil {
				return err
			}
			r, err := readSASL[*wire.SASLResponse](c)
			if err != nil {
				return err
			}
			resp = r.Response
		}
		parts := bytes.SplitN(resp, []byte{0}, 3)
		if len(parts) != 3 {
			return fail("malformed PLAIN response")
		}
		user, pass := string(parts[1]), string(parts[2])
		want, ok := opts.Users[user]
		if !ok || want != pass {
			return fail(fmt.Sprintf("wrong user name or password for %q", user))
		}
		c.user = user
	}
	c.mechanism = string(init.Mechanism)
	return c.writeSASL(&wire.SASLOutcome{Code: wire.SASLCodeOK})
}

func (c *Conn) writeSASL(f wire.SASLFrame) error {
	b, err := wire.AppendFrame(nil, wire.FrameSASL, 0, f, nil)
	if err != nil {
		return err
	}
	c.trace(false, 0, f, 0)
	_, err = c.nc.Write(b)
	return err
}

// readSASL reads one SASL frame that must be of type T.
func readSASL[T wire.SASLFrame](c *Conn) (T, error) {
	var zero T
	h, body, err := c.readFrame(wire.MinMaxFrameSize * 128)
	if err != nil {
		return zero, err
	}
	if h.Type != wire.FrameSASL {
		return zero, fmt.Errorf("%w: frame type %d during SASL", ErrAuthentication, h.Type)
	}
	f, err := wire.DecodeSASLFrame(body)
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	c.trace(true, 0, f, 0)
	v, ok := f.(T)
	if !ok {
		return zero, fmt.Errorf("%w: unexpected %T", ErrAuthentication, f)
	}
	return v, nil
}
