package driver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// TransportOptions configure a Transport beyond the oslo options.
type TransportOptions struct {
	// Options are the [oslo_messaging_amqp] options. nil means DefaultOptions().
	Options *Options
	// Logger receives connection events. Default: discard.
	Logger *slog.Logger
}

// Transport is one AMQP 1.0 connection to an intermediary, shared by the RPC clients,
// servers, notifiers and listeners built on it, as a Python driver instance is. It
// connects lazily, on first use, to the URL's hosts in order, and reconnects with
// back-off (connection_retry_interval, _backoff, _interval_max) when the connection
// is lost, re-attaching every listener with addresses worked out again from the new
// peer (a failover from a broker to a router switches address syntax, as in Python).
type Transport struct {
	url         *TransportURL
	opts        Options
	log         *slog.Logger
	containerID string

	mu      sync.Mutex
	cur     *connection
	ready   chan struct{} // closed when cur is usable; replaced when it is lost
	attempt chan struct{} // closed after each failed connection attempt; replaced
	lastErr error
	started bool
	closed  bool
	subs    map[*subscription]struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// NewTransport parses a transport URL (amqp://user:pass@host1:port,host2:port/vhost)
// and options; query parameters of the URL override options of the same name. It does
// no I/O: the connection opens on first use.
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
// the transport stop receiving.
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

// connection returns the live connection, starting the connection loop on first use
// and waiting for it. A fatal refusal by the peer (the reply link refused, wrong
// credentials, a TLS failure) fails at once rather than waiting for ctx.
func (t *Transport) connection(ctx context.Context) (*connection, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if !t.started {
		t.started = true
		t.wg.Add(1)
		go t.supervise()
	}
	for {
		if t.cur != nil {
			c := t.cur
			t.mu.Unlock()
			return c, nil
		}
		if isFatal(t.lastErr) {
			err := t.lastErr
			t.mu.Unlock()
			return nil, err
		}
		ready, attempt := t.ready, t.attempt
		t.mu.Unlock()
		select {
		case <-ready:
		case <-attempt:
		case <-t.stop:
			return nil, ErrClosed
		case <-ctx.Done():
			t.mu.Lock()
			last := t.lastErr
			t.mu.Unlock()
			if last != nil {
				return nil, fmt.Errorf("%w: not connected: %v", ctxErr(ctx), last)
			}
			return nil, fmt.Errorf("%w: not connected", ctxErr(ctx))
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

// supervise connects, waits for the connection to be lost, and reconnects, over the
// URL's hosts in order with back-off.
func (t *Transport) supervise() {
	defer t.wg.Done()
	delay := t.opts.ConnectionRetryInterval
	idx := 0
	for {
		select {
		case <-t.stop:
			return
		default:
		}
		host := t.url.Hosts[idx%len(t.url.Hosts)]
		idx++
		c, err := t.dial(host)
		if err != nil {
			t.log.Warn("connection attempt failed", "host", host.Address(), "err", err)
			t.mu.Lock()
			t.lastErr = err
			close(t.attempt)
			t.attempt = make(chan struct{})
			t.mu.Unlock()
			select {
			case <-t.stop:
				return
			case <-time.After(delay):
			}
			if t.opts.ConnectionRetryBackoff > 0 {
				delay = min(delay*time.Duration(t.opts.ConnectionRetryBackoff), t.opts.ConnectionRetryIntervalMax)
			} else {
				delay = 0
			}
			continue
		}
		delay = t.opts.ConnectionRetryInterval
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.conn.Close()
			return
		}
		t.cur, t.lastErr = c, nil
		close(t.ready)
		subs := make([]*subscription, 0, len(t.subs))
		for s := range t.subs {
			subs = append(subs, s)
		}
		t.mu.Unlock()
		t.log.Info("connected", "host", host.Address(), "product", c.product, "legacy", c.addresser.Legacy())
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
		t.mu.Unlock()
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

	mu      sync.Mutex
	senders map[string]*cachedSender
	calls   map[string]*pendingCall
	gone    bool
}

type cachedSender struct {
	once   sync.Once
	sender *amqp.Sender
	err    error
}

// dial opens a connection to host and attaches the dynamic reply link.
func (t *Transport) dial(host Host) (*connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(t.opts.DefaultSendTimeout, 5*time.Second))
	defer cancel()
	co, scheme, err := t.connOptions(host)
	if err != nil {
		return nil, &fatalError{err}
	}
	conn, err := amqp.Dial(ctx, scheme+"://"+host.Address(), co)
	if err != nil {
		var ae *amqp.Error
		var ce *amqp.ConnError
		if errors.As(err, &ae) && ae.Condition == amqp.ErrCondUnauthorizedAccess ||
			errors.As(err, &ce) && ce.RemoteErr != nil && ce.RemoteErr.Condition == amqp.ErrCondUnauthorizedAccess ||
			strings.Contains(err.Error(), "SASL") || strings.Contains(err.Error(), "authentication") {
			return nil, &fatalError{fmt.Errorf("%w: %s: authentication failed (amqp:unauthorized-access): %v", ErrDeliveryFailure, host.Address(), err)}
		}
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return nil, &fatalError{fmt.Errorf("%w: %s: TLS: %v", ErrDeliveryFailure, host.Address(), err)}
		}
		return nil, fmt.Errorf("%s: %w", host.Address(), err)
	}
	c := &connection{t: t, conn: conn, host: host, senders: map[string]*cachedSender{}, calls: map[string]*pendingCall{}}
	props := conn.Properties()
	if p, ok := props["product"].(string); ok {
		c.product = p
	}
	if v, ok := props["version"].(string); ok {
		c.version = v
	}
	vhost := t.url.VirtualHost
	c.addresser = NewAddresser(&t.opts, vhost, props)
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: begin: %w", host.Address(), err)
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

// connOptions builds go-amqp's options from the oslo ones for host.
func (t *Transport) connOptions(host Host) (*amqp.ConnOptions, string, error) {
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
	// SASL only with credentials or sasl_* options, as pyngus decides.
	if host.Username != "" || o.SASLMechanisms != "" || o.SASLConfigDir != "" || o.SASLConfigName != "" {
		mechs := strings.Fields(strings.ToUpper(o.SASLMechanisms))
		allowed := func(m string) bool {
			if len(mechs) == 0 {
				return true
			}
			for _, x := range mechs {
				if x == m {
					return true
				}
			}
			return false
		}
		switch {
		case o.SSLCertFile != "" && allowed("EXTERNAL") && len(mechs) > 0:
			co.SASLType = amqp.SASLTypeExternal("")
		case host.Username != "" && allowed("PLAIN"):
			co.SASLType = amqp.SASLTypePlain(o.SASLUser(host), host.Password)
		case allowed("ANONYMOUS"):
			co.SASLType = amqp.SASLTypeAnonymous()
		default:
			return nil, "", &ConfigError{Field: "sasl_mechanisms", Value: o.SASLMechanisms,
				Reason: "none of the listed mechanisms is supported by this driver (PLAIN, ANONYMOUS, EXTERNAL)"}
		}
	}
	scheme := "amqp"
	if o.SSL || o.SSLCAFile != "" || o.SSLCertFile != "" {
		scheme = "amqps"
		tc, err := t.tlsConfig(host)
		if err != nil {
			return nil, "", err
		}
		co.TLSConfig = tc
	}
	return co, scheme, nil
}

// tlsConfig follows pyngus: CA file (or the system's), client certificate and key
// (with its password), and the peer name from the host or, with ssl_verify_vhost, the
// vhost.
func (t *Transport) tlsConfig(host Host) (*tls.Config, error) {
	o := &t.opts
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host.Hostname}
	if o.SSLVerifyVhost {
		tc.ServerName = t.url.VirtualHost
	}
	if o.SSLCAFile != "" {
		pemBytes, err := os.ReadFile(o.SSLCAFile)
		if err != nil {
			return nil, &ConfigError{Field: "ssl_ca_file", Value: o.SSLCAFile, Reason: "cannot read the CA file", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, &ConfigError{Field: "ssl_ca_file", Value: o.SSLCAFile, Reason: "no PEM certificate in the CA file"}
		}
		tc.RootCAs = pool
	}
	if tc.ServerName == "" {
		// No peer name: verify the chain only (pyngus verify-cert).
		tc.InsecureSkipVerify = true
		roots := tc.RootCAs
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	}
	if o.SSLCertFile != "" {
		cert, err := loadKeyPair(o.SSLCertFile, o.SSLKeyFile, o.SSLKeyPassword)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("the server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}

// loadKeyPair reads a PEM certificate and key, decrypting a legacy encrypted PEM key
// with password.
func loadKeyPair(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_cert_file", Value: certFile, Reason: "cannot read", Err: err}
	}
	if keyFile == "" {
		keyFile = certFile
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_key_file", Value: keyFile, Reason: "cannot read", Err: err}
	}
	if password != "" {
		block, _ := pem.Decode(keyPEM)
		//lint:ignore SA1019 oslo deployments use legacy encrypted PEM keys (ssl_key_password).
		if block != nil && x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
			//lint:ignore SA1019 as above.
			der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck
			if err != nil {
				return tls.Certificate{}, &ConfigError{Field: "ssl_key_password", Reason: "cannot decrypt the key", Err: err}
			}
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_cert_file", Value: certFile, Reason: "certificate and key do not load", Err: err}
	}
	return cert, nil
}

// sender returns the cached sender link for addr, attaching it (on its own session,
// source = target = addr, as the Python driver does) on first use.
func (c *connection) sender(ctx context.Context, addr string) (*amqp.Sender, error) {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil, errConnLost
	}
	cs := c.senders[addr]
	if cs == nil {
		cs = &cachedSender{}
		c.senders[addr] = cs
	}
	c.mu.Unlock()
	cs.once.Do(func() {
		sess, err := c.conn.NewSession(ctx, nil)
		if err != nil {
			cs.err = err
			return
		}
		cs.sender, cs.err = sess.NewSender(ctx, addr, &amqp.SenderOptions{
			Name:          "openstack.org/om/sender/[" + addr + "]/" + newUUIDHex(),
			SourceAddress: addr,
		})
	})
	if cs.err != nil {
		c.mu.Lock()
		if c.senders[addr] == cs {
			delete(c.senders, addr)
		}
		c.mu.Unlock()
		return nil, cs.err
	}
	return cs.sender, nil
}

// dropSender forgets a sender whose link failed, so the next send attaches a new one.
func (c *connection) dropSender(addr string, s *amqp.Sender) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs := c.senders[addr]; cs != nil && cs.sender == s {
		delete(c.senders, addr)
	}
}

var errConnLost = errors.New("connection lost")

// lost fails what waits on the connection: calls waiting for replies end with a
// timeout when their deadline comes (their reply address is gone), as in Python.
func (c *connection) lost(err error) {
	c.mu.Lock()
	c.gone = true
	calls := c.calls
	c.calls = map[string]*pendingCall{}
	c.mu.Unlock()
	for _, pc := range calls {
		pc.fail(fmt.Errorf("%w: connection lost while waiting for the reply: %v", ErrTimeout, err))
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

var _ = net.JoinHostPort
