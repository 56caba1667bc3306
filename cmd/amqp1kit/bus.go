package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/driver"
)

// Default transport URLs, as the deployment guide deploys the intermediaries (and as
// serve serves the fakes): the router for RPC, the broker for notifications.
const (
	defaultRPCURL    = "amqp://127.0.0.1:5672"
	defaultNotifyURL = "amqp://127.0.0.1:5673"
)

// usageError is bad input found after kong has parsed the arguments (a transport URL
// or TLS file the driver refuses). run exits 2 for it, as for kong's own usage errors.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// connFlags are the flags of every command that talks to a bus. The ${default_url}
// of the help is set by the embedding command (RPC or notifications).
type connFlags struct {
	URL     string        `name:"url" placeholder:"URL" help:"Transport URL (amqp://[user:pass@]host:port[,host:port...][/vhost][?option=value]). Default: the --config file's, else ${default_url}."`
	Config  string        `name:"config" type:"existingfile" placeholder:"FILE" help:"An oslo.messaging configuration file (nova.conf and the like): its transport_url and [oslo_messaging_amqp] options."`
	Timeout time.Duration `name:"timeout" default:"30s" help:"How long to wait (connecting included)."`
	Verbose bool          `short:"v" help:"Log connection events to stderr."`

	// Resolved by resolve, from Validate.
	url     string         `kong:"-"`
	opts    driver.Options `kong:"-"`
	unknown []string       `kong:"-"`
}

// resolve works out the transport URL and options: --url, else the config file's
// (its notification transport_url for notifications, as oslo's notifier reads it),
// else the default. A URL or option the driver refuses is reported here, naming it.
func (f *connFlags) resolve(notify bool) error {
	if f.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive (got %s)", f.Timeout)
	}
	f.opts = driver.DefaultOptions()
	fileURL := ""
	if f.Config != "" {
		cfg, err := driver.LoadConfig(f.Config)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		f.opts, f.unknown, fileURL = cfg.Options, cfg.Unknown, cfg.TransportURL
		if notify && cfg.NotificationTransportURL != "" {
			fileURL = cfg.NotificationTransportURL
		}
	}
	switch {
	case f.URL != "":
		f.url = f.URL
	case fileURL != "":
		f.url = fileURL
	case notify:
		f.url = defaultNotifyURL
	default:
		f.url = defaultRPCURL
	}
	u, err := driver.ParseTransportURL(f.url)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	o := f.opts
	if err := u.ApplyQuery(&o); err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	return nil
}

// transport opens a driver transport on the resolved URL (the connection opens on first
// use). A *driver.ConfigError (a TLS file that does not load) is a usage error.
func (f *connFlags) transport(stderr io.Writer) (*driver.Transport, error) {
	for _, k := range f.unknown {
		fmt.Fprintf(stderr, "amqp1kit: warning: %s: %s is not an option there (ignored)\n", f.Config, k)
	}
	logger := slog.New(slog.DiscardHandler)
	if f.Verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	opts := f.opts
	t, err := driver.NewTransport(f.url, &driver.TransportOptions{Options: &opts, Logger: logger})
	if err != nil {
		var ce *driver.ConfigError
		if errors.As(err, &ce) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return t, nil
}

// open opens a transport and its connection (see connect); the caller closes the
// transport.
func (f *connFlags) open(ctx context.Context, stderr io.Writer) (*driver.Transport, *driver.Addresser, error) {
	t, err := f.transport(stderr)
	if err != nil {
		return nil, nil, err
	}
	a, err := connect(ctx, t, f.Timeout)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, a, nil
}

// connect opens the connection within the timeout, so that an unreachable
// intermediary is reported as such (with the last dial error) rather than as a
// timeout of what comes next.
func connect(ctx context.Context, t *driver.Transport, timeout time.Duration) (*driver.Addresser, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a, err := t.Addresser(cctx)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s within %s: %w", t.URL().Redacted(), timeout, err)
	}
	return a, nil
}

// targetFlags choose an RPC target beside its topic.
type targetFlags struct {
	Exchange  string `placeholder:"NAME" help:"Exchange of the target (default: control_exchange, or for routable addresses default_rpc_exchange)."`
	Server    string `placeholder:"NAME" help:"Send to this server of the topic only."`
	Namespace string `placeholder:"NAME" help:"Endpoint namespace."`
	Version   string `name:"version" placeholder:"X.Y" help:"Requested API version."`
}

func (f targetFlags) target(topic string) driver.Target {
	return driver.Target{Topic: topic, Exchange: f.Exchange, Server: f.Server, Namespace: f.Namespace, Version: f.Version}
}

// parseObject reads a JSON object (the method's keyword arguments, or a request
// context); the values stay JSON, so that numbers and strings travel as written.
func parseObject(what, s string) (map[string]any, error) {
	if s == "" {
		return map[string]any{}, nil
	}
	if !json.Valid([]byte(s)) {
		var v any
		err := json.Unmarshal([]byte(s), &v)
		return nil, fmt.Errorf("%s: invalid JSON: %v", what, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%s: must be a JSON object ({\"name\": value, ...}), got %s", what, jsonKind(s))
	}
	m := make(map[string]any, len(raw))
	for k, v := range raw {
		m[k] = v
	}
	return m, nil
}

func jsonKind(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "["):
		return "an array"
	case strings.HasPrefix(s, `"`):
		return "a string"
	case s == "null":
		return "null"
	case s == "true" || s == "false":
		return "a boolean"
	default:
		return "a number"
	}
}

// rpcFlags are what call and cast share.
type rpcFlags struct {
	connFlags `embed:"" set:"default_url=amqp://127.0.0.1:5672"`
	targetFlags
	Context string `name:"context" placeholder:"JSON" help:"Request context, a JSON object (oslo's ctxt: request_id, user, ...)."`

	Topic  string `arg:"" help:"RPC topic."`
	Method string `arg:"" help:"Method name."`
	Args   string `arg:"" name:"json-args" optional:"" help:"Keyword arguments, a JSON object."`

	args, ctxt map[string]any `kong:"-"`
}

func (c *rpcFlags) validate() error {
	if err := c.resolve(false); err != nil {
		return err
	}
	var err error
	if c.args, err = parseObject("JSON-ARGS", c.Args); err != nil {
		return err
	}
	if c.ctxt, err = parseObject("--context", c.Context); err != nil {
		return err
	}
	return nil
}

type callCmd struct {
	rpcFlags
	Traceback bool `help:"Print the server's traceback of a remote exception."`
}

func (c *callCmd) Validate() error { return c.validate() }

func (c *callCmd) Run(ctx context.Context, kctx *kong.Context) error {
	t, _, err := c.open(ctx, kctx.Stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	client := driver.NewRPCClient(t, c.target(c.Topic), &driver.ClientOptions{Timeout: c.Timeout})
	result, err := client.Call(ctx, c.ctxt, c.Method, c.args)
	var remote *driver.RemoteError
	switch {
	case errors.As(err, &remote):
		if c.Traceback {
			for _, line := range remote.Traceback {
				fmt.Fprint(kctx.Stderr, strings.TrimSuffix(line, "\n")+"\n")
			}
		}
		return fmt.Errorf("remote exception %s.%s: %s", remote.Module, remote.Class, remote.Message)
	case errors.Is(err, driver.ErrTimeout):
		return fmt.Errorf("call %s on topic %s: no reply within %s: %w", c.Method, c.Topic, c.Timeout, err)
	case err != nil:
		return fmt.Errorf("call %s on topic %s: %w", c.Method, c.Topic, err)
	}
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	fmt.Fprintf(kctx.Stdout, "%s\n", result)
	return nil
}

type castCmd struct {
	rpcFlags
	Fanout bool `help:"Send to every server of the topic."`
}

func (c *castCmd) Validate() error { return c.validate() }

func (c *castCmd) Run(ctx context.Context, kctx *kong.Context) error {
	t, _, err := c.open(ctx, kctx.Stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	target := c.target(c.Topic)
	target.Fanout = c.Fanout
	sctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	client := driver.NewRPCClient(t, target, &driver.ClientOptions{Timeout: c.Timeout})
	if err := client.Cast(sctx, c.ctxt, c.Method, c.args); err != nil {
		return fmt.Errorf("cast %s on topic %s: %w", c.Method, c.Topic, err)
	}
	return nil
}

type notifyCmd struct {
	connFlags   `embed:"" set:"default_url=amqp://127.0.0.1:5673"`
	Priority    string `default:"info" enum:"audit,debug,info,warn,error,critical,sample" help:"Priority: audit, debug, info, warn, error, critical or sample."`
	PublisherID string `name:"publisher-id" default:"amqp1kit" placeholder:"ID" help:"Publisher id (compute.host1 and the like)."`
	Context     string `name:"context" placeholder:"JSON" help:"Request context, a JSON object."`
	V1          bool   `name:"v1" help:"Send the raw notification (oslo's messaging driver) instead of the 2.0 envelope (messagingv2)."`

	Topic     string `arg:"" help:"Notification topic (notifications, versioned_notifications, ...); the message goes to TOPIC.PRIORITY."`
	EventType string `arg:"" name:"event-type" help:"Event type (compute.instance.create.end and the like)."`
	Payload   string `arg:"" name:"json-payload" optional:"" help:"Payload, any JSON value. Default: {}."`

	ctxt map[string]any `kong:"-"`
}

func (c *notifyCmd) Validate() error {
	if err := c.resolve(true); err != nil {
		return err
	}
	if c.Payload == "" {
		c.Payload = "{}"
	}
	if !json.Valid([]byte(c.Payload)) {
		var v any
		err := json.Unmarshal([]byte(c.Payload), &v)
		return fmt.Errorf("JSON-PAYLOAD: invalid JSON: %v", err)
	}
	var err error
	c.ctxt, err = parseObject("--context", c.Context)
	return err
}

func (c *notifyCmd) Run(ctx context.Context, kctx *kong.Context) error {
	t, _, err := c.open(ctx, kctx.Stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	sctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	n := driver.NewNotifier(t, &driver.NotifierOptions{PublisherID: c.PublisherID, Topics: []string{c.Topic}, V1: c.V1})
	if err := n.Notify(sctx, c.ctxt, driver.Priority(c.Priority), c.EventType, json.RawMessage(c.Payload)); err != nil {
		return err
	}
	return nil
}

type listenCmd struct {
	connFlags  `embed:"" set:"default_url=amqp://127.0.0.1:5673"`
	Count      int      `placeholder:"N" help:"Stop after N notifications (default: until interrupted)."`
	Pool       string   `placeholder:"NAME" help:"Listener pool (over AMQP 1.0 every listener of a topic already competes for its notifications)."`
	Priorities []string `name:"priority" placeholder:"P" enum:"audit,debug,info,warn,error,critical,sample" help:"Listen to these priorities only (repeatable; default: all)."`

	Topics []string `arg:"" name:"topic" help:"Notification topics (notifications, versioned_notifications, ...)."`
}

func (c *listenCmd) Validate() error {
	if c.Count < 0 {
		return fmt.Errorf("--count must not be negative (got %d)", c.Count)
	}
	return c.resolve(true)
}

// notificationLine is one line of listen's output: the arguments of an oslo
// notification endpoint's method (ctxt, publisher_id, event_type, payload, metadata)
// and the priority.
type notificationLine struct {
	Priority    driver.Priority `json:"priority"`
	PublisherID string          `json:"publisher_id"`
	EventType   string          `json:"event_type"`
	Payload     json.RawMessage `json:"payload"`
	Ctxt        map[string]any  `json:"ctxt"`
	Metadata    struct {
		MessageID string `json:"message_id"`
		Timestamp string `json:"timestamp"`
	} `json:"metadata"`
}

func (c *listenCmd) Run(ctx context.Context, kctx *kong.Context) error {
	t, _, err := c.open(ctx, kctx.Stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	var priorities []driver.Priority
	for _, p := range c.Priorities {
		priorities = append(priorities, driver.Priority(p))
	}
	targets := make([]driver.Target, len(c.Topics))
	for i, topic := range c.Topics {
		targets[i] = driver.Target{Topic: topic}
	}
	var (
		mu       sync.Mutex
		received int
		done     = make(chan struct{})
	)
	enc := json.NewEncoder(kctx.Stdout)
	handler := func(_ context.Context, n *driver.Notification) driver.Result {
		mu.Lock()
		defer mu.Unlock()
		if c.Count > 0 && received >= c.Count {
			return driver.Requeue // not ours: give it back for another listener
		}
		line := notificationLine{Priority: n.Priority, PublisherID: n.PublisherID, EventType: n.EventType, Payload: n.Payload, Ctxt: n.Context}
		if len(line.Payload) == 0 {
			line.Payload = json.RawMessage("null")
		}
		line.Metadata.MessageID, line.Metadata.Timestamp = n.MessageID, n.Timestamp
		_ = enc.Encode(line)
		received++
		if c.Count > 0 && received == c.Count {
			close(done)
		}
		return driver.Handled
	}
	// One handler at a time: lines come out in arrival order.
	l, err := driver.NewListener(t, targets, handler, &driver.ListenerOptions{
		Priorities: priorities, Pool: c.Pool, AllowRequeue: true, Executor: 1,
	})
	if err != nil {
		return usageError{err}
	}
	if err := l.Start(); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Stop(sctx)
	}()
	select {
	case <-l.Ready():
	case <-ctx.Done():
		return nil
	case <-time.After(c.Timeout):
		return fmt.Errorf("the listener's links were not attached within %s", c.Timeout)
	}
	fmt.Fprintf(kctx.Stderr, "listening on %s at %s\n", strings.Join(c.Topics, ", "), t.URL().Redacted())
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none announced)"
	}
	return s
}
