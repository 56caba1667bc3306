package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// TransportOptions configure a Transport beyond the oslo options.
type TransportOptions struct {
	// Options are the [oslo_messaging_amqp] options. nil means DefaultOptions().
	Options *Options
	// Logger receives connection events (connected, lost, reconnect delays, links
	// re-attached or purged, sends resent) and errors the driver cannot return to a
	// caller (a reply that could not be sent). Default: discard.
	Logger *slog.Logger
}

// Transport is one AMQP 1.0 connection to an intermediary, shared by the RPC clients,
// servers, notifiers and listeners built on it, as a Python driver instance is.
//
// It connects lazily, on first use, to the URL's first host. When the connection is
// lost or an attempt fails, it waits connection_retry_interval, then tries the next
// host (round robin), multiplying the delay by connection_retry_backoff after each
// failure up to connection_retry_interval_max; the delay goes back to the interval
// once a connection opens. Every listener is re-attached with addresses worked out
// again from the new peer (a failover from a broker to a router switches address
// syntax, as in Python), and a new reply address is obtained. Calls waiting for a
// reply when the connection is lost end with ErrTimeout at their deadline (their
// reply address is gone), as in Python.
//
// Failures that retrying cannot fix (wrong credentials, a certificate that does not
// verify, a peer that refuses the dynamic reply link) make sends fail at once, once
// every host of the URL has been tried, with an error wrapping ErrDeliveryFailure (or
// a *PeerError or *ConfigError) that gives the reason.
type Transport struct {
	url         *TransportURL
	opts        Options
	log         *slog.Logger
	containerID string

	mu      sync.Mutex
	cur     *connection
	ready   chan struct{} // closed when cur is usable; replaced when it is lost
	attempt chan struct{} // closed after each failed connection attempt; replaced
	lastErr error         // why the latest attempt failed or the connection was lost
	// failStreak counts the connection attempts that failed in a row; lastFatal is
	// the latest of them that retrying cannot fix. Callers fail fast once a whole
	// round of the URL's hosts has failed and one of the attempts failed fatally.
	failStreak int
	lastFatal  error
	started    bool
	closed     bool
	subs       map[*subscription]struct{}
	stop       chan struct{}
	wg         sync.WaitGroup
}

// NewTransport parses a transport URL (amqp://user:pass@host1:port,host2:port/vhost)
// and options; query parameters of the URL override options of the same name. It does
// no I/O apart from reading the TLS files named by the options (a missing file or a
// wrong key password is a *ConfigError here): the connection opens on first use.
func NewTransport(rawURL string, topts *TransportOptions) (*Transport, error) {
	u, err := ParseTransportURL(rawURL)
	if err != nil {
		return nil, err
	}
	var o Options
	var log *slog.Logger
	if topts != nil {
		log = topts.Logger
		if topts.Options != nil {
			o = *topts.Options
		} else {
			o = DefaultOptions()
		}
	} else {
		o = DefaultOptions()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := u.ApplyQuery(&o); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := checkSASLMechanisms(&o); err != nil {
		return nil, err
	}
	if err := checkTLSFiles(&o); err != nil {
		return nil, err
	}
	t := &Transport{
		url:     u,
		opts:    o,
		log:     log,
		ready:   make(chan struct{}),
		attempt: make(chan struct{}),
		subs:    map[*subscription]struct{}{},
		stop:    make(chan struct{}),
	}
	t.containerID = o.ContainerName
	if t.containerID == "" {
		node, _ := os.Hostname()
		t.containerID = fmt.Sprintf("openstack.org/om/container/%s/%s/%d/%s", node, filepath.Base(os.Args[0]), os.Getpid(), newUUIDHex())
	}
	return t, nil
}

// Options returns the transport's options.
func (t *Transport) Options() Options { return t.opts }

// URL returns the parsed transport URL.
func (t *Transport) URL() *TransportURL { return t.url }

// Close detaches every link and closes the connection. Servers and listeners built on
// the transport stop receiving; sends in progress fail with ErrClosed or
// ErrDeliveryFailure.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.stop)
	cur := t.cur
	t.mu.Unlock()
	if cur != nil {
		cur.conn.Close()
	}
	t.wg.Wait()
	return nil
}

// PeerProduct returns the product and version the connected intermediary announced,
// and whether the transport is connected.
func (t *Transport) PeerProduct() (product, version string, connected bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		return "", "", false
	}
	return t.cur.product, t.cur.version, true
}

// Addresser returns the addresser of the current connection (legacy or routable as
// decided from the peer), connecting first if needed.
func (t *Transport) Addresser(ctx context.Context) (*Addresser, error) {
	c, err := t.connection(ctx)
	if err != nil {
		return nil, err
	}
	return c.addresser, nil
}

// startLocked starts the connection loop once. t.mu is held.
func (t *Transport) startLocked() {
	if !t.started {
		t.started = true
		t.wg.Add(1)
		go t.supervise()
	}
}

// connection returns the live connection, starting the connection loop on first use
// and waiting for it until ctx ends (an error wrapping ErrTimeout at its deadline, with
// the last attempt's error). A failure that retrying cannot fix fails at once, once
// every host has been tried.
func (t *Transport) connection(ctx context.Context) (*connection, error) {
	c, err := t.awaitConnection(ctx, nil, false)
	var nc *notConnectedError
	if errors.As(err, &nc) {
		return nil, &driverError{kind: ctxErr(ctx), err: nc}
	}
	return c, err
}

// notConnectedError: ctx ended while waiting for a connection. last is the last
// connection attempt's error (or the lost connection's), nil if there is none.
type notConnectedError struct{ last error }

func (e *notConnectedError) Error() string { return notConnectedText(e.last) }
func (e *notConnectedError) Unwrap() error { return e.last }

// attemptError: a connection attempt failed while a send waited for a connection,
// which uses up one of the send's retries.
type attemptError struct{ last error }

func (e *attemptError) Error() string { return notConnectedText(e.last) }
func (e *attemptError) Unwrap() error { return e.last }

func notConnectedText(last error) string {
	if last == nil {
		return "not connected"
	}
	return "not connected: " + describe(last)
}

// awaitConnection returns the live connection, other than avoid (a connection the
// caller found lost before the transport noticed), starting the connection loop on
// first use and waiting for the transport to connect or reconnect. It fails with
//
//   - ErrClosed when the transport is closed;
//   - a failure that retrying cannot fix (credentials, TLS, a peer that refuses the
//     reply link) once every host of the URL has been tried, at once;
//   - a *notConnectedError when ctx ends first;
//   - with countAttempts, an *attemptError as soon as a connection attempt fails, so
//     that the send loop counts it against its retries (in Python each failed
//     attempt uses one retry of every pending send).
func (t *Transport) awaitConnection(ctx context.Context, avoid *connection, countAttempts bool) (*connection, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	t.startLocked()
	for {
		if t.cur != nil && t.cur == avoid {
			t.mu.Unlock()
			select {
			case <-avoid.cleared:
			case <-t.stop:
				return nil, ErrClosed
			case <-ctx.Done():
				return nil, &notConnectedError{last: errConnLost}
			}
			t.mu.Lock()
			continue
		}
		if t.cur != nil {
			c := t.cur
			t.mu.Unlock()
			return c, nil
		}
		if t.lastFatal != nil && t.failStreak >= len(t.url.Hosts) {
			err := t.lastFatal
			t.mu.Unlock()
			return nil, err
		}
		ready, attempt := t.ready, t.attempt
		t.mu.Unlock()
		select {
		case <-ready:
		case <-attempt:
			if countAttempts {
				t.mu.Lock()
				last := t.lastErr
				t.mu.Unlock()
				return nil, &attemptError{last: last}
			}
		case <-t.stop:
			return nil, ErrClosed
		case <-ctx.Done():
			t.mu.Lock()
			last := t.lastErr
			t.mu.Unlock()
			return nil, &notConnectedError{last: last}
		}
		t.mu.Lock()
	}
}

// ctxErr maps a context's end to the driver's error.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}

// fatalError marks connection failures that retrying the same way cannot fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func isFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f)
}

// nextDelay is the reconnect back-off of controller.py: the delay is multiplied (not
// increased) by connection_retry_backoff, up to connection_retry_interval_max; a
// back-off of 0 makes every later retry immediate.
func (t *Transport) nextDelay(d time.Duration) time.Duration {
	if t.opts.ConnectionRetryBackoff <= 0 {
		return 0
	}
	return min(d*time.Duration(t.opts.ConnectionRetryBackoff), t.opts.ConnectionRetryIntervalMax)
}

// supervise connects, waits for the connection to be lost, and reconnects, over the
// URL's hosts in turn with back-off.
func (t *Transport) supervise() {
	defer t.wg.Done()
	delay := t.opts.ConnectionRetryInterval
	idx := 0
	first := true
	for {
		host := t.url.Hosts[idx%len(t.url.Hosts)]
		idx++
		if !first {
			t.log.Info("reconnecting", "host", host.Address(), "delay", delay)
			select {
			case <-t.stop:
				return
			case <-time.After(delay):
			}
			delay = t.nextDelay(delay)
		}
		first = false
		select {
		case <-t.stop:
			return
		default:
		}
		c, err := t.dial(host)
		if err != nil {
			t.log.Warn("connection attempt failed", "host", host.Address(), "err", err)
			t.mu.Lock()
			t.lastErr = err
			t.failStreak++
			if isFatal(err) {
				t.lastFatal = err
			}
			close(t.attempt)
			t.attempt = make(chan struct{})
			t.mu.Unlock()
			continue
		}
		delay = t.opts.ConnectionRetryInterval
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.conn.Close()
			return
		}
		t.cur, t.lastErr, t.lastFatal, t.failStreak = c, nil, nil, 0
		close(t.ready)
		subs := make([]*subscription, 0, len(t.subs))
		for s := range t.subs {
			subs = append(subs, s)
		}
		t.mu.Unlock()
		t.log.Info("connected", "host", host.Address(), "product", c.product, "legacy", c.addresser.Legacy(), "reply_to", c.replyAddr)
		t.wg.Add(1)
		go c.purgeSenders()
		for _, s := range subs {
			s.attachOn(c)
		}
		select {
		case <-c.conn.Done():
		case <-t.stop:
			c.conn.Close()
		}
		c.lost(c.conn.Err())
		t.mu.Lock()
		t.cur = nil
		t.ready = make(chan struct{})
		if err := c.conn.Err(); err != nil {
			// Until an attempt fails, the reason a send is not connected.
			t.lastErr = &driverError{msg: "connection to " + host.Address() + " lost", err: err}
		}
		closed := t.closed
		t.mu.Unlock()
		close(c.cleared)
		if closed {
			return
		}
		t.log.Warn("connection lost", "host", host.Address(), "err", c.conn.Err())
	}
}

// connection is one live AMQP connection with its reply link and sender cache.
type connection struct {
	t         *Transport
	conn      *amqp.Conn
	host      Host
	addresser *Addresser
	product   string
	version   string
	replyAddr string
	reply     *amqp.Receiver

	cleared chan struct{} // closed once the transport has stopped offering it

	mu      sync.Mutex
	senders map[string]*cachedSender
	calls   map[string]*pendingCall
	gone    bool
}

// dial opens a connection to host and attaches the dynamic reply link.
func (t *Transport) dial(host Host) (*connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(t.opts.DefaultSendTimeout, 5*time.Second))
	defer cancel()
	co, scheme, mechs, err := t.connOptions(host)
	if err != nil {
		return nil, &fatalError{err}
	}
	conn, err := amqp.Dial(ctx, scheme+"://"+host.Address(), co)
	if err != nil {
		return nil, classifyDialError(host, mechs, err)
	}
	c := &connection{t: t, conn: conn, host: host, cleared: make(chan struct{}),
		senders: map[string]*cachedSender{}, calls: map[string]*pendingCall{}}
	props := conn.Properties()
	if p, ok := props["product"].(string); ok {
		c.product = p
	}
	if v, ok := props["version"].(string); ok {
		c.version = v
	}
	vhost := t.url.VirtualHost
	c.addresser = newAddresser(&t.opts, vhost, props)
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, &driverError{msg: host.Address() + ": begin", err: err}
	}
	reply, err := sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{
		DynamicAddress: true,
		TargetAddress:  "rpc-response",
		Credit:         int32(t.opts.ReplyLinkCredit),
		Name:           "openstack.org/om/receiver/[rpc-response]/" + newUUIDHex(),
	})
	if err == nil && reply.Address() == "" {
		err = errors.New("the peer answered the dynamic reply link without naming an address")
	}
	if err != nil {
		conn.Close()
		return nil, &fatalError{&PeerError{Host: host.Address(), Product: c.product, Version: c.version,
			Op: "attach the dynamic reply link (a receiver with a dynamic source, which oslo.messaging needs for RPC replies)", Err: err}}
	}
	c.reply, c.replyAddr = reply, reply.Address()
	t.wg.Add(1)
	go c.replyLoop()
	return c, nil
}

// connOptions builds go-amqp's options from the oslo ones for host, with the URL
// scheme to dial and the SASL mechanisms offered (for error messages).
func (t *Transport) connOptions(host Host) (*amqp.ConnOptions, string, []string, error) {
	o := &t.opts
	node, _ := os.Hostname()
	co := &amqp.ConnOptions{
		ContainerID: t.containerID,
		Properties: map[string]any{
			"process": filepath.Base(os.Args[0]),
			"pid":     int64(os.Getpid()),
			"node":    node,
		},
		IdleTimeout: -1,
	}
	if o.IdleTimeout > 0 {
		co.IdleTimeout = o.IdleTimeout
	}
	if v := t.url.VirtualHost; v != "" && !o.PseudoVhost {
		co.HostName = v
	}
	sasl, mechs, err := t.saslType(host)
	if err != nil {
		return nil, "", nil, err
	}
	co.SASLType = sasl
	scheme := "amqp"
	if o.tlsEnabled() {
		// TLS from the first byte, without the AMQP TLS header, as Proton does.
		scheme = "amqps"
		tc, err := t.tlsConfig(host)
		if err != nil {
			return nil, "", nil, err
		}
		co.TLSConfig = tc
	}
	return co, scheme, mechs, nil
}

var errConnLost = errors.New("connection lost")

// lost fails what waits on the connection: calls waiting for replies end with a
// timeout when their deadline comes (their reply address is gone), as in Python.
func (c *connection) lost(err error) {
	c.mu.Lock()
	c.gone = true
	calls := c.calls
	c.calls = map[string]*pendingCall{}
	c.senders = map[string]*cachedSender{}
	c.mu.Unlock()
	for _, pc := range calls {
		pc.fail(&driverError{msg: "connection lost while waiting for the reply", err: err})
	}
}

// newUUIDHex returns a random (version 4) UUID as 32 hex digits, as Python's
// uuid.uuid4().hex.
func newUUIDHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// newUUID returns a random UUID in the 8-4-4-4-12 form (notification message ids).
func newUUID() string {
	h := newUUIDHex()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
