package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Request is one RPC invocation as a server method sees it.
type Request struct {
	// Context is the caller's request context (oslo's serialised context dict).
	Context map[string]any
	// Method is the method name.
	Method string
	// Args are the keyword arguments, still JSON; use Arg to decode one.
	Args map[string]json.RawMessage
	// Namespace and Version are what the caller's target asked for.
	Namespace, Version string
}

// Arg decodes the argument name into v; it reports a missing argument.
func (r *Request) Arg(name string, v any) error {
	raw, ok := r.Args[name]
	if !ok {
		return fmt.Errorf("missing argument %q", name)
	}
	return json.Unmarshal(raw, v)
}

// Method serves one RPC method. The result is sent back as JSON; an error is sent as
// a remote exception: a *RemoteError as it is, any other error as a builtins
// RuntimeError carrying its text.
type Method func(ctx context.Context, req *Request) (any, error)

// Endpoint is a set of methods with the namespace and version they serve, as an oslo
// endpoint object with its target.
type Endpoint struct {
	// Namespace must equal the caller's target namespace ("" for none).
	Namespace string
	// Version is the endpoint's API version, "major.minor". Default: "1.0".
	Version string
	// Methods by name.
	Methods map[string]Method
}

// ServerOptions configure an RPCServer.
type ServerOptions struct {
	// Executor bounds how many methods run at once. Default: 64 (oslo's
	// executor_thread_pool_size).
	Executor int
}

// RPCServer serves the methods of its endpoints on a target (topic and server), as
// oslo_messaging's RPC server: it listens on three addresses (this server, the fanout
// of the topic, and the topic shared with other servers), acknowledges each request
// before dispatching it, and replies to calls.
type RPCServer struct {
	t         *Transport
	target    Target
	endpoints []Endpoint
	sem       chan struct{}
	sub       *subscription

	// jobs hands a request to an idle worker goroutine; quit, closed once the server
	// has stopped and nothing runs, ends them.
	jobs chan func()
	quit chan struct{}

	mu       sync.Mutex
	started  bool
	stopped  bool
	workers  int
	inflight sync.WaitGroup
}

// NewRPCServer returns a server for target, which needs a Topic and a Server.
func NewRPCServer(t *Transport, target Target, endpoints []Endpoint, opts *ServerOptions) (*RPCServer, error) {
	if target.Topic == "" || target.Server == "" {
		return nil, &ConfigError{Field: "Target", Value: fmt.Sprintf("%+v", target), Reason: "an RPC server needs a topic and a server name"}
	}
	n := 64
	if opts != nil && opts.Executor > 0 {
		n = opts.Executor
	}
	s := &RPCServer{t: t, target: target, endpoints: endpoints, sem: make(chan struct{}, n),
		jobs: make(chan func()), quit: make(chan struct{})}
	return s, nil
}

// Start attaches the server's links and serves until Stop. Links attach in the
// background; Ready reports when they are.
func (s *RPCServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("amqp1kit driver: RPC server already started")
	}
	s.started = true
	s.sub = &subscription{
		credit: s.t.opts.RPCServerCredit,
		addrs: func(a *Addresser) []string {
			return []string{a.Unicast(s.target, ServiceRPC), a.Multicast(s.target, ServiceRPC), a.Anycast(s.target, ServiceRPC)}
		},
		handle: s.handle,
	}
	return s.t.subscribe(s.sub)
}

// Ready is closed once the server's links are attached on a connection (the
// intermediary may still need a moment to route to them); nil before Start.
func (s *RPCServer) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil {
		return nil
	}
	return s.sub.ready
}

// Stop detaches the links (no new requests arrive) and waits for the methods running
// to finish and their replies to be sent, up to ctx. A request that arrives while the
// server stops is released (given back to the intermediary) rather than run.
func (s *RPCServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	s.t.unsubscribe(s.sub)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(s.quit); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *RPCServer) handle(c *connection, r *amqp.Receiver, m *amqp.Message) {
	ctx := context.Background()
	// oslo acknowledges a request when its executor picks it up, before dispatching
	// it. A request that cannot be parsed is acknowledged (and dropped) too.
	accepted := false
	defer func() {
		if !accepted {
			_ = r.AcceptMessage(ctx, m)
		}
	}()
	text, hasBody, err := bodyText(m)
	if err != nil || !hasBody {
		s.t.log.Warn("dropping an RPC request without a JSON body", "err", err)
		return
	}
	req, cmt, err := decodeRequest(text)
	if err != nil {
		s.t.log.Warn("dropping a malformed RPC request", "err", err)
		return
	}
	var replyTo string
	var msgIDRaw any
	if m.Properties != nil {
		if m.Properties.ReplyTo != nil {
			replyTo = *m.Properties.ReplyTo
		}
		msgIDRaw = m.Properties.MessageID
	}
	s.mu.Lock()
	if s.stopped {
		// Arrived while stopping: given back (released), so that through a router the
		// caller's driver sends it again, to another server if there is one.
		s.mu.Unlock()
		accepted = true
		_ = r.ReleaseMessage(ctx, m)
		s.t.log.Info("RPC server stopping: released a request", "method", req.Method)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	s.sem <- struct{}{}
	accepted = true
	_ = r.AcceptMessage(ctx, m)
	s.run(func() {
		defer func() { <-s.sem; s.inflight.Done() }()
		var stopHB func()
		if replyTo != "" && cmt >= 2 {
			stopHB = s.heartbeats(replyTo, msgIDRaw, cmt)
		}
		result, rerr := s.dispatch(ctx, req)
		if stopHB != nil {
			stopHB()
		}
		if replyTo == "" {
			if rerr != nil {
				s.t.log.Info("RPC cast raised", "method", req.Method, "err", rerr)
			}
			return
		}
		s.reply(replyTo, msgIDRaw, result, rerr)
	})
}

// run runs a request's job (which holds a slot of s.sem) on an idle worker goroutine,
// or on a new one while there are fewer workers than slots. Workers stay until the
// server has stopped (or the transport is closed), so that a request does not pay for
// a new goroutine and for growing its stack to what a method and a reply need. With
// every worker started and a slot held by this job, one worker is idle or about to be.
func (s *RPCServer) run(job func()) {
	select {
	case s.jobs <- job:
		return
	default:
	}
	s.mu.Lock()
	if s.workers < cap(s.sem) {
		s.workers++
		s.mu.Unlock()
		go s.worker(job)
		return
	}
	s.mu.Unlock()
	select {
	case s.jobs <- job:
	case <-s.t.stop:
		go job() // the workers are leaving with the transport
	}
}

// worker runs job, then the jobs handed to it, until the server stops.
func (s *RPCServer) worker(job func()) {
	for {
		job()
		select {
		case job = <-s.jobs:
		case <-s.quit:
			return
		case <-s.t.stop:
			return
		}
	}
}

// dispatch finds the endpoint and method as oslo's RPCDispatcher does.
func (s *RPCServer) dispatch(ctx context.Context, req *Request) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.t.log.Error("RPC method panicked", "method", req.Method, "panic", r, "stack", string(debug.Stack()))
			err = &RemoteError{Module: "builtins", Class: "RuntimeError", Message: fmt.Sprintf("panic in %s: %v", req.Method, r)}
		}
	}()
	versionMatched := false
	for _, ep := range s.endpoints {
		epVersion := ep.Version
		if epVersion == "" {
			epVersion = "1.0"
		}
		if ep.Namespace != req.Namespace || !versionCompatible(epVersion, req.Version) {
			continue
		}
		versionMatched = true
		if m := ep.Methods[req.Method]; m != nil {
			return m(ctx, req)
		}
	}
	if versionMatched {
		return nil, &RemoteError{Module: "oslo_messaging.rpc.dispatcher", Class: "NoSuchMethod",
			Message: fmt.Sprintf("Endpoint does not support RPC method %s", req.Method), Args: []any{req.Method}}
	}
	return nil, &RemoteError{Module: "oslo_messaging.rpc.dispatcher", Class: "UnsupportedVersion",
		Message: fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", req.Version, req.Method),
		Args:    []any{req.Version}, Kwargs: map[string]any{"method": req.Method}}
}

// versionCompatible is oslo's utils.version_is_compatible: same major, and the
// endpoint's minor at least the request's.
func versionCompatible(have, want string) bool {
	hMaj, hMin, hRev := splitVersion(have)
	wMaj, wMin, wRev := splitVersion(want)
	if hMaj != wMaj {
		return false
	}
	if hMin != wMin {
		return hMin > wMin
	}
	return hRev >= wRev
}

func splitVersion(v string) (int, int, int) {
	// As strings.SplitN(v, ".", 3) with each part through strconv.Atoi (0 when it
	// is not a number), without allocating.
	atoi := func(s string) int {
		if s == "" {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0
		}
		return n
	}
	major, rest, _ := strings.Cut(v, ".")
	minor, rev, _ := strings.Cut(rest, ".")
	return atoi(major), atoi(minor), atoi(rev)
}

// reply sends the result or the failure to the caller's reply address.
func (s *RPCServer) reply(replyTo string, corr any, result any, rerr error) {
	var body string
	var err error
	if rerr != nil {
		var re *RemoteError
		if !errors.As(rerr, &re) {
			re = &RemoteError{Module: "builtins", Class: "RuntimeError", Message: rerr.Error()}
		}
		body, err = marshalFailure(re)
	} else {
		body, err = marshalReply(result)
	}
	if err != nil {
		re := &RemoteError{Module: "builtins", Class: "TypeError", Message: fmt.Sprintf("the result cannot be serialised: %v", err)}
		body, _ = marshalFailure(re)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.t.opts.DefaultReplyTimeout)
	defer cancel()
	_, err = s.t.send(ctx, &outgoing{
		to:            replyTo,
		body:          body,
		correlationID: corr,
		presettled:    s.t.opts.preSettledFor("rpc-reply"),
		retry:         s.t.opts.DefaultReplyRetry,
	})
	if err != nil {
		s.t.log.Warn("sending an RPC reply failed", "reply_to", replyTo, "err", err)
	}
}

// heartbeats sends a body-less, pre-settled message to the caller every half of the
// call-monitor timeout while the method runs (oslo's RPCMonitoredCallTask peer).
func (s *RPCServer) heartbeats(replyTo string, corr any, cmt float64) func() {
	// Python: int(cmt) / 2 seconds (a float division), none below 1 s.
	interval := time.Duration(float64(int(cmt)) / 2 * float64(time.Second))
	if interval < time.Second {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			_, _ = s.t.send(ctx, &outgoing{
				to:            replyTo,
				ttl:           time.Duration(cmt * float64(time.Second)),
				correlationID: corr,
				presettled:    true,
				retry:         0,
			})
			cancel()
		}
	}()
	return func() { close(stop); <-done }
}
