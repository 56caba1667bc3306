// Package fakebroker is an in-process AMQP 1.0 broker that behaves like qpidd (the
// Qpid C++ broker) as the oslo.messaging AMQP 1.0 deployment guide runs it, for
// notifications: it stores then forwards. A sender's message is settled accepted as
// soon as it is stored, not when a consumer has it; consumers settle with the broker
// later. Nodes are created on demand by pattern, as qpidd's queue-patterns and
// topic-patterns: by default queues for addresses matching "exclusive" or "unicast"
// (competing consumers, each message to one) and topics for "broadcast" (every
// subscriber gets a copy). Unsettled messages of a consumer that goes away are given
// to others, never lost; durable messages can be kept in a journal that a restarted
// broker replays. It speaks the real wire protocol on a loopback port, so any AMQP
// 1.0 client can use it: go-amqp, Qpid Proton, the Python oslo.messaging driver,
// amqp1kit's own driver.
//
// In a test:
//
//	b := fakebroker.RunT(t, nil)
//	// dial b.URL() with any AMQP 1.0 client
//
// The broker says "qpid-cpp" in its open frame, so oslo.messaging drivers in their
// default dynamic addressing mode pick the legacy address syntax, which the default
// patterns serve.
//
// # What it imitates
//
// qpidd 1.39.0 (the last qpid-cpp release) with the guide's qpidd.conf (auth=no,
// queue-patterns exclusive and unicast, topic-patterns broadcast), as its frames show
// it; every point below was checked against the real program and most are
// conformance cases (conformance/broker_cases.go).
//
//   - Connection: SASL offers ANONYMOUS and PLAIN, and PLAIN takes any user name and
//     password (Options.Users makes it check them). The open carries a container-id
//     that is a random UUID of the broker (Options.ID wins), max-frame-size
//     4294967295, channel-max the lower of 32767 and the client's, the idle time-out
//     the client announced (the broker closes a client silent for twice as long; none
//     to a client that announced none), offered-capabilities ANONYMOUS-RELAY and the
//     properties product qpid-cpp, version, platform and host. Echo flows are left
//     unanswered and flows carry no available, as Qpid Proton does; a consumer's
//     deliveries left unsettled when it detaches are settled (no state) before the
//     detach is answered. The max-message-size a receiver announces is not checked:
//     a larger message is delivered to it anyway.
//   - Attach answers are the broker's own termini, not the client's: on the node's
//     side the address, the capabilities asked for that the node has (queue,
//     legacy-amqp-direct-binding for a queue; topic, shared for a topic;
//     create-on-demand and legacy-amqp-topic-binding for both),
//     distribution-mode move for a queue source (copy for a browser), the filter
//     {default-subject-filter: legacy-amqp-topic-binding "#"} for a topic source, a
//     selector filter the client asked for under the key it used, and
//     supported-dist-modes (with the lifetime-policy, when asked) in answer to
//     dynamic-node-properties; on the other side an empty terminus (address "").
//     rcv-settle-mode is first; a sender settle mode asked for is kept where the
//     broker sends, mixed where it receives.
//   - Refusals: a sending link with a null target, amqp:precondition-failed "No
//     target specified!"; a receiving link with a null source or one with neither
//     address nor dynamic, "No source specified!"; an address that names no node and
//     that no pattern matches ($management included: there is no management node),
//     amqp:not-found "Node not found: <address>". A refusal answers with the node's
//     side null and the other side empty, then detaches.
//   - Nodes by pattern: unanchored POSIX basic regular expressions, the longest
//     matching pattern wins (a queue on a tie). A queue made by a pattern is gone once
//     no link uses it and it holds no message (qpidd's delete-if-unused-and-empty); the
//     fake keeps it for its counts (NodeInfo.Retired) but routes nothing to it until a
//     link attaches there again. A terminus with the create-on-demand capability
//     makes a queue (or a topic, with the topic capability) of any name, which stays.
//   - Dynamic nodes (a dynamic source, the RPC reply queue of oslo.messaging, or a
//     dynamic target): a queue named <container-id>_<link-name>, answered with
//     dynamic false; an existing node of that name is used. It goes, messages and
//     all, once no link uses it, or with the link that made it when that link asked
//     for lifetime-policy delete-on-close (links still attached are then detached
//     with amqp:resource-deleted). A sender to a dynamic target gets credit too.
//   - Topics: a receiver gets a subscription queue named <container-id>_<link-name>
//     (the link name alone with the shared capability, where links of that name
//     share it). A second link on a subscription that is not shared is refused while
//     the first is attached (qpidd's resource-locked, as amqp:internal-error). A
//     subscription's copies go pre-settled unless its link asked for snd-settle-mode
//     unsettled. A subscription that is durable (its source says so) or whose link
//     asked for unsettled outlives its session and connection (the same container-id
//     and link name resume it, with what came meanwhile) and goes when its link is
//     detached; the others go with their last consumer, or a source's timeout after
//     it. A message for a topic without subscribers is dropped (accepted, counted as
//     Dropped).
//   - Browsers: a receiver on a queue that asks for distribution-mode copy is sent
//     the queue's available messages in order, each once, and each new one as it is
//     stored, without taking them: they stay for the consumers. Its deliveries go
//     unsettled with the usual header, and its outcomes change nothing.
//   - Senders are granted 500 credit (Options.LinkCredit), topped back up after every
//     message, the flow before the disposition.
//   - At most 500 client connections at once (Options.MaxConnections, qpidd's
//     max-connections): one more is closed as soon as it is accepted, before any
//     byte, as qpidd closes it.
//   - A consumer that does not read its socket is sent nothing more once
//     Options.ConnOutputLimit bytes (512 KiB) wait for it: its messages stay in their
//     queue (where the queue limits count them) and go on when it reads; it keeps its
//     connection, as with qpidd.
//   - Queue limits: every queue holds at most 104857600 bytes of messages (qpidd's
//     default-queue-limit; Options.QueueLimit, or the default-queue-limit of
//     ConfigFile), counted as the sender sent them, a message delivered and not yet
//     settled included; Options.MaxDepth adds a count limit (qpid.max_count) and
//     Options.QueueLimits other limits by pattern. A create-on-demand attach that
//     creates a queue takes qpid.max_count, qpid.max_size and the qpid.flow_* limits
//     from the terminus's dynamic-node-properties and echoes them (flow thresholds
//     that contradict each other or the limit refuse the attach with
//     amqp:internal-error "invalid-argument: ..." in qpidd's words). A message that
//     would take a queue beyond a limit is not stored nor answered: its sender's link
//     (anonymous relay links too) is detached with amqp:precondition-failed
//     "resource-limit-exceeded: Maximum depth exceeded on QUEUE: current=[count: N,
//     size: S], max=[size: M]", and what follows on that link is dropped; credit is
//     never cut before. A topic's copy goes to every subscription queue with room, and
//     a full one detaches the sender all the same. Producer flow control: once a
//     message takes a queue above 80% of a limit (default-flow-stop-threshold), the
//     accepted outcomes of it and of the messages stored after it are withheld until
//     the queue is back under 70% (default-flow-resume-threshold), or each until its
//     message leaves the queue.
//   - Anonymous relay (a sender link whose target has no address): each message goes
//     to the existing node its to names; one whose to names no node (the relay makes
//     none by pattern), or without a to, is dropped, and every message is accepted.
//   - Deliveries carry a header the broker writes, qpidd's bytes, in front of the
//     sender's bytes after its own header, which are forwarded unchanged (delivery
//     and message annotations included): durable as sent, priority as sent or 4, the
//     ttl that remains, and qpidd's delivery count, first-acquirer true until it
//     counts one. A delivery counts when a consumer says modified with delivery-failed
//     or goes away holding the message unsettled; released (and modified without
//     delivery-failed) counts nothing. What the sender put in delivery-count and
//     first-acquirer is not kept.
//   - Outcomes from consumers: accepted removes the message; released puts it back in
//     its place in the queue; modified with undeliverable-here keeps it from that
//     consumer, and its message-annotations are merged into the message; rejected
//     drops it, or moves it to Options.DeadLetterQueue. A settlement without an
//     outcome counts as accepted. Messages a consumer held unsettled when its link or
//     connection went away are put back in their place for other consumers, never
//     lost.
//   - Expiry: from the header's ttl only; absolute-expiry-time is ignored unless
//     Options.AbsoluteExpiry is set (the Python driver fills it from a monotonic
//     clock). Every time-based decision uses Options.Now.
//
// # Where it differs from qpidd
//
// Deliberately:
//
//   - A delivery its sender aborts is discarded and the connection carries on: the
//     next delivery is stored as usual (conformance case BrokerDiscardsAbortedDelivery).
//     qpidd 1.39.0 decodes the aborted bytes as a message and closes the connection
//     with amqp:internal-error ("Out of Bounds...", "Expected descriptor..."), at
//     times after rejecting the next delivery.
//   - Merged message-annotations keep symbol keys; qpidd writes them back with string
//     keys, which part 3.2.3 forbids and clients (go-amqp) refuse to decode.
//   - Journal (Options.Dir): durable messages survive Restart, on queues made by
//     pattern too (qpidd's are not durable, so with a store it keeps nothing there);
//     non-durable ones are lost, as in a qpidd restart. Without a journal every
//     message is kept in memory across Restart. See the Options fields for what is
//     written and when it is synced.
//
// Not imitated (a client that looks can tell):
//
//   - qpidd writes what it answers to one read of the socket in Proton's order
//     (attaches, then flows, transfers and dispositions, then detaches), acknowledges
//     deliveries read together in one disposition over their range and tops credit up
//     once per read; the fake answers frame by frame. Proton frees the handle of a link
//     it detached at once, where the engine waits for the client's detach. qpidd's delivery tags are four-byte indexes into a ring per link; the
//     fake's count up in eight bytes. qpidd writes one capability as a symbol, the
//     fake as an array of one.
//   - A protocol error (a detach or flow for a handle that is not attached, a frame
//     beyond channel-max) makes qpidd drop the connection; the engine ends the
//     session or closes the connection with an error first.
//   - qpidd's resource-limit-exceeded description ends with the source location of
//     the check (" (/path/to/qpid-cpp-1.39.0/src/qpid/broker/Queue.cpp:1658)"); the
//     fake's does not. Node properties other than the limits are not echoed. Queue
//     policies other than reject (ring, ring-strict, self-destruct) are not
//     implemented, and a queue's limits cannot be changed once it exists.
//   - Not implemented: transactions; filters (a topic subscriber is answered the
//     default binding and gets every message; a selector filter is answered as
//     qpidd answers it but not applied: every message goes to that receiver); the
//     durable and exclusive node properties, a dynamic source asking for the topic
//     capability (a queue is made), management (qpid-config, QMF).
package fakebroker

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/fakeutil"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Broker is a fake qpidd. Its methods are safe for concurrent use.
type Broker struct {
	opts   Options
	policy policies
	limits []queueLimitRule

	ls    *fakeutil.Server // the listener and its lifecycle
	stop  chan struct{}    // closed to stop sweep (set by Start)
	swept chan struct{}    // closed when sweep has returned

	mu            sync.Mutex // broker state
	nodes         map[string]*node
	conns         map[*engine.Conn]struct{}
	totals        Counts
	seq           uint64
	journal       *journal
	changed       chan struct{}
	waiters       int
	creditStopped bool
	// stalled lists, per consumer connection that reads too slowly, the nodes whose
	// messages are held back for it until it drains (handler.Writable).
	stalled fakeutil.Stalled[*node]
}

// New returns a broker that is not listening yet: call Start. It reports bad options
// (an unreadable or malformed ConfigFile, a pattern that does not compile).
func New(opts *Options) (*Broker, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	ps, err := compilePolicies(o.QueuePatterns, o.TopicPatterns)
	if err != nil {
		return nil, err
	}
	lr, err := compileQueueLimits(o.QueueLimits)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:    o,
		policy:  ps,
		limits:  lr,
		nodes:   map[string]*node{},
		conns:   map[*engine.Conn]struct{}{},
		changed: make(chan struct{}),
	}
	for _, name := range o.Topics {
		b.newNodeLocked(name, Topic)
	}
	for _, name := range o.Queues {
		if n := b.nodes[name]; n != nil {
			return nil, fmt.Errorf("fakebroker: %q is in both Queues and Topics", name)
		}
		b.newNodeLocked(name, Queue)
	}
	if dl := o.DeadLetterQueue; dl != "" && b.nodes[dl] != nil && b.nodes[dl].kind != Queue {
		return nil, fmt.Errorf("fakebroker: DeadLetterQueue %q is a topic", dl)
	}
	b.ls = fakeutil.NewServer("fakebroker", b.newServer())
	return b, nil
}

func (b *Broker) newServer() *engine.Server {
	o := &b.opts
	host, _ := os.Hostname()
	platform := runtime.GOOS
	if platform != "" {
		platform = strings.ToUpper(platform[:1]) + platform[1:]
	}
	eo := &engine.Options{
		ContainerID: o.ID,
		// What qpidd says about itself (Connection.cpp): symbol keys, string values.
		Properties: wire.Fields{
			"product":  "qpid-cpp",
			"version":  o.Version,
			"platform": platform,
			"host":     host,
		},
		OfferedCapabilities: []wire.Symbol{"ANONYMOUS-RELAY"},
		MaxFrameSize:        o.MaxFrameSize,
		ChannelMax:          32767, // the lower of it and the client's is announced
		IdleTimeout:         max(o.IdleTimeout, 0),
		IdleTimeoutFromPeer: o.IdleTimeout == 0,
		MaxMessageSize:      o.MaxMessageSize,
		OutputHighWater:     o.ConnOutputLimit,
		MaxConnections:      max(o.MaxConnections, 0),
		// Announced only when set, as a policy's limit is; unset, the attach says 0
		// (no limit) as the real one's does, and 64 MiB still applies.
		AnnounceMaxMessageSize: o.MaxMessageSize > 0,
		SessionWindow:          1<<31 - 1, // Proton's: link credit alone bounds transfers
		TLS:                    o.TLS,
		RequireTLS:             o.RequireTLS,
		Users:                  o.Users,
		DenyAnonymous:          o.DenyAnonymous,
		AnyPLAIN:               true, // when Users is nil
		IgnoreEcho:             true,
		OmitAvailable:          true,
		SettleOnDetach:         true,
		AllowExternal:          o.AllowExternal,
		Logger:                 o.Logger.With("broker", o.ID),
	}
	if o.Trace != nil {
		eo.Trace = func(ev engine.TraceEvent) { o.Trace(newFrame(ev)) }
	}
	return engine.NewServer(handler{b}, eo)
}

// Run returns a broker listening on opts.Addr (a free loopback port by default).
func Run(opts *Options) (*Broker, error) {
	return fakeutil.Run(func() (*Broker, error) { return New(opts) })
}

// Tester is the part of *testing.T that RunT uses, so it works with *testing.B and
// other frameworks too.
type Tester = fakeutil.Tester

// RunT starts a broker for a test and closes it when the test ends; a start failure
// fails the test.
func RunT(t Tester, opts *Options) *Broker {
	t.Helper()
	return fakeutil.RunT(t, "fakebroker", func() (*Broker, error) { return Run(opts) })
}

// Start replays the journal (with Options.Dir), listens on the configured address
// and serves in the background. The address is bound when Start returns.
func (b *Broker) Start() error {
	err := b.ls.Start(b.opts.Addr, func() error {
		if b.opts.Dir == "" {
			return nil
		}
		return b.loadJournal()
	})
	if err != nil {
		b.mu.Lock()
		if b.journal != nil && !b.ls.Started() {
			b.journal.close()
			b.journal = nil
		}
		b.mu.Unlock()
		return err
	}
	b.stop, b.swept = make(chan struct{}), make(chan struct{})
	go b.sweep(b.stop, b.swept)
	b.opts.Logger.Info("fake broker listening", "id", b.opts.ID, "addr", b.ls.Addr())
	return nil
}

// loadJournal opens the journal and puts its messages back in their queues.
func (b *Broker) loadJournal() error {
	j, msgs, err := openJournal(b.opts.Dir, b.opts.SyncJournal, b.opts.Logger)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.journal = j
	for _, jm := range msgs {
		q := b.nodes[jm.node]
		if q == nil {
			q = b.newNodeLocked(jm.node, Queue)
			if _, pattern, ok := b.policy.lookup(jm.node); ok {
				q.pattern, q.life = pattern, lifeUnusedAndEmpty
			}
		}
		if q.kind != Queue {
			b.opts.Logger.Warn("fakebroker: journal: a message's node is now a topic; dropped", "node", jm.node)
			j.remove(jm.seq)
			continue
		}
		h, _, _ := wire.ScanMessage(jm.payload)
		m := newMessage(jm.payload, h)
		m.seq, m.durable, m.journaled = jm.seq, true, true
		m.expires, m.count, m.delivered = jm.expires, jm.count, jm.count > 0
		if h != nil && h.TTL > 0 {
			m.ttlAt = jm.expires
		}
		q.push(m)
		b.seq = max(b.seq, jm.seq)
	}
	if len(msgs) > 0 {
		b.opts.Logger.Info("fakebroker: journal replayed", "dir", b.opts.Dir, "messages", len(msgs))
	}
	return nil
}

// sweep drops expired messages every second, so that queues nobody reads do not
// keep them.
func (b *Broker) sweep(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.mu.Lock()
			for _, n := range b.nodes {
				b.expireLocked(n)
			}
			b.sweepDeletionsLocked(b.opts.Now().UnixNano())
			b.mu.Unlock()
		}
	}
}

// Close closes every client connection (close with amqp:connection:forced), stops
// listening and closes the journal. It does not wait for clients: connections are
// closed actively. Messages held unsettled by consumers are put back first, so the
// journal keeps every durable message not yet acknowledged.
func (b *Broker) Close() error {
	return b.ls.Close(func() error {
		close(b.stop)
		<-b.swept
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.journal == nil {
			return nil
		}
		err := b.journal.close()
		b.journal = nil
		return err
	})
}

// Restart is what a client sees when the real broker restarts: the listener goes and
// every client connection is cut (no close frame, as when the process dies; what
// consumers held unsettled goes back to its queue); once they are gone the broker
// listens on the same address again. With a journal (Options.Dir) the broker's
// messages are then those of the journal: durable messages stay, the others are lost
// (counted as Dropped), as when qpidd restarts. Without a journal every message is
// kept. Nodes and counts are kept either way; temporary nodes go with their links.
// It returns an error when the broker is not running, the journal cannot be read
// again or the address cannot be had again.
func (b *Broker) Restart() error {
	return b.ls.Restart(func() error {
		b.mu.Lock()
		if b.journal == nil {
			b.mu.Unlock()
			return nil
		}
		for _, n := range b.nodes {
			for _, m := range n.avail[n.head:] {
				n.forget(m)
				if !m.journaled {
					n.counts.Dropped++
					b.totals.Dropped++
				}
			}
			n.avail, n.head, n.acquired = nil, 0, 0
		}
		err := b.journal.close()
		b.journal = nil
		b.mu.Unlock()
		if err != nil {
			b.opts.Logger.Warn("fakebroker: closing the journal for a restart", "err", err)
		}
		return b.loadJournal()
	})
}

// Addr returns the host:port the broker listens on ("" before Start).
func (b *Broker) Addr() string { return b.ls.Addr() }

// URL returns amqp://host:port for clients.
func (b *Broker) URL() string { return "amqp://" + b.Addr() }

// ID returns the broker's container-id.
func (b *Broker) ID() string { return b.opts.ID }

// handler adapts a Broker to the engine.
type handler struct{ b *Broker }

func (h handler) Opened(c *engine.Conn) error {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.conns[c] = struct{}{}
	h.b.notifyLocked()
	return nil
}

func (h handler) Closed(c *engine.Conn, _ error) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	h.b.stalled.Forget(c)
	delete(h.b.conns, c)
	h.b.notifyLocked()
}

// Writable hears that a consumer connection that read too slowly has drained: the
// messages held back for it go on.
func (h handler) Writable(c *engine.Conn) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	for _, n := range h.b.stalled.Take(c) {
		h.b.pumpLocked(n)
	}
}

func (h handler) Attach(l *engine.Link) error { return h.b.attach(l) }

func (h handler) LinkDetached(l *engine.Link, _ *wire.Error) { h.b.linkDetached(l) }

func (h handler) Delivery(l *engine.Link, d *engine.Delivery) { h.b.delivery(l, d) }

func (h handler) Credit(l *engine.Link) { h.b.credit(l) }

func (h handler) Disposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) {
	h.b.disposition(l, d, state, settled)
}
