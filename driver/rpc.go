package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// ClientOptions configure an RPCClient.
type ClientOptions struct {
	// Timeout bounds a call: sending, the intermediary's acknowledgement and the
	// reply. Default: the transport's rpc_response_timeout (60 s).
	Timeout time.Duration
	// Retry is how often a send may be tried again after the intermediary released it
	// or the connection failed before it was written. nil: no limit (oslo's default).
	Retry *int
	// CallMonitorTimeout asks the server for heartbeats every half of it while the
	// method runs; the call fails if none arrives for this long. Zero: off.
	CallMonitorTimeout time.Duration
}

// RPCClient invokes methods on RPC servers, as oslo_messaging.RPCClient.
type RPCClient struct {
	t      *Transport
	target Target
	opts   ClientOptions
}

// NewRPCClient returns a client for target on t. A target with Server set addresses
// that server, with Fanout set every server of the topic (casts only), otherwise any
// one server of the topic.
func NewRPCClient(t *Transport, target Target, opts *ClientOptions) *RPCClient {
	c := &RPCClient{t: t, target: target}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = t.opts.RPCResponseTimeout
	}
	return c
}

// Prepare returns a copy of the client with another target, as oslo's prepare().
func (c *RPCClient) Prepare(target Target) *RPCClient {
	cp := *c
	cp.target = target
	return &cp
}

// Target returns the client's target.
func (c *RPCClient) Target() Target { return c.target }

func (c *RPCClient) retry() int {
	if c.opts.Retry == nil {
		return -1
	}
	return *c.opts.Retry
}

// Cast invokes method without waiting for a result. With the default options it is
// sent pre-settled, so it returns once written.
func (c *RPCClient) Cast(ctx context.Context, rpcCtx map[string]any, method string, args map[string]any) error {
	body, err := marshalRequest(rpcCtx, c.message(method, args), 0)
	if err != nil {
		return opError("cast "+method, err)
	}
	ctx, cancel := withDefaultTimeout(ctx, c.t.opts.DefaultSendTimeout)
	defer cancel()
	_, err = c.t.send(ctx, &outgoing{
		target:     c.target,
		service:    ServiceRPC,
		body:       body,
		presettled: c.t.opts.preSettledFor("rpc-cast"),
		retry:      c.retry(),
	})
	if err != nil {
		return opError("cast "+method, err)
	}
	return nil
}

func (c *RPCClient) message(method string, args map[string]any) rpcMessage {
	return rpcMessage{Method: method, Args: args, Namespace: c.target.Namespace, Version: c.target.Version}
}

// Call invokes method and returns its JSON result. A method that raised gives a
// *RemoteError; no reply in time gives an error wrapping ErrTimeout; a refused send
// one wrapping ErrDeliveryFailure.
func (c *RPCClient) Call(ctx context.Context, rpcCtx map[string]any, method string, args map[string]any) (json.RawMessage, error) {
	if c.target.Fanout {
		return nil, &ConfigError{Field: "Target.Fanout", Reason: "a call cannot go to every server: use Cast"}
	}
	cmt := c.opts.CallMonitorTimeout
	body, err := marshalRequest(rpcCtx, c.message(method, args), cmt.Seconds())
	if err != nil {
		return nil, opError("call "+method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	// The request goes out through the send loop (Transport.send), which registers
	// the pending call of each attempt on its connection and returns the one that
	// the intermediary accepted; then the reply comes to that connection's reply
	// link (connection.replyLoop) and is handed to the pending call.
	pc, err := c.t.send(ctx, &outgoing{
		target:        c.target,
		service:       ServiceRPC,
		body:          body,
		ttl:           c.opts.Timeout,
		call:          true,
		presettled:    c.t.opts.preSettledFor("rpc-call"),
		retry:         c.retry(),
		callerTimeout: true,
	})
	if err != nil {
		return nil, opError("call "+method, err)
	}
	res, err := pc.wait(ctx, cmt)
	pc.conn.unregister(pc.id)
	if err != nil {
		return nil, opError("call "+method, err)
	}
	return res, nil
}

// CallInto is Call with the result decoded into out.
func (c *RPCClient) CallInto(ctx context.Context, rpcCtx map[string]any, method string, args map[string]any, out any) error {
	raw, err := c.Call(ctx, rpcCtx, method, args)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return opError("call "+method, &driverError{msg: "decoding the result", err: err})
	}
	return nil
}

// withDefaultTimeout bounds a send by the driver's deadline for its kind
// (default_send_timeout, default_notify_timeout), as Python does whatever the caller;
// a ctx that ends earlier ends it earlier.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// pendingCall waits for the reply (and heartbeats) of one call attempt.
type pendingCall struct {
	conn *connection
	id   string // the request's message-id, the reply's correlation-id
	ch   chan *amqp.Message
	errc chan error
	once sync.Once
}

func (c *connection) register(id string) *pendingCall {
	pc := &pendingCall{conn: c, id: id, ch: make(chan *amqp.Message, 8), errc: make(chan error, 1)}
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		pc.fail(errConnLost)
		return pc
	}
	c.calls[id] = pc
	c.mu.Unlock()
	return pc
}

func (c *connection) unregister(id string) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

func (pc *pendingCall) fail(err error) {
	pc.once.Do(func() { pc.errc <- err })
}

// wait returns the reply's result; heartbeats (messages without a body) restart the
// call-monitor timer.
func (pc *pendingCall) wait(ctx context.Context, monitor time.Duration) (json.RawMessage, error) {
	var monitorC <-chan time.Time
	var timer *time.Timer
	if monitor > 0 {
		timer = time.NewTimer(monitor)
		defer timer.Stop()
		monitorC = timer.C
	}
	for {
		select {
		case m := <-pc.ch:
			text, hasBody, err := bodyText(m)
			if err != nil {
				return nil, &driverError{kind: ErrDeliveryFailure, msg: "bad reply", err: err}
			}
			if !hasBody {
				if timer != nil {
					timer.Reset(monitor)
				}
				continue
			}
			return unmarshalReply(text)
		case err := <-pc.errc:
			// The connection is gone; wait out the deadline as Python's caller does
			// (its reply address no longer exists).
			select {
			case <-ctx.Done():
				return nil, &driverError{kind: ErrTimeout, msg: "no reply in time", err: err}
			case m := <-pc.ch:
				pc.ch <- m
				continue
			}
		case <-monitorC:
			return nil, &driverError{kind: ErrTimeout, msg: fmt.Sprintf("call monitor timed out: no heartbeat for %v", monitor)}
		case <-ctx.Done():
			return nil, &driverError{kind: ErrTimeout, msg: "no reply in time"}
		}
	}
}

// replyLoop hands replies to their calls: accepted when a call waits for them,
// modified (failed, undeliverable) when none does (a late or duplicate reply), as
// Python's Replies.message_received.
func (c *connection) replyLoop() {
	defer c.t.wg.Done()
	ctx := context.Background()
	for {
		m, err := c.reply.Receive(ctx, nil)
		if err != nil {
			select {
			case <-c.conn.Done():
			default:
				// The peer detached the reply link: without it no reply can arrive,
				// so reconnect, as Python's _reply_link_down does.
				c.t.log.Warn("the reply link was detached by the peer; reconnecting", "host", c.host.Address(), "err", err)
				c.conn.Close()
			}
			return
		}
		id := ""
		if m.Properties != nil && m.Properties.CorrelationID != nil {
			if s, ok := m.Properties.CorrelationID.(string); ok {
				id = s
			}
		}
		c.mu.Lock()
		pc := c.calls[id]
		c.mu.Unlock()
		if pc == nil {
			_ = c.reply.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true, UndeliverableHere: true})
			continue
		}
		_ = c.reply.AcceptMessage(ctx, m)
		select {
		case pc.ch <- m:
		default: // a flood of heartbeats; the reply itself still fits eventually
		}
	}
}
