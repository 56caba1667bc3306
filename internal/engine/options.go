package engine

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Options configure a Server. The zero value serves plain AMQP with SASL ANONYMOUS
// and anonymous access without SASL.
type Options struct {
	// ContainerID is sent in the open frame. Default: "amqp1kit".
	ContainerID string
	// Properties are the open frame's properties (for example product and version).
	Properties wire.Fields
	// ConnProperties, if set, adds properties of each connection to Properties (for
	// example qdrouterd's qd.conn-id).
	ConnProperties func(*Conn) wire.Fields
	// OfferedCapabilities are the open frame's offered capabilities.
	OfferedCapabilities []wire.Symbol
	// DesiredCapabilities are the open frame's desired capabilities.
	DesiredCapabilities []wire.Symbol

	// MaxFrameSize is the largest frame the server accepts, announced in open.
	// Default: 65536. Values below 512 are raised to 512.
	MaxFrameSize uint32
	// ChannelMax is the highest channel number the server accepts. Default: 65535.
	// The open frame announces the lower of it and the client's, as Qpid Proton does.
	ChannelMax uint16
	// IdleTimeout is the server's idle time-out: a peer that sends nothing for this
	// long is closed with amqp:resource-limit-exceeded. The open frame announces half
	// of it, as part 2.4.5 recommends. Zero means none. Default: 0.
	IdleTimeout time.Duration
	// IdleTimeoutFromPeer, when IdleTimeout is zero, gives each connection the idle
	// time-out its client announces, as qpidd does: the server takes twice the
	// client's value as its own threshold and so announces the client's value back;
	// a client that announces none gets none.
	IdleTimeoutFromPeer bool
	// MaxMessageSize bounds a message the server receives: a larger one closes its
	// link with amqp:link:message-size-exceeded. Default: 64 MiB. Negative means no
	// limit.
	MaxMessageSize int64
	// AnnounceMaxMessageSize puts MaxMessageSize in the attach frames where the server
	// receives. Off, they carry max-message-size 0 (no limit), as qdrouterd's and
	// qpidd's do unless a policy sets one.
	AnnounceMaxMessageSize bool
	// SessionWindow is the incoming window of each session, in transfer frames.
	// Default: 5000. Qpid Proton (so qdrouterd and qpidd) announces 2147483647 and
	// relies on link credit alone.
	SessionWindow uint32
	// WriteTimeout bounds how long a write to a peer that stopped reading may block
	// before the connection is dropped. Default: 30s.
	WriteTimeout time.Duration
	// MaxOutputBuffer bounds the bytes queued for one peer that does not read; past
	// it the connection is dropped. Default: 64 MiB.
	MaxOutputBuffer int
	// MaxConnections, when positive, bounds the connections served at once: one more
	// is closed as soon as it is accepted, before any byte, as qpidd does beyond its
	// max-connections. Default: no limit.
	MaxConnections int
	// OutputHighWater is the bytes queued for one peer (written or being written)
	// above which Conn.Writable reports false, so that a policy stops sending messages
	// to a peer that reads slowly instead of buffering them; once the queue falls
	// below half of it, a Handler that implements WritableHandler hears Writable.
	// Default: 512 KiB. Protocol frames (flows, dispositions) are never held back.
	OutputHighWater int
	// HandshakeTimeout bounds protocol headers, TLS, SASL and open. Default: 30s.
	HandshakeTimeout time.Duration

	// TLS, if set, lets clients start TLS: from the first byte (as Proton and
	// qdrouterd's TLS listeners do) or through the AMQP TLS protocol header.
	TLS *tls.Config
	// RequireTLS refuses clients that do not start TLS.
	RequireTLS bool

	// Users enables SASL PLAIN against this table of user name to password.
	Users map[string]string
	// DenyAnonymous refuses SASL ANONYMOUS and clients that skip SASL.
	DenyAnonymous bool
	// AnyPLAIN offers SASL PLAIN after ANONYMOUS and accepts any user name and
	// password, as qpidd does with auth=no (its NullSaslServer): the user is the
	// authorization identity of the response, or the authentication identity when
	// the former is empty. A response without a NUL, or none (qpidd sends no
	// challenge), fails. Ignored when Users is set.
	AnyPLAIN bool
	// AllowExternal offers SASL EXTERNAL on TLS connections whose client presented a
	// certificate the TLS configuration verified; the user is the certificate's
	// subject common name.
	AllowExternal bool

	// IgnoreEcho leaves a peer's flow with echo set unanswered, as Qpid Proton (so
	// qpidd) does; a drain is answered all the same once the credit is spent.
	IgnoreEcho bool
	// OmitAvailable leaves the optional available field out of the flows where the
	// server is the sender, as Qpid Proton does unless its application sets it
	// (qpidd never does).
	OmitAvailable bool
	// SettleOnDetach settles the deliveries the server sent on a link and the peer
	// left unsettled when it detaches the link (a disposition settled, without state,
	// each) before answering the detach, as qpidd (Qpid Proton freeing the link) does.
	// LinkDetached still finds them in Link.Unsettled.
	SettleOnDetach bool

	// Logger receives one line per connection event and per error. Default: discard.
	Logger *slog.Logger
	// Trace, if set, is called with every frame sent and received.
	Trace func(TraceEvent)
}

// TraceEvent describes one frame for Options.Trace.
type TraceEvent struct {
	Conn     *Conn
	Incoming bool
	Channel  uint16
	// Body is the decoded performative or SASL frame; nil for an empty frame.
	Body wire.Marshaler
	// PayloadSize is the number of message bytes a transfer carried.
	PayloadSize int
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.ContainerID == "" {
		v.ContainerID = "amqp1kit"
	}
	if v.MaxFrameSize == 0 {
		v.MaxFrameSize = 65536
	}
	if v.MaxFrameSize < wire.MinMaxFrameSize {
		v.MaxFrameSize = wire.MinMaxFrameSize
	}
	if v.ChannelMax == 0 {
		v.ChannelMax = 65535
	}
	if v.MaxMessageSize == 0 {
		v.MaxMessageSize = 64 << 20
	}
	if v.SessionWindow == 0 {
		v.SessionWindow = 5000
	}
	if v.WriteTimeout == 0 {
		v.WriteTimeout = 30 * time.Second
	}
	if v.OutputHighWater <= 0 {
		v.OutputHighWater = 512 << 10
	}
	if v.MaxOutputBuffer == 0 {
		v.MaxOutputBuffer = 64 << 20
	}
	if v.HandshakeTimeout == 0 {
		v.HandshakeTimeout = 30 * time.Second
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	return v
}
