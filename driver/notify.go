package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Priority is a notification priority.
type Priority string

// The priorities of oslo.messaging's Notifier.
const (
	PriorityAudit    Priority = "audit"
	PriorityDebug    Priority = "debug"
	PriorityInfo     Priority = "info"
	PriorityWarn     Priority = "warn"
	PriorityError    Priority = "error"
	PriorityCritical Priority = "critical"
	PrioritySample   Priority = "sample"
)

// allPriorities lists every priority, in oslo's order.
var allPriorities = [...]Priority{PriorityAudit, PriorityDebug, PriorityInfo, PriorityWarn, PriorityError, PriorityCritical, PrioritySample}

// Priorities returns every priority, in oslo's order (a new slice each time).
func Priorities() []Priority { return append([]Priority(nil), allPriorities[:]...) }

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// PublisherID names the sender, e.g. "compute.host1".
	PublisherID string
	// Topics to publish on. Default: ["notifications"].
	Topics []string
	// Retry after a release or a failed connection. nil: no limit (oslo's -1).
	Retry *int
	// V1 sends the raw notification dict (oslo's "messaging" driver) instead of the
	// oslo.version 2.0 envelope ("messagingv2", the default).
	V1 bool
}

// Notifier publishes notifications, as oslo_messaging.Notifier with the messagingv2
// driver. Unlike Python's notifier, which logs and swallows send errors, Notify
// returns them.
type Notifier struct {
	t    *Transport
	opts NotifierOptions
}

// NewNotifier returns a notifier on t.
func NewNotifier(t *Transport, opts *NotifierOptions) *Notifier {
	n := &Notifier{t: t}
	if opts != nil {
		n.opts = *opts
	}
	if len(n.opts.Topics) == 0 {
		n.opts.Topics = []string{"notifications"}
	}
	return n
}

// Notify sends one notification on every topic: to "<topic>.<priority>".
func (n *Notifier) Notify(ctx context.Context, rpcCtx map[string]any, priority Priority, eventType string, payload any) error {
	if rpcCtx == nil {
		rpcCtx = map[string]any{}
	}
	notif := orderedMap{
		{"message_id", newUUID()},
		{"publisher_id", n.opts.PublisherID},
		{"event_type", eventType},
		{"priority", strings.ToUpper(string(priority))},
		{"payload", payload},
		{"timestamp", time.Now().UTC().Format("2006-01-02 15:04:05.000000")},
	}
	var request any = notif
	if !n.opts.V1 {
		inner, err := pyJSON(notif)
		if err != nil {
			return opError("notification", err)
		}
		request = orderedMap{{"oslo.version", "2.0"}, {"oslo.message", inner}}
	}
	body, err := pyJSON(orderedMap{{"request", request}, {"context", rpcCtx}})
	if err != nil {
		return opError("notification", err)
	}
	retry := -1
	if n.opts.Retry != nil {
		retry = *n.opts.Retry
	}
	ctx, cancel := withDefaultTimeout(ctx, n.t.opts.DefaultNotifyTimeout)
	defer cancel()
	var errs []error
	for _, topic := range n.opts.Topics {
		target := Target{Topic: topic + "." + strings.ToLower(string(priority))}
		_, err := n.t.send(ctx, &outgoing{
			target:     target,
			service:    ServiceNotify,
			body:       body,
			presettled: n.t.opts.preSettledFor("notify"),
			retry:      retry,
		})
		if err != nil {
			errs = append(errs, opError("notify "+eventType+" on "+target.Topic, err))
		}
	}
	return errors.Join(errs...)
}

// Audit sends a notification of priority audit.
func (n *Notifier) Audit(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityAudit, eventType, payload)
}

// Debug sends a notification of priority debug.
func (n *Notifier) Debug(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityDebug, eventType, payload)
}

// Info sends a notification of priority info.
func (n *Notifier) Info(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityInfo, eventType, payload)
}

// Warn sends a notification of priority warn.
func (n *Notifier) Warn(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityWarn, eventType, payload)
}

// Error sends a notification of priority error.
func (n *Notifier) Error(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityError, eventType, payload)
}

// Critical sends a notification of priority critical.
func (n *Notifier) Critical(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PriorityCritical, eventType, payload)
}

// Sample sends a notification of priority sample.
func (n *Notifier) Sample(ctx context.Context, rpcCtx map[string]any, eventType string, payload any) error {
	return n.Notify(ctx, rpcCtx, PrioritySample, eventType, payload)
}

// Notification is one received notification.
type Notification struct {
	// Context is the publisher's request context.
	Context map[string]any
	// PublisherID, EventType and Priority (lower case) as sent.
	PublisherID, EventType string
	Priority               Priority
	// Payload is the notification's payload, still JSON.
	Payload json.RawMessage
	// MessageID and Timestamp are the notification's own.
	MessageID, Timestamp string

	msg *amqp.Message
	rcv *amqp.Receiver
}

// Result is what a listener's handler decides for a notification.
type Result int

const (
	// Handled acknowledges the notification.
	Handled Result = iota
	// Requeue gives it back to the intermediary (a released disposition): a broker
	// delivers it again; through a router it goes back to the notifier.
	Requeue
)

// Handler handles one notification.
type Handler func(ctx context.Context, n *Notification) Result

// BatchHandler handles a batch of notifications; its result applies to all of them.
type BatchHandler func(ctx context.Context, batch []*Notification) Result

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	// Priorities to listen to. Default: all of them.
	Priorities []Priority
	// Pool names a pool of listeners sharing the notifications. Over AMQP 1.0 every
	// listener of a topic already competes for its messages (anycast), so a pool
	// changes nothing on the wire; the Python driver refuses pools outright.
	Pool string
	// AllowRequeue lets Requeue release a notification; without it Requeue is taken
	// as Handled, as oslo does.
	AllowRequeue bool
	// BatchSize and BatchTimeout make a batch listener: up to BatchSize
	// notifications, or what arrived within BatchTimeout, go to the handler at once.
	BatchSize    int
	BatchTimeout time.Duration
	// Executor bounds concurrent handlers. Default: 64.
	Executor int
}

// Listener receives notifications on targets (topics), as oslo's notification
// listener.
type Listener struct {
	t       *Transport
	targets []Target
	opts    ListenerOptions
	handler Handler
	batch   BatchHandler
	sub     *subscription
	sem     chan struct{}

	mu       sync.Mutex
	pending  []*Notification
	flush    *time.Timer
	stopped  bool
	inflight sync.WaitGroup
}

// NewListener returns a listener calling h for each notification.
func NewListener(t *Transport, targets []Target, h Handler, opts *ListenerOptions) (*Listener, error) {
	return newListener(t, targets, h, nil, opts)
}

// NewBatchListener returns a listener calling h with batches (BatchSize, default 10;
// BatchTimeout, default 1 s).
func NewBatchListener(t *Transport, targets []Target, h BatchHandler, opts *ListenerOptions) (*Listener, error) {
	return newListener(t, targets, nil, h, opts)
}

func newListener(t *Transport, targets []Target, h Handler, bh BatchHandler, opts *ListenerOptions) (*Listener, error) {
	if len(targets) == 0 {
		return nil, &ConfigError{Field: "targets", Reason: "a listener needs at least one target"}
	}
	l := &Listener{t: t, targets: targets, handler: h, batch: bh}
	if opts != nil {
		l.opts = *opts
	}
	if len(l.opts.Priorities) == 0 {
		l.opts.Priorities = Priorities()
	}
	for _, p := range l.opts.Priorities {
		if !validPriority(p) {
			return nil, &ConfigError{Field: "Priorities", Value: string(p), Reason: "unknown priority"}
		}
	}
	if bh != nil {
		if l.opts.BatchSize <= 0 {
			l.opts.BatchSize = 10
		}
		if l.opts.BatchTimeout <= 0 {
			l.opts.BatchTimeout = time.Second
		}
	}
	n := l.opts.Executor
	if n <= 0 {
		n = 64
	}
	l.sem = make(chan struct{}, n)
	return l, nil
}

func validPriority(p Priority) bool {
	for _, q := range allPriorities {
		if p == q {
			return true
		}
	}
	return false
}

// Start attaches one link per (target, priority).
func (l *Listener) Start() error {
	l.mu.Lock()
	if l.sub != nil {
		l.mu.Unlock()
		return errors.New("amqp1kit driver: listener already started")
	}
	sub := &subscription{
		credit: l.t.opts.NotifyServerCredit,
		addrs: func(a *Addresser) []string {
			var out []string
			for _, tg := range l.targets {
				for _, p := range l.opts.Priorities {
					out = append(out, a.Anycast(Target{Topic: tg.Topic + "." + string(p)}, ServiceNotify))
				}
			}
			return out
		},
		handle: l.handle,
	}
	l.sub = sub
	l.mu.Unlock()
	return l.t.subscribe(sub)
}

// Ready is closed once the listener's links are attached on a connection (nil
// before Start).
func (l *Listener) Ready() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sub == nil {
		return nil
	}
	return l.sub.ready
}

// Stop detaches the links and waits for running handlers, up to ctx. Notifications in
// an unfinished batch are released.
func (l *Listener) Stop(ctx context.Context) error {
	l.mu.Lock()
	if l.stopped || l.sub == nil {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, n := range pending {
		_ = n.rcv.ReleaseMessage(context.Background(), n.msg)
	}
	l.t.unsubscribe(l.sub)
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Listener) handle(c *connection, r *amqp.Receiver, m *amqp.Message) {
	n, err := parseNotification(m)
	if err != nil {
		// As Python, a notification that cannot be parsed is never settled.
		l.t.log.Warn("cannot parse a notification", "err", err)
		return
	}
	n.rcv = r
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		_ = r.ReleaseMessage(context.Background(), m)
		return
	}
	if l.batch == nil {
		l.inflight.Add(1)
		l.mu.Unlock()
	} else {
		l.pending = append(l.pending, n)
		var ready []*Notification
		if len(l.pending) >= l.opts.BatchSize {
			ready, l.pending = l.pending, nil
			if l.flush != nil {
				l.flush.Stop()
				l.flush = nil
			}
		} else if l.flush == nil {
			l.flush = time.AfterFunc(l.opts.BatchTimeout, l.flushBatch)
		}
		if ready != nil {
			l.inflight.Add(1)
		}
		l.mu.Unlock()
		if ready != nil {
			l.runBatch(ready)
		}
		return
	}
	l.sem <- struct{}{}
	go func() {
		defer func() { <-l.sem; l.inflight.Done() }()
		res := l.safeHandle(n)
		l.settle(n, res)
	}()
}

func (l *Listener) safeHandle(n *Notification) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			l.t.log.Error("notification handler panicked", "panic", r)
			res = Requeue
		}
	}()
	return l.handler(context.Background(), n)
}

func (l *Listener) flushBatch() {
	l.mu.Lock()
	ready := l.pending
	l.pending, l.flush = nil, nil
	if len(ready) > 0 {
		l.inflight.Add(1)
	}
	l.mu.Unlock()
	if len(ready) > 0 {
		l.runBatch(ready)
	}
}

// runBatch hands batch to the handler; the caller has counted it in l.inflight.
func (l *Listener) runBatch(batch []*Notification) {
	l.sem <- struct{}{}
	go func() {
		defer func() { <-l.sem; l.inflight.Done() }()
		res := func() (res Result) {
			defer func() {
				if r := recover(); r != nil {
					l.t.log.Error("batch handler panicked", "panic", r)
					res = Requeue
				}
			}()
			return l.batch(context.Background(), batch)
		}()
		for _, n := range batch {
			l.settle(n, res)
		}
	}()
}

// settle acknowledges (accepted) or requeues (released) as Python's listener does.
func (l *Listener) settle(n *Notification, res Result) {
	ctx := context.Background()
	if res == Requeue && l.opts.AllowRequeue {
		_ = n.rcv.ReleaseMessage(ctx, n.msg)
		return
	}
	_ = n.rcv.AcceptMessage(ctx, n.msg)
}

// parseNotification reads {"request": <notification or envelope>, "context": ...}.
func parseNotification(m *amqp.Message) (*Notification, error) {
	text, hasBody, err := bodyText(m)
	if err != nil {
		return nil, err
	}
	if !hasBody {
		return nil, errors.New("notification without a body")
	}
	rb, inner, err := unmarshalRequest(text)
	if err != nil {
		return nil, err
	}
	var d struct {
		MessageID   string          `json:"message_id"`
		PublisherID string          `json:"publisher_id"`
		EventType   string          `json:"event_type"`
		Priority    string          `json:"priority"`
		Payload     json.RawMessage `json:"payload"`
		Timestamp   string          `json:"timestamp"`
	}
	if err := json.Unmarshal(inner, &d); err != nil {
		return nil, fmt.Errorf("notification is not a JSON object: %w", err)
	}
	n := &Notification{
		PublisherID: d.PublisherID, EventType: d.EventType, Priority: Priority(strings.ToLower(d.Priority)),
		Payload: d.Payload, MessageID: d.MessageID, Timestamp: d.Timestamp, msg: m,
	}
	_ = json.Unmarshal(rb.Context, &n.Context)
	return n, nil
}
