// Package qdmanagement is a client of the AMQP management protocol that Qpid Dispatch
// Router (qdrouterd) answers at its $management node, the one its qdstat and qdmanage
// tools speak: request messages whose application-properties name an operation (QUERY,
// READ, GET-TYPES, ...), an entity type and an entity, answered at the request's
// reply-to with a statusCode, a statusDescription and a body. It works against
// qdrouterd and against amqp1kit's fake router alike.
//
//	c, err := qdmanagement.Dial(ctx, "amqp://127.0.0.1:5672", nil)
//	...
//	defer c.Close()
//	links, err := c.Query(ctx, qdmanagement.TypeLink, "linkDir", "owningAddr", "creditAvailable")
//	for _, l := range links.Maps() { ... }
//
// A client sends one request at a time (a Client is safe for concurrent use: requests
// wait their turn). Query pages through long tables as qdmanage does.
package qdmanagement

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	amqp "github.com/Azure/go-amqp"
)

// DefaultNode is the address of a router's management node.
const DefaultNode = "$management"

// DefaultPageSize is how many rows Query asks for in one request, as qdmanage does.
const DefaultPageSize = 500

// Entity types of qdrouterd's management schema (org.apache.qpid.dispatch.*): the
// ones its tools show.
const (
	TypeManagement    = "org.amqp.management" // the management node itself
	TypeRouter        = "org.apache.qpid.dispatch.router"
	TypeConnection    = "org.apache.qpid.dispatch.connection"
	TypeLink          = "org.apache.qpid.dispatch.router.link"
	TypeAddress       = "org.apache.qpid.dispatch.router.address"
	TypeConfigAddress = "org.apache.qpid.dispatch.router.config.address"
	TypeLinkRoute     = "org.apache.qpid.dispatch.router.config.linkRoute"
	TypeAutoLink      = "org.apache.qpid.dispatch.router.config.autoLink"
	TypeListener      = "org.apache.qpid.dispatch.listener"
	TypePolicy        = "org.apache.qpid.dispatch.policy"
)

// Options configure a Client. A nil *Options means all defaults.
type Options struct {
	// Node is the management node's address. Default: DefaultNode; another router's
	// node is "_topo/0/ROUTER-ID/$management".
	Node string
	// Conn are the options Dial connects with (SASL, TLS, container id). Default:
	// go-amqp's (SASL skipped, as qdstat connects).
	Conn *amqp.ConnOptions
	// PageSize is how many rows Query asks for per request. Default: DefaultPageSize.
	PageSize int
}

// Client sends management requests over one AMQP connection: a sender to the
// management node and a receiver on a dynamic address for the responses.
type Client struct {
	conn     *amqp.Conn
	ownConn  bool
	sess     *amqp.Session
	snd      *amqp.Sender
	rcv      *amqp.Receiver
	reply    string
	pageSize int

	mu  sync.Mutex // one request at a time
	seq uint64
}

// Dial connects to url (amqp://host:port) and opens a client on the connection; Close
// closes both.
func Dial(ctx context.Context, url string, opts *Options) (*Client, error) {
	var co *amqp.ConnOptions
	if opts != nil {
		co = opts.Conn
	}
	conn, err := amqp.Dial(ctx, url, co)
	if err != nil {
		return nil, fmt.Errorf("qdmanagement: %w", err)
	}
	c, err := New(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.ownConn = true
	return c, nil
}

// New opens a client on an open connection, in a session of its own; Close leaves the
// connection open.
func New(ctx context.Context, conn *amqp.Conn, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Node == "" {
		o.Node = DefaultNode
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("qdmanagement: session: %w", err)
	}
	c := &Client{conn: conn, sess: sess, pageSize: o.PageSize}
	if c.rcv, err = sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 10}); err != nil {
		sess.Close(ctx)
		return nil, fmt.Errorf("qdmanagement: reply receiver: %w", err)
	}
	c.reply = c.rcv.Address()
	if c.snd, err = sess.NewSender(ctx, o.Node, nil); err != nil {
		sess.Close(ctx)
		return nil, fmt.Errorf("qdmanagement: sender to %s: %w", o.Node, err)
	}
	return c, nil
}

// Close closes the client's links and session, and its connection if Dial made it.
func (c *Client) Close() error {
	ctx := context.Background()
	err := c.sess.Close(ctx)
	if c.ownConn {
		err = errors.Join(err, c.conn.Close())
	}
	return err
}

// PeerProperties returns the properties the router announced in its open frame
// (qdrouterd: product, version, qd.conn-id).
func (c *Client) PeerProperties() map[string]any { return c.conn.Properties() }

// ReplyTo returns the client's reply address (the router names it).
func (c *Client) ReplyTo() string { return c.reply }

// Request is a management request. Operation is required; the other fields go into
// the application-properties when they are not empty.
type Request struct {
	Operation string
	// Type, Name and Identity address an entity (READ, UPDATE, DELETE) or, with Name
	// "self" and Type TypeManagement, the management node.
	Type, Name, Identity string
	// EntityType selects the entities of a node operation (QUERY, GET-TYPES, ...).
	EntityType string
	// Properties are further application-properties (offset and count, for example).
	Properties map[string]any
	// Body is the request's body (an amqp-value); nil sends an empty map, as qdmanage.
	Body any
}

// Response is a management response.
type Response struct {
	// StatusCode is an HTTP-like code: 2xx is success.
	StatusCode int
	// StatusDescription is the router's text ("OK", or what went wrong).
	StatusDescription string
	// Properties are the response's application-properties.
	Properties map[string]any
	// Body is the decoded body: maps with text keys are map[string]any, lists []any.
	Body any
}

// StatusError is a response whose status is not 2xx.
type StatusError struct {
	Operation   string
	Code        int
	Description string
}

// Error says which operation failed and how.
func (e *StatusError) Error() string {
	return fmt.Sprintf("qdmanagement: %s: %d %s", e.Operation, e.Code, e.Description)
}

// Call sends a request and returns the response whatever its status.
func (c *Client) Call(ctx context.Context, r Request) (*Response, error) {
	if r.Operation == "" {
		return nil, errors.New("qdmanagement: a request needs an operation")
	}
	props := map[string]any{"operation": r.Operation}
	for k, v := range map[string]string{"type": r.Type, "name": r.Name, "identity": r.Identity, "entityType": r.EntityType} {
		if v != "" {
			props[k] = v
		}
	}
	for k, v := range r.Properties {
		props[k] = v
	}
	body := r.Body
	if body == nil {
		body = map[string]any{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	corr := c.seq
	reply := c.reply
	msg := &amqp.Message{
		Properties:            &amqp.MessageProperties{ReplyTo: &reply, CorrelationID: corr},
		ApplicationProperties: props,
		Value:                 body,
	}
	if err := c.snd.Send(ctx, msg, nil); err != nil {
		return nil, fmt.Errorf("qdmanagement: %s: send: %w", r.Operation, err)
	}
	for {
		m, err := c.rcv.Receive(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("qdmanagement: %s: waiting for the response: %w", r.Operation, err)
		}
		_ = c.rcv.AcceptMessage(ctx, m)
		if m.Properties == nil || !sameCorrelation(m.Properties.CorrelationID, corr) {
			continue // a late response to a request given up on
		}
		resp := &Response{Properties: m.ApplicationProperties, Body: m.Value}
		resp.StatusCode = toInt(m.ApplicationProperties["statusCode"])
		resp.StatusDescription, _ = m.ApplicationProperties["statusDescription"].(string)
		return resp, nil
	}
}

// sameCorrelation compares a response's correlation-id with the request's (qdrouterd's
// Python agent sends integers back as int).
func sameCorrelation(got any, want uint64) bool {
	switch g := got.(type) {
	case uint64:
		return g == want
	case int64:
		return g >= 0 && uint64(g) == want
	case int32:
		return g >= 0 && uint64(g) == want
	case uint32:
		return uint64(g) == want
	}
	return false
}

func toInt(v any) int {
	switch n := v.(type) {
	case int32:
		return int(n)
	case int64:
		return int(n)
	case uint32:
		return int(n)
	case uint64:
		return int(n)
	case int:
		return n
	}
	return 0
}

// call sends a request and turns a status other than 2xx into a *StatusError.
func (c *Client) call(ctx context.Context, r Request) (*Response, error) {
	resp, err := c.Call(ctx, r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &StatusError{Operation: r.Operation, Code: resp.StatusCode, Description: resp.StatusDescription}
	}
	return resp, nil
}

// nodeRequest addresses the management node itself, as qdmanage does.
func nodeRequest(op, entityType string) Request {
	return Request{Operation: op, Type: TypeManagement, Name: "self", EntityType: entityType}
}

// Table is the result of a QUERY: the attributes' names and one row of values per
// entity, in the router's order.
type Table struct {
	Attributes []string
	Rows       [][]any
}

// Maps returns the rows as maps from attribute name to value, without null values
// (as qdmanage prints them).
func (t *Table) Maps() []map[string]any {
	out := make([]map[string]any, 0, len(t.Rows))
	for _, row := range t.Rows {
		m := map[string]any{}
		for i, v := range row {
			if i < len(t.Attributes) && v != nil {
				m[t.Attributes[i]] = v
			}
		}
		out = append(out, m)
	}
	return out
}

// Query returns the entities of entityType with the given attributes (all of them when
// none is named), asking for PageSize rows at a time until the router has no more.
func (c *Client) Query(ctx context.Context, entityType string, attributes ...string) (*Table, error) {
	names := make([]any, len(attributes))
	for i, a := range attributes {
		names[i] = a
	}
	t := &Table{}
	for offset := 0; ; offset += c.pageSize {
		r := nodeRequest("QUERY", entityType)
		r.Properties = map[string]any{"offset": int64(offset), "count": int64(c.pageSize)}
		r.Body = map[string]any{"attributeNames": names}
		resp, err := c.call(ctx, r)
		if err != nil {
			return nil, err
		}
		body, ok := resp.Body.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("qdmanagement: QUERY %s: the body is %T, not a map", entityType, resp.Body)
		}
		if t.Attributes == nil {
			for _, a := range asList(body["attributeNames"]) {
				s, _ := a.(string)
				t.Attributes = append(t.Attributes, s)
			}
		}
		rows := asList(body["results"])
		for _, r := range rows {
			t.Rows = append(t.Rows, asList(r))
		}
		if len(rows) < c.pageSize {
			return t, nil
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// Read returns the attributes of one entity, found by identity when it is given,
// else by name.
func (c *Client) Read(ctx context.Context, entityType, name, identity string) (map[string]any, error) {
	r := Request{Operation: "READ", Type: entityType, Identity: identity}
	if identity == "" {
		r.Name = name
	}
	resp, err := c.call(ctx, r)
	if err != nil {
		return nil, err
	}
	m, ok := resp.Body.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("qdmanagement: READ %s: the body is %T, not a map", entityType, resp.Body)
	}
	return m, nil
}

// GetTypes returns the entity types that are or extend entityType (all of them when
// it is empty), each with its base types.
func (c *Client) GetTypes(ctx context.Context, entityType string) (map[string][]string, error) {
	return c.stringLists(ctx, "GET-TYPES", entityType)
}

// GetAttributes returns the attribute names of entityType (of every type when empty).
func (c *Client) GetAttributes(ctx context.Context, entityType string) (map[string][]string, error) {
	return c.stringLists(ctx, "GET-ATTRIBUTES", entityType)
}

// GetOperations returns the operations of entityType (of every type when empty).
func (c *Client) GetOperations(ctx context.Context, entityType string) (map[string][]string, error) {
	return c.stringLists(ctx, "GET-OPERATIONS", entityType)
}

func (c *Client) stringLists(ctx context.Context, op, entityType string) (map[string][]string, error) {
	resp, err := c.call(ctx, nodeRequest(op, entityType))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	m, _ := resp.Body.(map[string]any)
	for k, v := range m {
		l := []string{}
		for _, e := range asList(v) {
			s, _ := e.(string)
			l = append(l, s)
		}
		out[k] = l
	}
	return out, nil
}

// GetMgmtNodes returns the management nodes of the other routers of the network
// (none for a standalone router).
func (c *Client) GetMgmtNodes(ctx context.Context) ([]string, error) {
	resp, err := c.call(ctx, nodeRequest("GET-MGMT-NODES", ""))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range asList(resp.Body) {
		s, _ := e.(string)
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

// ShortType returns an entity type without qdrouterd's prefix
// ("org.apache.qpid.dispatch.router.link" is "router.link").
func ShortType(entityType string) string {
	return strings.TrimPrefix(entityType, "org.apache.qpid.dispatch.")
}
