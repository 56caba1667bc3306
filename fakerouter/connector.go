package fakerouter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Connector is a qdrouterd connector section: an outgoing connection of the router,
// which the router opens when it starts and opens again whenever it is lost. A
// connector with Role route-container connects to a route container (a broker such
// as qpidd) and carries the link routes whose Connection names it (see
// Options.LinkRoutes).
type Connector struct {
	// Name names the connection for link routes (LinkRoute.Connection).
	Name string
	// Host and Port to connect to. Default: 127.0.0.1 and "amqp" (5672), as
	// qdrouterd's.
	Host, Port string
	// Role of the connection: route-container carries link routes; normal (the
	// default) only connects. inter-router and edge are not supported: such a
	// connector is skipped, with a warning in the log.
	Role string
	// SASLMechanisms are the SASL mechanisms the router may use, space-separated;
	// empty means any the peer offers that the router can use: PLAIN when
	// SASLUsername is set, else ANONYMOUS, as Proton chooses.
	SASLMechanisms string
	// SASLUsername and SASLPassword authenticate the router with SASL PLAIN. The
	// password may be written as qdrouterd allows: "env:VAR" (from the environment),
	// "file:PATH" (the file's first line) or "pass:TEXT".
	SASLUsername, SASLPassword string
	// SSLProfile names qdrouterd's TLS settings for the connection. TLS is not
	// supported here: a connector with an SSLProfile is skipped, with a warning in
	// the log.
	SSLProfile string
	// IdleTimeout is qdrouterd's idleTimeoutSeconds: the router announces half of it
	// in its open and closes the connection when nothing arrives for this long.
	// Default: 16 s. Negative: none.
	IdleTimeout time.Duration
	// MaxFrameSize announced in the router's open. Default: 16384.
	MaxFrameSize uint32
	// Attributes holds every attribute of a connector section as written.
	Attributes map[string]string
}

// The connector roles of qdrouterd.
const (
	roleNormal         = "normal"
	roleRouteContainer = "route-container"
	roleInterRouter    = "inter-router"
	roleEdge           = "edge"
)

// qdrouterd's reconnection delays (server.c): the first attempt at once, the next 5 s
// after an attempt that fails, and 2 s after a connection that had opened is lost.
var (
	connectRetryDelay = 5 * time.Second
	reconnectDelay    = 2 * time.Second
)

func (cn *Connector) check() error {
	switch cn.Role {
	case "", roleNormal, roleRouteContainer, roleInterRouter, roleEdge:
	default:
		return fmt.Errorf("role %q is not normal, route-container, inter-router or edge", cn.Role)
	}
	if _, err := cn.port(); err != nil {
		return err
	}
	return nil
}

func (cn *Connector) port() (string, error) {
	switch cn.Port {
	case "", "amqp":
		return "5672", nil
	case "amqps":
		return "5671", nil
	}
	if _, err := strconv.ParseUint(cn.Port, 10, 16); err != nil {
		return "", fmt.Errorf("port %q is not a number", cn.Port)
	}
	return cn.Port, nil
}

// address returns host:port with qdrouterd's defaults.
func (cn *Connector) address() string {
	host := cn.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port, _ := cn.port()
	return net.JoinHostPort(host, port)
}

func (cn *Connector) role() string {
	if cn.Role == "" {
		return roleNormal
	}
	return cn.Role
}

func (cn *Connector) idleTimeout() time.Duration {
	switch {
	case cn.IdleTimeout == 0:
		return 16 * time.Second
	case cn.IdleTimeout < 0:
		return 0
	}
	return cn.IdleTimeout
}

// password resolves qdrouterd's env:, file: and pass: forms.
func (cn *Connector) password() (string, error) {
	p := cn.SASLPassword
	switch {
	case strings.HasPrefix(p, "env:"):
		return os.Getenv(strings.TrimSpace(p[len("env:"):])), nil
	case strings.HasPrefix(p, "file:"):
		b, err := os.ReadFile(p[len("file:"):])
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	case strings.HasPrefix(p, "pass:"):
		return p[len("pass:"):], nil
	}
	return p, nil
}

// checkConnectors validates the connectors and the link routes that name them.
func checkConnectors(cns []Connector, routes []LinkRoute) error {
	names := map[string]bool{}
	for i := range cns {
		if err := cns[i].check(); err != nil {
			return fmt.Errorf("fakerouter: connector %d: %w", i+1, err)
		}
		if n := cns[i].Name; n != "" {
			if names[n] {
				return fmt.Errorf("fakerouter: two connectors named %q", n)
			}
			names[n] = true
		}
	}
	for i, lr := range routes {
		if lr.Direction != "in" && lr.Direction != "out" {
			return fmt.Errorf("fakerouter: link route %d: direction must be in or out, not %q", i+1, lr.Direction)
		}
		if lr.Connection != "" && lr.ContainerID != "" {
			return fmt.Errorf("fakerouter: link route %d: only one of connection and containerId may be set", i+1)
		}
	}
	return nil
}

// ConnectorInfo describes one of the router's connectors.
type ConnectorInfo struct {
	Name string
	// Addr is the host:port it connects to.
	Addr string
	Role string
	// Connected is true while its connection is open.
	Connected bool
	// ContainerID is the container-id the peer announced (while connected).
	ContainerID string
}

// Connectors returns the router's connectors, in the order configured.
func (r *Router) Connectors() []ConnectorInfo {
	lr := &r.core.lr
	lr.mu.Lock()
	defer lr.mu.Unlock()
	var out []ConnectorInfo
	for _, cn := range lr.connectors[r] {
		info := ConnectorInfo{Name: cn.cfg.Name, Addr: cn.addr, Role: cn.cfg.role()}
		if bc := cn.current; bc != nil {
			info.Connected, info.ContainerID = true, bc.remoteContainer
		}
		out = append(out, info)
	}
	return out
}

// WaitForConnector blocks until the connector named name has an open connection (a
// route container's link routes are then active), or ctx ends.
func (r *Router) WaitForConnector(ctx context.Context, name string) error {
	lr := &r.core.lr
	for {
		lr.mu.Lock()
		found, open := false, false
		for _, cn := range lr.connectors[r] {
			if cn.cfg.Name == name {
				found, open = true, cn.current != nil
			}
		}
		ch := lr.changedLocked()
		lr.mu.Unlock()
		if open {
			return nil
		}
		if !found && r.ls.Started() {
			return fmt.Errorf("fakerouter: no connector named %q", name)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fakerouter: waiting for connector %q: %w", name, ctx.Err())
		}
	}
}

// connector keeps one Connector's connection open.
type connector struct {
	cfg  Connector
	addr string
	c    *core
	id   string // the router's container-id
	ver  string
	// maxMessage bounds a message from the peer (the router's MaxMessageSize).
	maxMessage int64
	log        *slog.Logger
	stop       chan struct{}
	done       chan struct{}
	// current is the open connection (nil while down); guarded by c.lr.mu.
	current *brokerConn
}

// startConnectors opens r's connectors (Router.Start).
func (c *core) startConnectors(r *Router) {
	lr := &c.lr
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.connectors == nil {
		lr.connectors = map[*Router][]*connector{}
	}
	if _, started := lr.connectors[r]; started {
		return
	}
	cns := []*connector{}
	for _, cfg := range r.opts.Connectors {
		log := r.opts.Logger.With("router", r.opts.ID, "connector", cfg.Name)
		switch {
		case cfg.role() == roleInterRouter || cfg.role() == roleEdge:
			log.Warn("connector skipped: the fake router does not connect to other routers", "role", cfg.role())
			continue
		case cfg.SSLProfile != "":
			log.Warn("connector skipped: TLS (sslProfile) is not supported for connectors", "sslProfile", cfg.SSLProfile)
			continue
		}
		cn := &connector{cfg: cfg, addr: cfg.address(), c: c, id: r.opts.ID, ver: r.opts.Version, log: log,
			maxMessage: r.opts.MaxMessageSize, stop: make(chan struct{}), done: make(chan struct{})}
		if cn.maxMessage <= 0 {
			cn.maxMessage = 64 << 20
		}
		cns = append(cns, cn)
		go cn.run()
	}
	lr.connectors[r] = cns
	lr.notifyLocked()
}

// stopConnectors closes r's connectors and waits until their goroutines have ended
// (Router.Close). Links routed through them lose their route container.
func (c *core) stopConnectors(r *Router) {
	lr := &c.lr
	lr.mu.Lock()
	cns := lr.connectors[r]
	lr.mu.Unlock()
	for _, cn := range cns {
		close(cn.stop)
	}
	for _, cn := range cns {
		<-cn.done
	}
}

// run connects, serves the connection until it ends, and connects again after
// qdrouterd's delays, until stop.
func (cn *connector) run() {
	defer close(cn.done)
	delay := time.Duration(0)
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-cn.stop:
				t.Stop()
				return
			}
		}
		select {
		case <-cn.stop:
			return
		default:
		}
		delay = connectRetryDelay
		bc, err := cn.connect()
		if err != nil {
			cn.log.Info("connection failed", "addr", cn.addr, "err", err)
			continue
		}
		delay = reconnectDelay
		cn.log.Info("connection opened", "addr", cn.addr, "container", bc.remoteContainer)
		cn.c.lr.opened(cn, bc)
		err = bc.serve(cn.stop)
		cn.c.lr.lost(cn, bc)
		cn.log.Info("connection lost", "addr", cn.addr, "err", err)
	}
}

// handshakeTimeout bounds a connection's SASL and open exchange; qdrouterd gives up
// on a peer that sends nothing for its idle time-out.
func (cn *connector) handshakeTimeout() time.Duration {
	if d := cn.cfg.idleTimeout(); d > 0 {
		return d
	}
	return 16 * time.Second
}

// connect dials the peer and exchanges SASL and open frames as qdrouterd (Proton) does.
func (cn *connector) connect() (*brokerConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cn.handshakeTimeout())
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-cn.stop:
			cancel()
		case <-stopped:
		}
	}()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cn.addr)
	if err != nil {
		return nil, err
	}
	// The handshake ends with the deadline or when stop cancels ctx.
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	unwatch := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	bc, err := cn.handshake(nc)
	unwatch()
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return bc, nil
}

func (cn *connector) handshake(nc net.Conn) (*brokerConn, error) {
	bc := newBrokerConn(cn, nc)
	if err := bc.sasl(); err != nil {
		return nil, err
	}
	if err := bc.writeHeader(wire.ProtoAMQP); err != nil {
		return nil, err
	}
	if err := bc.expectHeader(wire.ProtoAMQP); err != nil {
		return nil, err
	}
	idle := cn.cfg.idleTimeout()
	maxFrame := cn.cfg.MaxFrameSize
	if maxFrame == 0 {
		maxFrame = 16384
	}
	caps := []wire.Symbol{"ANONYMOUS-RELAY", "qd.streaming-links"}
	open := &wire.Open{
		ContainerID:         cn.id,
		Hostname:            cn.cfg.Host,
		MaxFrameSize:        maxFrame,
		ChannelMax:          32767,
		IdleTimeOut:         uint32(idle / time.Millisecond / 2), // Proton announces half
		OfferedCapabilities: caps,
		DesiredCapabilities: caps,
		Properties: wire.Fields{
			"product":    "qpid-dispatch-router",
			"version":    cn.ver,
			"qd.conn-id": cn.c.lr.nextConnID(),
		},
	}
	if open.Hostname == "" {
		open.Hostname = "127.0.0.1"
	}
	b, err := wire.AppendFrame(nil, wire.FrameAMQP, 0, open, nil)
	if err != nil {
		return nil, err
	}
	if err := bc.writeNow(b); err != nil {
		return nil, err
	}
	bc.maxIn = maxFrame
	f, err := bc.readFrame()
	if err != nil {
		return nil, err
	}
	peer, ok := f.body.(*wire.Open)
	if !ok {
		return nil, fmt.Errorf("the peer answered open with %T", f.body)
	}
	bc.remoteContainer = peer.ContainerID
	bc.peerMaxFrame = peer.MaxFrameSize
	if bc.peerMaxFrame < wire.MinMaxFrameSize {
		bc.peerMaxFrame = wire.MinMaxFrameSize
	}
	if peer.IdleTimeOut > 0 {
		bc.heartbeat = time.Duration(peer.IdleTimeOut) * time.Millisecond / 2
	}
	bc.idle = idle
	return bc, nil
}

// brokerConn is one open connection of a connector: the router's end of it, with the
// link-routed links it carries (linkroute.go).
type brokerConn struct {
	cn              *connector
	nc              net.Conn
	rd              *bufio.Reader
	remoteContainer string
	peerMaxFrame    uint32
	maxIn           uint32        // the max-frame-size the router announced
	heartbeat       time.Duration // send an empty frame after this long without output
	idle            time.Duration // close after this long without input
	kick            chan struct{}
	done            chan struct{} // closed once the connection is dead

	mu   sync.Mutex
	out  []byte
	dead bool
	err  error
	// The session (qdrouterd begins one for its link-routed links, on the first).
	began          bool
	nextOutID      uint32 // transfer-id of the router's next transfer frame
	nextInID       uint32 // transfer-id expected next from the peer
	remoteInWindow uint32
	nextDeliveryID uint32
	handleHint     uint32
	pendingOut     []*outTransfer           // transfers waiting for the peer's session window
	handles        map[uint32]*routedLink   // by the router's handle, until both detaches
	byRemote       map[uint32]*routedLink   // by the peer's handle
	answering      map[string][]*routedLink // attaches waiting for the peer's, by name
	sentOut        map[uint32]*relayOut     // deliveries the router sent, unsettled, by delivery-id
	recvIn         map[uint32]*relayIn      // deliveries the peer sent, unsettled, by delivery-id
	wrote          bool                     // output since the last heartbeat tick
	writing        bool                     // the writer is writing a buffer
	spare          []byte
	closeSent      bool
}

func newBrokerConn(cn *connector, nc net.Conn) *brokerConn {
	return &brokerConn{
		cn: cn, nc: nc, rd: bufio.NewReader(nc),
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		remoteInWindow: math.MaxUint32,
		handles:        map[uint32]*routedLink{},
		byRemote:       map[uint32]*routedLink{},
		answering:      map[string][]*routedLink{},
		sentOut:        map[uint32]*relayOut{},
		recvIn:         map[uint32]*relayIn{},
	}
}

func (bc *brokerConn) writeNow(b []byte) error {
	_, err := bc.nc.Write(b)
	return err
}

func (bc *brokerConn) writeHeader(id byte) error {
	h := wire.ProtocolHeader{ID: id, Major: 1}.Bytes()
	return bc.writeNow(h[:])
}

func (bc *brokerConn) expectHeader(id byte) error {
	var b [wire.ProtocolHeaderSize]byte
	if _, err := io.ReadFull(bc.rd, b[:]); err != nil {
		return fmt.Errorf("reading the peer's protocol header: %w", err)
	}
	h, err := wire.ParseProtocolHeader(b[:])
	if err != nil {
		return err
	}
	if h.ID != id {
		return fmt.Errorf("the peer answered protocol %d with %v", id, h)
	}
	return nil
}

// sasl runs the SASL layer as Proton's client does: ANONYMOUS (initial response
// "anonymous") or PLAIN, whichever the configuration allows and the peer offers.
func (bc *brokerConn) sasl() error {
	cfg := &bc.cn.cfg
	if err := bc.writeHeader(wire.ProtoSASL); err != nil {
		return err
	}
	if err := bc.expectHeader(wire.ProtoSASL); err != nil {
		return err
	}
	bc.maxIn = 512
	f, err := bc.readFrame()
	if err != nil {
		return err
	}
	mechs, ok := f.body.(*wire.SASLMechanisms)
	if !ok {
		return fmt.Errorf("the peer sent %T instead of its SASL mechanisms", f.body)
	}
	allowed := func(m wire.Symbol) bool {
		if cfg.SASLMechanisms == "" {
			return true
		}
		for _, a := range strings.Fields(cfg.SASLMechanisms) {
			if strings.EqualFold(a, string(m)) {
				return true
			}
		}
		return false
	}
	offered := func(m wire.Symbol) bool {
		for _, o := range mechs.SASLServerMechanisms {
			if o == m {
				return true
			}
		}
		return false
	}
	var init *wire.SASLInit
	switch {
	case cfg.SASLUsername != "" && allowed("PLAIN") && offered("PLAIN"):
		pass, err := cfg.password()
		if err != nil {
			return fmt.Errorf("saslPassword: %w", err)
		}
		init = &wire.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00" + cfg.SASLUsername + "\x00" + pass)}
	case allowed("ANONYMOUS") && offered("ANONYMOUS"):
		init = &wire.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}
	default:
		return fmt.Errorf("no SASL mechanism in common: the peer offers %v, the connector allows %q", mechs.SASLServerMechanisms, cfg.SASLMechanisms)
	}
	b, err := wire.AppendFrame(nil, wire.FrameSASL, 0, init, nil)
	if err != nil {
		return err
	}
	if err := bc.writeNow(b); err != nil {
		return err
	}
	f, err = bc.readFrame()
	if err != nil {
		return err
	}
	outcome, ok := f.body.(*wire.SASLOutcome)
	if !ok {
		return fmt.Errorf("the peer sent %T instead of its SASL outcome", f.body)
	}
	if outcome.Code != wire.SASLCodeOK {
		return fmt.Errorf("SASL %s refused (code %d)", init.Mechanism, outcome.Code)
	}
	return nil
}

type inFrame struct {
	channel uint16
	body    wire.Marshaler // nil for an empty frame
	payload []byte
}

// readFrame reads one frame of at most maxIn bytes.
func (bc *brokerConn) readFrame() (inFrame, error) {
	var hb [wire.FrameHeaderSize]byte
	if _, err := io.ReadFull(bc.rd, hb[:]); err != nil {
		return inFrame{}, err
	}
	h, err := wire.ParseFrameHeader(hb[:], bc.maxIn)
	if err != nil {
		return inFrame{}, &badFrameError{wire.ErrCondFramingError, err}
	}
	rest := make([]byte, h.Size-wire.FrameHeaderSize)
	if _, err := io.ReadFull(bc.rd, rest); err != nil {
		return inFrame{}, err
	}
	body := rest[int(h.DataOff)*4-wire.FrameHeaderSize:]
	f := inFrame{channel: h.Channel}
	if len(body) == 0 {
		return f, nil
	}
	if h.Type == wire.FrameSASL {
		f.body, err = wire.DecodeSASLFrame(body)
	} else {
		f.body, f.payload, err = wire.DecodePerformative(body)
	}
	if err != nil {
		return f, &badFrameError{wire.ErrCondDecodeError, err}
	}
	return f, nil
}

// badFrameError is a frame the peer should not have sent: the router closes the
// connection with cond.
type badFrameError struct {
	cond wire.ErrCond
	err  error
}

func (e *badFrameError) Error() string { return e.err.Error() }
func (e *badFrameError) Unwrap() error { return e.err }

// serve runs the connection until it fails, the peer closes it or stop: it reads
// frames here and writes them on a goroutine of its own. The links it carried are
// lost when it returns.
func (bc *brokerConn) serve(stop <-chan struct{}) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); bc.writeLoop() }()
	go func() {
		defer wg.Done()
		select {
		case <-stop:
			bc.closeWith(&wire.Error{Condition: wire.ErrCondConnectionForced, Description: "router shutting down"})
		case <-bc.done:
		}
	}()
	err := bc.readLoop()
	bc.drain()
	bc.fail(err)
	wg.Wait()
	return err
}

// drain waits (a second at most) until the writer has written everything queued, so
// that a close the router sent goes out before the socket is closed.
func (bc *brokerConn) drain() {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		bc.mu.Lock()
		idle := (len(bc.out) == 0 && !bc.writing) || bc.dead
		bc.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (bc *brokerConn) readLoop() error {
	for {
		if bc.idle > 0 {
			_ = bc.nc.SetReadDeadline(time.Now().Add(bc.idle))
		}
		f, err := bc.readFrame()
		if err != nil {
			var ne net.Error
			var bad *badFrameError
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				bc.closeWith(&wire.Error{Condition: wire.ErrCondResourceLimitExceeded, Description: "local-idle-timeout expired"})
				return fmt.Errorf("nothing received for %v", bc.idle)
			case errors.As(err, &bad):
				bc.closeWith(&wire.Error{Condition: bad.cond, Description: bad.err.Error()})
			}
			return err
		}
		if f.body == nil {
			continue
		}
		if done, err := bc.dispatch(f); done || err != nil {
			return err
		}
	}
}

// closeWith sends close with err (once) and ends the connection.
func (bc *brokerConn) closeWith(err *wire.Error) {
	bc.mu.Lock()
	if !bc.dead && !bc.closeSent {
		bc.writeLocked(0, &wire.Close{Error: err}, nil)
		bc.closeSent = true
	}
	bc.mu.Unlock()
	// Give the writer the close, then cut the connection.
	go func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-bc.done:
		case <-t.C:
			bc.fail(errors.New("the peer did not answer close"))
		}
	}()
}

// writeLocked queues one frame for the writer.
func (bc *brokerConn) writeLocked(ch uint16, body wire.Marshaler, payload []byte) {
	if bc.dead || bc.closeSent {
		return
	}
	var err error
	bc.out, err = wire.AppendFrame(bc.out, wire.FrameAMQP, ch, body, payload)
	if err != nil {
		bc.cn.log.Error("encoding a frame failed", "frame", fmt.Sprintf("%T", body), "err", err)
		return
	}
	select {
	case bc.kick <- struct{}{}:
	default:
	}
}

// writeLoop writes queued frames, and an empty frame whenever nothing else went out
// for half the peer's idle time-out.
func (bc *brokerConn) writeLoop() {
	var tick <-chan time.Time
	if bc.heartbeat > 0 {
		t := time.NewTicker(bc.heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-bc.kick:
		case <-tick:
			bc.mu.Lock()
			if !bc.wrote && len(bc.out) == 0 && !bc.dead && !bc.closeSent {
				bc.out = append(bc.out, 0, 0, 0, 8, 2, wire.FrameAMQP, 0, 0)
			}
			bc.wrote = false
			bc.mu.Unlock()
		case <-bc.done:
			return
		}
		bc.mu.Lock()
		buf := bc.out
		bc.out, bc.spare = bc.spare[:0], nil
		if len(buf) > 0 {
			bc.wrote, bc.writing = true, true
		}
		bc.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		_, err := bc.nc.Write(buf)
		bc.mu.Lock()
		bc.writing = false
		if cap(buf) <= 1<<20 { // keep a buffer of ordinary size for the next round
			bc.spare = buf[:0]
		}
		bc.mu.Unlock()
		if err != nil {
			bc.fail(err)
			return
		}
	}
}

// fail ends the connection (once): the socket is closed and every link it carried is
// lost, as qdrouterd loses them (linkroute.go).
func (bc *brokerConn) fail(err error) {
	bc.mu.Lock()
	if bc.dead {
		bc.mu.Unlock()
		return
	}
	bc.dead = true
	bc.err = err
	lost := bc.loseLinksLocked()
	close(bc.done)
	bc.mu.Unlock()
	bc.nc.Close()
	for _, rl := range lost {
		rl.closeClient(routedLinkLost())
	}
}
