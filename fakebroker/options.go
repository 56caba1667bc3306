package fakebroker

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Options configure a Broker. A nil *Options means all defaults.
type Options struct {
	// Addr is the TCP address to listen on. Default: 127.0.0.1 with the port of
	// ConfigFile when it sets one, else "127.0.0.1:0" (a free loopback port).
	Addr string
	// ID is the broker's container-id. Default: a random UUID, new for each
	// Broker (qpidd's is a UUID of the broker process, unless configured).
	ID string
	// Version is announced in the open frame's version property. Default: "1.39.0",
	// the last qpid-cpp release.
	Version string

	// QueuePatterns create a queue on demand for an address they match: unanchored
	// POSIX basic regular expressions, as qpidd's queue-patterns (a pattern matches
	// anywhere in the address unless anchored with ^ and $). When queue and topic
	// patterns both match, the longest pattern wins (a queue on a tie). Default: the
	// deployment guide's "exclusive" and "unicast", or the queue-patterns of
	// ConfigFile. An empty non-nil slice means none.
	QueuePatterns []string
	// TopicPatterns create a topic on demand, like qpidd's topic-patterns. Default:
	// the deployment guide's "broadcast", or the topic-patterns of ConfigFile. An
	// empty non-nil slice means none.
	TopicPatterns []string
	// Queues and Topics name nodes that exist from the start, whatever the patterns
	// say.
	Queues, Topics []string

	// QueueLimit bounds the bytes every queue holds, as qpidd's default-queue-limit:
	// a message counts by its bytes as its sender sent them, from when it is stored
	// until it leaves for good (delivered and not yet settled, it still counts). A
	// message that would take a queue beyond its limit is not stored and its sender's
	// link is detached with amqp:precondition-failed "resource-limit-exceeded:
	// Maximum depth exceeded on ..."; a topic's subscription queues are bounded alike
	// (see the package doc). Default (zero): the default-queue-limit of ConfigFile,
	// else DefaultQueueLimit (100 MiB, qpidd's). Negative: no limit.
	QueueLimit int64
	// MaxDepth bounds the messages every queue holds, as qpidd's qpid.max_count set
	// on each queue, alongside QueueLimit. Zero means no count limit (qpidd has none
	// by default). Default: 0.
	MaxDepth int
	// QueueLimits set other limits for the queues whose names match their patterns
	// (the first that matches wins), as qpid.max_size and qpid.max_count set on those
	// queues. A queue created on demand (the create-on-demand capability) also takes
	// these properties from its terminus, as qpidd does.
	QueueLimits []QueueLimit
	// FlowStopThreshold and FlowResumeThreshold are qpidd's producer flow control, in
	// percent of a queue's limits (default-flow-stop-threshold and
	// default-flow-resume-threshold): once a message takes a queue above the stop
	// threshold, the outcomes of the messages stored from then on are withheld from
	// their senders until the queue is back below the resume threshold. Default
	// (zero): those of ConfigFile, else 80 and 70, qpidd's. Negative: 0, no flow
	// control.
	FlowStopThreshold, FlowResumeThreshold int
	// DeadLetterQueue, if set, names the queue where messages that consumers reject
	// go (created when first needed, whatever the patterns say); otherwise rejected
	// messages are dropped, as by a qpidd queue without an alternate exchange.
	DeadLetterQueue string
	// LinkCredit is the credit a sender link is granted, renewed once half of it is
	// used. Default: 500.
	LinkCredit uint32

	// Dir, if set, is the directory of the broker's journal (the file
	// fakebroker.journal in it, created if needed): durable messages stored in
	// queues are written to it before their sender is told accepted, and a broker
	// started on the same directory (or Restart) delivers them again. Messages of
	// temporary queues (dynamic nodes, topic subscriptions) are never journaled: they
	// go with their link, as in qpidd. Default: no journal.
	Dir string
	// JournalAll journals every message stored in a queue, not only those whose
	// header says durable. Default: false (only durable messages survive a restart,
	// as in qpidd).
	JournalAll bool
	// SyncJournal makes the broker fsync the journal after writing each stored
	// message and before telling the sender accepted, so that the message survives
	// a machine crash. Without it the record is written to the file (write(2))
	// before the sender is told accepted, which survives the broker process dying
	// or restarting but not the machine. Acknowledgements and other records are
	// never synced: after a machine crash a message may come back (at-least-once),
	// never go missing. Default: false.
	SyncJournal bool

	// Now is the broker's clock, used for everything time-based: message expiry
	// (header ttl, and absolute-expiry-time with AbsoluteExpiry). Tests set it to a
	// virtual clock to expire messages without waiting. Default: time.Now.
	Now func() time.Time
	// AbsoluteExpiry makes messages also expire at their absolute-expiry-time
	// property. Default: false: only the header's ttl counts, as in qpidd. Do not
	// turn it on for the Python oslo.messaging driver, which fills
	// absolute-expiry-time from a monotonic clock (a time in 1970): every RPC call
	// would expire on arrival.
	AbsoluteExpiry bool

	// MaxFrameSize announced to clients: the largest frame the broker takes.
	// Default: 4294967295, as qpidd announces.
	MaxFrameSize uint32
	// IdleTimeout, if positive, is the broker's idle time-out: a client that sends
	// nothing for this long is closed, and half of it is announced. Default (zero):
	// qpidd's way, each connection gets the time-out its client announces (the broker
	// announces the client's value back and closes a client silent for twice as
	// long; a client that announces none gets none). Negative: none at all.
	IdleTimeout time.Duration
	// MaxMessageSize bounds a message the broker accepts. Default: 64 MiB, not announced (the real one announces no limit).
	MaxMessageSize int64
	// MaxConnections bounds the client connections served at once: one more is
	// closed as soon as it is accepted, before any byte, as qpidd does. Default
	// (zero): ConfigFile's max-connections, else 500, qpidd's. Negative: no limit.
	MaxConnections int
	// ConnOutputLimit is how many bytes the broker queues for one client connection
	// before it stops sending it messages: a client that does not read its socket
	// then costs that much, the messages wait (in their queues), and they go on once
	// the client reads. Default: 512 KiB.
	ConnOutputLimit int

	// TLS, if set, lets clients start TLS from the first byte or through the AMQP
	// TLS header.
	TLS *tls.Config
	// RequireTLS refuses clients that do not start TLS.
	RequireTLS bool
	// Users enables SASL PLAIN against this table of user name to password. Without
	// it the broker offers ANONYMOUS and PLAIN and takes PLAIN with any user name and
	// password, as qpidd does with auth=no.
	Users map[string]string
	// DenyAnonymous refuses SASL ANONYMOUS and clients that skip SASL (without Users,
	// PLAIN with any user name and password is still taken).
	DenyAnonymous bool
	// AllowExternal offers SASL EXTERNAL to TLS clients with a verified certificate.
	AllowExternal bool

	// ConfigFile is a qpidd.conf whose port, queue-patterns and topic-patterns apply
	// where the fields above are not set. With a config file the patterns are the
	// file's only, as in qpidd (no guide defaults are added).
	ConfigFile string

	// Logger receives connection events, journal repairs and errors. Default:
	// discard.
	Logger *slog.Logger
	// Trace, if set, receives every frame the broker sends and receives.
	Trace func(Frame)
}

func (o *Options) resolve() (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	if v.ConfigFile != "" {
		cfg, err := LoadConfig(v.ConfigFile)
		if err != nil {
			return v, err
		}
		if v.Addr == "" {
			v.Addr = cfg.ListenAddress()
		}
		if v.QueuePatterns == nil {
			v.QueuePatterns = append([]string{}, cfg.QueuePatterns...)
		}
		if v.TopicPatterns == nil {
			v.TopicPatterns = append([]string{}, cfg.TopicPatterns...)
		}
		if v.QueueLimit == 0 && cfg.QueueLimit != nil {
			v.QueueLimit = -1 // 0 in qpidd.conf: no limit
			if *cfg.QueueLimit > 0 {
				v.QueueLimit = int64(min(*cfg.QueueLimit, 1<<62))
			}
		}
		if v.MaxConnections == 0 && cfg.MaxConnections != nil {
			v.MaxConnections = -1 // 0 in qpidd.conf: no limit
			if *cfg.MaxConnections > 0 {
				v.MaxConnections = *cfg.MaxConnections
			}
		}
		if v.FlowStopThreshold == 0 && cfg.FlowStopThreshold != nil {
			v.FlowStopThreshold = offIfZero(*cfg.FlowStopThreshold)
		}
		if v.FlowResumeThreshold == 0 && cfg.FlowResumeThreshold != nil {
			v.FlowResumeThreshold = offIfZero(*cfg.FlowResumeThreshold)
		}
	}
	if v.Addr == "" {
		v.Addr = "127.0.0.1:0"
	}
	if v.ID == "" {
		v.ID = newUUID()
	}
	if v.Version == "" {
		v.Version = "1.39.0"
	}
	if v.QueuePatterns == nil {
		v.QueuePatterns = DefaultQueuePatterns()
	}
	if v.TopicPatterns == nil {
		v.TopicPatterns = DefaultTopicPatterns()
	}
	if v.MaxDepth < 0 {
		return v, fmt.Errorf("fakebroker: MaxDepth %d is negative", v.MaxDepth)
	}
	if v.QueueLimit == 0 {
		v.QueueLimit = DefaultQueueLimit
	}
	if v.MaxConnections == 0 {
		v.MaxConnections = DefaultMaxConnections
	}
	if err := resolveThresholds(&v); err != nil {
		return v, err
	}
	if v.LinkCredit == 0 {
		v.LinkCredit = 500
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	if v.MaxFrameSize == 0 {
		v.MaxFrameSize = math.MaxUint32
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// DefaultQueuePatterns returns the queue-patterns of the oslo.messaging AMQP 1.0
// deployment guide's qpidd.conf: "exclusive" and "unicast".
func DefaultQueuePatterns() []string { return []string{"exclusive", "unicast"} }

// DefaultTopicPatterns returns the topic-patterns of the deployment guide's
// qpidd.conf: "broadcast".
func DefaultTopicPatterns() []string { return []string{"broadcast"} }

// newUUID returns a random (version 4) UUID in its string form.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// resolveThresholds fills in the flow-control thresholds (negative becomes 0, off) and
// checks them as qpidd does its defaults.
func resolveThresholds(v *Options) error {
	if v.FlowStopThreshold == 0 {
		v.FlowStopThreshold = DefaultFlowStopThreshold
	}
	if v.FlowResumeThreshold == 0 {
		v.FlowResumeThreshold = DefaultFlowResumeThreshold
	}
	v.FlowStopThreshold, v.FlowResumeThreshold = max(v.FlowStopThreshold, 0), max(v.FlowResumeThreshold, 0)
	if v.FlowStopThreshold == 0 {
		v.FlowResumeThreshold = 0 // no flow control at all
	}
	if v.FlowStopThreshold > 100 || v.FlowResumeThreshold > 100 {
		return fmt.Errorf("fakebroker: flow thresholds must be between 0 and 100 percent: stop %d, resume %d", v.FlowStopThreshold, v.FlowResumeThreshold)
	}
	if v.FlowResumeThreshold > v.FlowStopThreshold {
		return fmt.Errorf("fakebroker: the flow stop threshold (%d%%) must be at least the resume threshold (%d%%)", v.FlowStopThreshold, v.FlowResumeThreshold)
	}
	return nil
}

// offIfZero maps a qpidd.conf threshold to the Options field: 0 there means off, -1
// here.
func offIfZero(pct int) int {
	if pct == 0 {
		return -1
	}
	return pct
}
