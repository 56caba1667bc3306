package engine

import (
	"math"
	"slices"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// recordingPolicy is queuePolicy plus what the handshake settled for each connection
// it saw opened (user, mechanism, TLS), read on the connection's goroutine in Opened.
type recordingPolicy struct {
	*queuePolicy
	opens chan connInfo
}

type connInfo struct {
	user, mechanism string
	tls             bool
	peerCN          string
}

func newRecordingPolicy() *recordingPolicy {
	return &recordingPolicy{queuePolicy: newQueuePolicy(), opens: make(chan connInfo, 100)}
}

func (p *recordingPolicy) Opened(c *Conn) error {
	info := connInfo{user: c.User(), mechanism: c.Mechanism(), tls: c.TLS() != nil}
	if st := c.TLS(); st != nil && len(st.PeerCertificates) > 0 {
		info.peerCN = st.PeerCertificates[0].Subject.CommonName
	}
	select {
	case p.opens <- info:
	default: // nobody is asking; never block the connection
	}
	return p.queuePolicy.Opened(c)
}

// nextOpened returns what the handshake of the next opened connection settled.
func (p *recordingPolicy) nextOpened(t *testing.T) connInfo {
	t.Helper()
	select {
	case info := <-p.opens:
		return info
	case <-time.After(5 * time.Second):
		t.Fatal("no connection was opened")
	}
	return connInfo{}
}

func TestProtocolHeaderRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		send  []byte
		reply byte // the header the server answers with
		deny  bool // the listener refuses anonymous access
	}{
		// Not AMQP at all: the header the server prefers (SASL by default).
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wire.ProtoSASL, false},
		{"http-exact", []byte("HTTP/1.1"), wire.ProtoSASL, false},
		// Another version: the same layer at 1.0.0 where that layer is welcome.
		{"amqp-0-9-1", []byte("AMQP\x00\x00\x09\x01"), wire.ProtoAMQP, false},
		{"amqp-0-10", []byte("AMQP\x01\x01\x00\x0a"), wire.ProtoSASL, false},
		{"amqp-2.0", []byte("AMQP\x00\x02\x00\x00"), wire.ProtoAMQP, false},
		{"sasl-1.1", []byte("AMQP\x03\x01\x01\x00"), wire.ProtoSASL, false},
		{"tls-2.0-not-offered", []byte("AMQP\x02\x02\x00\x00"), wire.ProtoSASL, false},
		// Plain AMQP is not welcome where authentication is required: SASL.
		{"amqp-2.0-auth-required", []byte("AMQP\x00\x02\x00\x00"), wire.ProtoSASL, true},
		{"unknown-protocol-id", []byte("AMQP\x05\x01\x00\x00"), wire.ProtoSASL, false},
		{"tls-not-offered", []byte("AMQP\x02\x01\x00\x00"), wire.ProtoSASL, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs, logger := newLogSink()
			opts := &Options{Logger: logger}
			var byOpts *amqp.ConnOptions
			if tc.deny {
				opts.DenyAnonymous = true
				opts.Users = map[string]string{"user": "secret"}
				byOpts = &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("user", "secret")}
			}
			_, url := startServer(t, newQueuePolicy(), opts)
			by := newBystander(t, url, byOpts)
			p := dialPeer(t, url)
			p.write(tc.send)
			p.wantHeader(tc.reply)
			p.wantClosedSocket()
			logs.want(t, "handshake failed", "protocol header refused")
			by.check()
		})
	}
}

func TestPlainAMQPWithoutSASL(t *testing.T) {
	t.Parallel()
	t.Run("anonymous-allowed", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, nil)
		p := dialPeer(t, url)
		p.open()
		if got := pol.nextOpened(t); got != (connInfo{}) {
			t.Fatalf("handshake settled %+v, want no user, no mechanism, no TLS", got)
		}
		p.begin(0)
	})
	t.Run("deny-anonymous", func(t *testing.T) {
		t.Parallel()
		logs, logger := newLogSink()
		users := map[string]string{"joe": "secret"}
		_, url := startServer(t, newQueuePolicy(), &Options{Users: users, DenyAnonymous: true, Logger: logger})
		by := newBystander(t, url, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("joe", "secret")})
		p := dialPeer(t, url)
		p.writeHeader(wire.ProtoAMQP)
		p.wantHeader(wire.ProtoSASL)
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "skipped SASL")
		by.check()
	})
}

func TestSASL(t *testing.T) {
	t.Parallel()
	users := map[string]string{"joe": "secret"}
	newServer := func(t *testing.T, opts Options) (*recordingPolicy, string, *logSink, *bystander) {
		logs, logger := newLogSink()
		opts.Logger = logger
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, &opts)
		var bopts *amqp.ConnOptions
		if opts.DenyAnonymous {
			bopts = &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("joe", "secret")}
		}
		by := newBystander(t, url, bopts)
		pol.nextOpened(t) // the bystander's
		return pol, url, logs, by
	}
	// succeed finishes a successful SASL exchange and opens the connection.
	succeed := func(t *testing.T, p *testPeer) {
		p.wantSASLOutcome(wire.SASLCodeOK)
		p.open()
		p.begin(0)
	}
	// fail expects the auth outcome, then the socket closed, a log line, and the
	// bystander unharmed.
	fail := func(t *testing.T, p *testPeer, logs *logSink, by *bystander, why string) {
		p.wantSASLOutcome(wire.SASLCodeAuth)
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "SASL authentication failed", why)
		by.check()
	}

	t.Run("mechanisms-offered", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			opts Options
			want []wire.Symbol
		}{
			{Options{}, []wire.Symbol{"ANONYMOUS"}},
			{Options{Users: users}, []wire.Symbol{"PLAIN", "ANONYMOUS"}},
			{Options{Users: users, DenyAnonymous: true}, []wire.Symbol{"PLAIN"}},
			{Options{Users: users, AllowExternal: true}, []wire.Symbol{"PLAIN", "ANONYMOUS"}}, // no TLS: no EXTERNAL
		} {
			_, url := startServer(t, NopHandler{}, &tc.opts)
			p := dialPeer(t, url)
			p.writeHeader(wire.ProtoSASL)
			p.wantHeader(wire.ProtoSASL)
			m, _ := readFrame[*wire.SASLMechanisms](p)
			if !slices.Equal(m.SASLServerMechanisms, tc.want) {
				t.Errorf("options %+v: mechanisms %v, want %v", tc.opts, m.SASLServerMechanisms, tc.want)
			}
		}
	})
	t.Run("plain-ok", func(t *testing.T) {
		t.Parallel()
		pol, url, _, _ := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", []byte("\x00joe\x00secret"))
		succeed(t, p)
		if got := pol.nextOpened(t); got != (connInfo{user: "joe", mechanism: "PLAIN"}) {
			t.Fatalf("handshake settled %+v, want user joe by PLAIN", got)
		}
	})
	t.Run("plain-authzid", func(t *testing.T) {
		t.Parallel()
		pol, url, _, _ := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", []byte("someone\x00joe\x00secret"))
		succeed(t, p)
		if got := pol.nextOpened(t); got != (connInfo{user: "joe", mechanism: "PLAIN"}) {
			t.Fatalf("handshake settled %+v, want user joe by PLAIN", got)
		}
	})
	t.Run("plain-wrong-password", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", []byte("\x00joe\x00guess"))
		fail(t, p, logs, by, "wrong user name or password")
	})
	t.Run("plain-unknown-user", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", []byte("\x00mallory\x00secret"))
		fail(t, p, logs, by, "mallory")
	})
	t.Run("plain-malformed", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", []byte("joe:secret"))
		fail(t, p, logs, by, "malformed PLAIN response")
	})
	t.Run("plain-challenge-response", func(t *testing.T) {
		t.Parallel()
		pol, url, _, _ := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", nil)
		readFrame[*wire.SASLChallenge](p)
		p.writeSASL(&wire.SASLResponse{Response: []byte("\x00joe\x00secret")})
		succeed(t, p)
		if got := pol.nextOpened(t); got != (connInfo{user: "joe", mechanism: "PLAIN"}) {
			t.Fatalf("handshake settled %+v, want user joe by PLAIN", got)
		}
	})
	t.Run("plain-challenge-wrong-response", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", nil)
		readFrame[*wire.SASLChallenge](p)
		p.writeSASL(&wire.SASLResponse{Response: []byte("\x00joe\x00nope")})
		fail(t, p, logs, by, "wrong user name or password")
	})
	t.Run("anonymous", func(t *testing.T) {
		t.Parallel()
		pol, url, _, _ := newServer(t, Options{Users: users})
		p := dialPeer(t, url)
		p.saslInit("ANONYMOUS", []byte("trace@example"))
		succeed(t, p)
		if got := pol.nextOpened(t); got != (connInfo{user: "anonymous", mechanism: "ANONYMOUS"}) {
			t.Fatalf("handshake settled %+v, want user anonymous by ANONYMOUS", got)
		}
	})
	t.Run("anonymous-denied", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users, DenyAnonymous: true})
		p := dialPeer(t, url)
		p.saslInit("ANONYMOUS", nil)
		fail(t, p, logs, by, "was not offered")
	})
	t.Run("mechanism-not-offered", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{Users: users})
		p := dialPeer(t, url)
		p.saslInit("CRAM-MD5", []byte("x"))
		fail(t, p, logs, by, "CRAM-MD5")
	})
	t.Run("external-without-tls", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{AllowExternal: true})
		p := dialPeer(t, url)
		p.saslInit("EXTERNAL", nil)
		fail(t, p, logs, by, "EXTERNAL")
	})
	t.Run("amqp-frame-during-sasl", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{})
		p := dialPeer(t, url)
		p.writeHeader(wire.ProtoSASL)
		p.wantHeader(wire.ProtoSASL)
		readFrame[*wire.SASLMechanisms](p)
		p.writeFrame(0, peerOpen())
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "frame type 0 during SASL")
		by.check()
	})
	t.Run("response-without-challenge", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{})
		p := dialPeer(t, url)
		p.writeHeader(wire.ProtoSASL)
		p.wantHeader(wire.ProtoSASL)
		readFrame[*wire.SASLMechanisms](p)
		p.writeSASL(&wire.SASLResponse{Response: []byte("x")})
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "unexpected *wire.SASLResponse")
		by.check()
	})
	t.Run("second-sasl-header", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{})
		p := dialPeer(t, url)
		p.saslInit("ANONYMOUS", nil)
		p.wantSASLOutcome(wire.SASLCodeOK)
		p.writeHeader(wire.ProtoSASL)
		p.wantHeader(wire.ProtoAMQP)
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "second SASL header")
		by.check()
	})
	t.Run("oversized-sasl-frame", func(t *testing.T) {
		t.Parallel()
		_, url, logs, by := newServer(t, Options{})
		p := dialPeer(t, url)
		p.writeHeader(wire.ProtoSASL)
		p.wantHeader(wire.ProtoSASL)
		readFrame[*wire.SASLMechanisms](p)
		// A SASL frame header announcing 16 MiB: refused from the header alone.
		_ = p.tryWrite([]byte{0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00})
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "exceeds max-frame-size")
		by.check()
	})
}

func TestOpenNegotiation(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		_, url := startServer(t, NopHandler{}, nil)
		p := dialPeer(t, url)
		o := p.open()
		if o.ContainerID != "amqp1kit" || o.MaxFrameSize != 65536 || o.ChannelMax != 65535 || o.IdleTimeOut != 0 {
			t.Fatalf("server open %+v, want the defaults", o)
		}
	})
	t.Run("from-options", func(t *testing.T) {
		t.Parallel()
		opts := &Options{
			ContainerID:         "the-server",
			MaxFrameSize:        4096,
			ChannelMax:          7,
			IdleTimeout:         120_000_000_000, // 2 minutes
			Properties:          wire.Fields{"product": "qpid-dispatch-router", "version": "1.20.0"},
			OfferedCapabilities: []wire.Symbol{"ANONYMOUS-RELAY"},
		}
		_, url := startServer(t, NopHandler{}, opts)
		p := dialPeer(t, url)
		o := p.open()
		if o.ContainerID != "the-server" || o.MaxFrameSize != 4096 || o.ChannelMax != 7 || o.IdleTimeOut != 60000 {
			t.Fatalf("server open %+v does not carry the options", o)
		}
		if o.Properties["product"] != "qpid-dispatch-router" || o.Properties["version"] != "1.20.0" {
			t.Fatalf("server open properties %v", o.Properties)
		}
		if !slices.Equal(o.OfferedCapabilities, []wire.Symbol{"ANONYMOUS-RELAY"}) {
			t.Fatalf("server open offered-capabilities %v", o.OfferedCapabilities)
		}
		// channel-max is enforced: 7 is fine, 8 is not.
		p.begin(7)
		p.writeFrame(8, &wire.Begin{IncomingWindow: 10, OutgoingWindow: 10, HandleMax: math.MaxUint32})
		p.wantClose(wire.ErrCondFramingError)
	})
	t.Run("small-max-frame-raised", func(t *testing.T) {
		t.Parallel()
		_, url := startServer(t, NopHandler{}, &Options{MaxFrameSize: 100})
		p := dialPeer(t, url)
		if o := p.open(); o.MaxFrameSize != wire.MinMaxFrameSize {
			t.Fatalf("max-frame-size %d, want %d", o.MaxFrameSize, wire.MinMaxFrameSize)
		}
	})
	t.Run("refused-by-handler", func(t *testing.T) {
		t.Parallel()
		_, url := startServer(t, refuseOpen{}, nil)
		p := dialPeer(t, url)
		p.open()
		p.wantClose(wire.ErrCondUnauthorizedAccess)
		p.wantClosedSocket()
	})
}

type refuseOpen struct{ NopHandler }

func (refuseOpen) Opened(*Conn) error {
	return &wire.Error{Condition: wire.ErrCondUnauthorizedAccess, Description: "go away"}
}
