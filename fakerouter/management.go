package fakerouter

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The router's management agent: qdrouterd's AMQP management protocol at $management,
// as qdrouterd 1.19.0 answers it, so that its own tools (qdstat, qdmanage) and any AMQP
// management client work against the fake.
//
// A client attaches a sender to $management and a receiver for the replies (usually a
// dynamic one). The sender gets credit at once (the address has an in-process
// consumer); each request is accepted and settled (the flow before the disposition, as
// for any message), and the response is a pre-settled message to the request's
// reply-to, routed like any other message, so it reaches a reply address on any
// connection.
//
// qdrouterd answers in two places and the fake reproduces both: a C agent in the
// router core answers QUERY, READ, CREATE, UPDATE and DELETE for the core's entity types
// named in full (router, connection, router.link, router.address,
// router.config.address, router.config.linkRoute, router.config.autoLink and a few
// more), and the Python agent answers everything else (GET-TYPES, GET-ATTRIBUTES,
// GET-OPERATIONS, GET-MGMT-NODES, GET-SCHEMA, QUERY of its own entities such as
// listener, requests that name a type by its short name, requests without an
// operation). The two differ in small ways that the fake keeps: the order of
// statusCode and statusDescription, their descriptions, list encodings, and the Python
// agent's ignoring of offset and count.
//
// The figures are the fake's own: its connections, links with their credit and
// delivery counts, addresses with their consumers and in/out counts. The agent's own
// messages count like any others (a reply counts as delivered on its reply address).

// agent is the management state of a core (shared by the routers of a mesh).
type agent struct {
	c       *core
	started time.Time
	linkSeq uint64
	nodeSeq uint64
	// The addresses qdrouterd always has: its edge heartbeat, and its management node
	// by its mobile and local names, and the Python agent's.
	heartbeat, mgmt, mgmtLocal, internal *node
	conns                                map[*engine.Conn]*connStats
	routers                              map[*Router]*routerStats
	processed                            uint64 // connections opened since the start
	profiling                            bool
}

// nodeMgmt is what the agent keeps on a node.
type nodeMgmt struct {
	seq uint64 // creation order: qdrouterd lists addresses in that order
	// key is the address's key in qdrouterd's table; "" derives it from the name.
	key string
	// inProcess counts in-process subscribers (the agent); such a node gives its
	// senders credit without a consumer and its messages go to the agent.
	inProcess   uint32
	toContainer uint64 // requests given to the agent
	// fromContainer counts messages the agent sent to the address (its responses).
	fromContainer uint64
	// egress counts messages given to the address's consumers, sent or waiting on
	// their undelivered lists (qdrouterd's deliveriesEgress counts at forwarding).
	egress uint64
}

// linkStats are one link's counts as qdrouterd's router.link entity shows them.
type linkStats struct {
	id      uint64
	granted uint32 // the credit a sender was last given
	// zeroSince is when the link was last seen to run out of credit (zero while it
	// never has): qdrouterd's zeroCreditSeconds counts from then.
	zeroSince                              time.Time
	deliveries, presettled, droppedPresett uint64
	accepted, rejected, released, modified uint64
}

// connStats are what the agent tracks of a connection.
type connStats struct {
	opened, lastDelivery time.Time
	closing              bool
	trace                *bool // enableProtocolTrace as last set by UPDATE
}

// routerStats are a router's delivery counts as qdrouterd's router entity shows them.
type routerStats struct {
	presettled, droppedPresettled          uint64
	accepted, rejected, released, modified uint64
	ingress, egress                        uint64
}

func newAgent(c *core) *agent {
	a := &agent{
		c: c, started: time.Now(),
		conns:   map[*engine.Conn]*connStats{},
		routers: map[*Router]*routerStats{},
	}
	mk := func(name, key string, dist Distribution, inProcess uint32) *node {
		n := &node{name: name, dist: dist}
		n.mgmt.key, n.mgmt.inProcess = key, inProcess
		a.track(n)
		return n
	}
	a.heartbeat = mk("_$qd.edge_heartbeat", "M0_$qd.edge_heartbeat", Balanced, 0)
	a.mgmt = mk("$management", "M0$management", Closest, 1)
	a.mgmtLocal = mk("_local/$management", "L$management", Closest, 1)
	a.internal = mk("_local/$_management_internal", "L$_management_internal", Closest, 1)
	return a
}

// track numbers a new node (nodeLocked calls it).
func (a *agent) track(n *node) {
	a.nodeSeq++
	n.mgmt.seq = a.nodeSeq
}

// node returns the agent's own node for addr, or nil: $management (also as
// amqp:/$management), the local forms _local/$management and
// _topo/0/ROUTER/$management, the Python agent's _local/$_management_internal, and
// _$qd.edge_heartbeat.
func (a *agent) node(addr string) *node {
	addr = strings.TrimPrefix(addr, "amqp:/")
	switch addr {
	case "$management":
		return a.mgmt
	case "_local/$management":
		return a.mgmtLocal
	case "_local/$_management_internal":
		return a.internal
	case "_$qd.edge_heartbeat":
		return a.heartbeat
	}
	if rest, ok := strings.CutPrefix(addr, "_topo/0/"); ok {
		if _, tail, ok := strings.Cut(rest, "/"); ok {
			switch tail {
			case "$management":
				return a.mgmtLocal
			case "$_management_internal":
				return a.internal
			}
		}
	}
	return nil
}

// newLink gives an attached link its identity.
func (a *agent) newLink() linkStats {
	a.linkSeq++
	return linkStats{id: a.linkSeq}
}

func (a *agent) router(r *Router) *routerStats {
	s := a.routers[r]
	if s == nil {
		s = &routerStats{}
		a.routers[r] = s
	}
	return s
}

// opened records a connection the router accepted.
func (a *agent) opened(conn *engine.Conn) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.processed++
	a.conns[conn] = &connStats{opened: time.Now()}
}

// closed forgets a connection (under the core's lock).
func (a *agent) closed(conn *engine.Conn) { delete(a.conns, conn) }

func (a *agent) conn(conn *engine.Conn) *connStats {
	s := a.conns[conn]
	if s == nil { // a connection opened before the agent heard of it
		s = &connStats{opened: a.started}
		a.conns[conn] = s
	}
	return s
}

// received counts a delivery a sender sent.
func (a *agent) received(p *producer, d *engine.Delivery) {
	now := time.Now()
	p.stats.deliveries++
	if p.link.Credit() == 0 {
		p.stats.zeroSince = now
	}
	rs := a.router(p.r)
	rs.ingress++
	if d.Settled {
		p.stats.presettled++
		rs.presettled++
	}
	a.conn(p.link.Conn()).lastDelivery = now
}

// outcome counts the outcome a sender's unsettled delivery got.
func (a *agent) outcome(p *producer, presettled bool, state wire.DeliveryState) {
	if p == nil || presettled {
		return
	}
	rs := a.router(p.r)
	switch state.(type) {
	case *wire.Accepted:
		p.stats.accepted++
		rs.accepted++
	case *wire.Rejected:
		p.stats.rejected++
		rs.rejected++
	case *wire.Released:
		p.stats.released++
		rs.released++
	case *wire.Modified:
		p.stats.modified++
		rs.modified++
	}
}

// given counts a message the router gave to a consumer, as qdrouterd counts egress
// when it forwards a delivery to a link (sent at once or not).
func (a *agent) given(co *consumer, t *transit) {
	t.node.mgmt.egress++
	a.router(co.r).egress++
}

// sent counts a delivery the router sent to a consumer.
func (a *agent) sent(co *consumer, t *transit) {
	now := time.Now()
	co.stats.deliveries++
	if co.link.Credit() == 0 {
		co.stats.zeroSince = now
	}
	if t.settled {
		co.stats.presettled++
	}
	a.conn(co.link.Conn()).lastDelivery = now
}

// consumerSettled counts the outcome a consumer gave.
func (a *agent) consumerSettled(co *consumer, state wire.DeliveryState) {
	switch state.(type) {
	case *wire.Accepted:
		co.stats.accepted++
	case *wire.Rejected:
		co.stats.rejected++
	case *wire.Released:
		co.stats.released++
	case *wire.Modified:
		co.stats.modified++
	}
}

// dropped counts a pre-settled message that found no consumer.
func (a *agent) dropped(t *transit) {
	if p := t.sender; p != nil {
		p.stats.droppedPresett++
		a.router(p.r).droppedPresettled++
	}
}

// droppedUndelivered counts a pre-settled message dropped from co's undelivered list
// (qdrouterd counts it on the outgoing link).
func (a *agent) droppedUndelivered(co *consumer) {
	co.stats.presettled++ // done with, as qdrouterd counts a freed pre-settled delivery
	co.stats.droppedPresett++
	a.router(co.r).droppedPresettled++
}

// request handles a message sent to one of the agent's nodes. The agent answers
// while the request is still unsettled (qdrouterd's agent runs before the core
// settles the request, so its own request shows unsettled and not yet accepted); then
// the request is accepted and settled (the flow first, as for any message) and the
// response goes to the request's reply-to.
func (a *agent) request(p *producer, d *engine.Delivery, n *node) {
	c := a.c
	n.counts.Ingress++
	n.mgmt.toContainer++
	req, err := parseRequest(d.Payload)
	var resp response
	switch {
	case err != nil:
		// qdrouterd cannot parse it either and never answers; the fake says why.
		resp = pyError(400, "Bad Request: "+err.Error())
	case n == a.internal: // straight to the Python agent
		resp = a.pyAgent(p.r, req)
	default:
		resp = a.answer(p.r, p.link.Conn(), req)
	}
	c.settleAnonymousLocked(p, d, &wire.Accepted{})
	if req.replyTo != "" { // qdrouterd drops a response it has nowhere to send
		a.reply(p.r, req, resp)
	}
	if resp.closing != nil {
		resp.closing.Close(&wire.Error{Condition: wire.ErrCondConnectionForced,
			Description: "Connection forced-closed by management request"})
	}
}

// internalHop counts a request the C agent passes to the Python agent.
func (a *agent) internalHop() {
	a.internal.mgmt.toContainer++
	a.internal.mgmt.fromContainer++
}

// reply routes a response to the request's reply-to address, pre-settled, like any
// message the router sends; with no such address it is dropped, as qdrouterd drops an
// in-process message to an unknown address.
func (a *agent) reply(r *Router, req *mgmtRequest, resp response) {
	c := a.c
	n := a.replyNode(req.replyTo)
	if n == nil {
		return
	}
	n.mgmt.fromContainer++
	payload := composeResponse(req, resp)
	c.routeLocked(&transit{payload: payload, node: n, from: r, settled: true})
}

// replyNode finds the node of a reply address, with or without the amqp:/ qdrouterd
// ignores.
func (a *agent) replyNode(addr string) *node {
	c := a.c
	if n := c.nodes[addr]; n != nil {
		return n
	}
	if rest, ok := strings.CutPrefix(addr, "amqp:/"); ok {
		if n := c.nodes[rest]; n != nil {
			return n
		}
	} else if n := c.nodes["amqp:/"+addr]; n != nil {
		return n
	}
	if n := a.node(addr); n != nil {
		return n
	}
	return nil
}

// mgmtRequest is a decoded management request.
type mgmtRequest struct {
	replyTo     string
	to          string
	correlation any
	contentType string
	props       map[string]any // application-properties; nil when absent
	hasProps    bool
	body        any
	hasBody     bool
}

func parseRequest(payload []byte) (*mgmtRequest, error) {
	req := &mgmtRequest{}
	var m wire.Message
	if err := m.Unmarshal(payload); err != nil {
		if _, props, _ := wire.ScanMessage(payload); props != nil {
			req.replyTo, req.correlation = props.ReplyTo, props.CorrelationID
		}
		return req, err
	}
	if m.Properties != nil {
		req.replyTo = m.Properties.ReplyTo
		req.to = m.Properties.To
		req.correlation = m.Properties.CorrelationID
		req.contentType = string(m.Properties.ContentType)
	}
	req.props, req.hasProps = m.ApplicationProperties, m.ApplicationProperties != nil
	switch {
	case m.HasValue:
		req.body, req.hasBody = m.Value, true
	case len(m.Data) > 0:
		req.body, req.hasBody = m.Data[0], true
	case len(m.Sequence) > 0:
		req.body, req.hasBody = m.Sequence[0], true
	}
	return req, nil
}

// prop returns a request property as text when it is a string or a symbol.
func (q *mgmtRequest) text(key string) (string, bool) {
	switch v := q.props[key].(type) {
	case string:
		return v, true
	case wire.Symbol:
		return string(v), true
	}
	return "", false
}

func (q *mgmtRequest) has(key string) bool {
	_, ok := q.props[key]
	return ok
}

// response is an answer before it is composed.
type response struct {
	status int32
	desc   string
	// python selects the Python agent's form: statusCode first, empty lists list0.
	python bool
	body   any
	// rawBody, when set, is the body's encoded values (the C agent sometimes writes
	// two values in one amqp-value section, or none).
	rawBody []byte
	// closing is a connection to close once the response is on its way.
	closing *engine.Conn
}

// pyError is a Python agent error: its body is an empty map.
func pyError(status int32, desc string) response {
	return response{status: status, desc: desc, python: true, body: pairs()}
}

// composeResponse writes the response message as qdrouterd does: a header with
// durable false, properties with to and correlation-id only, the status in the
// application-properties, the body in an amqp-value.
func composeResponse(req *mgmtRequest, r response) []byte {
	cp := composer{python: r.python}
	b := make([]byte, 0, 256)
	b = wire.AppendDescriptor(b, wire.DescriptorHeader)
	b = cp.append(b, []any{false})
	b = wire.AppendDescriptor(b, wire.DescriptorProperties)
	corr := req.correlation
	if r.python {
		corr = pythonValue(corr)
	}
	b = cp.append(b, []any{nil, nil, req.replyTo, nil, nil, corr})
	b = wire.AppendDescriptor(b, wire.DescriptorApplicationProperties)
	if r.python {
		b = cp.append(b, pairs("statusCode", r.status, "statusDescription", r.desc))
	} else {
		b = cp.append(b, pairs("statusDescription", r.desc, "statusCode", r.status))
	}
	b = wire.AppendDescriptor(b, wire.DescriptorAMQPValue)
	if r.rawBody != nil {
		return append(b, r.rawBody...)
	}
	return cp.append(b, r.body)
}

// pythonValue is v as the Python agent sends back a value it decoded: integers of any
// AMQP type become Python ints, symbols strings.
func pythonValue(v any) any {
	switch v := v.(type) {
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case uint64:
		if v > 1<<63-1 {
			return v
		}
		return int(v)
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case wire.Symbol:
		return string(v)
	}
	return v
}

// answer decides which of qdrouterd's two agents answers, as its C agent does
// (qd_can_handle_request): the C agent takes QUERY, CREATE, READ, UPDATE and DELETE of
// the core's types named in full by entityType (or type when entityType is absent).
func (a *agent) answer(r *Router, from *engine.Conn, req *mgmtRequest) response {
	if req.hasProps {
		typ, ok := req.text("entityType")
		if !req.has("entityType") {
			typ, ok = req.text("type")
		}
		op, opOK := req.text("operation")
		if t := cTables[typ]; ok && opOK && t != nil {
			switch op {
			case "QUERY", "CREATE", "READ", "UPDATE", "DELETE":
				return a.cAgent(r, from, t, op, req)
			}
		}
	}
	a.internalHop()
	return a.pyAgent(r, req)
}

// view is one router's entities at one moment, built under the core's lock.
type view struct {
	a     *agent
	r     *Router
	now   time.Time
	conns []*engine.Conn
	links []*engine.Link
}

func (a *agent) view(r *Router) *view {
	v := &view{a: a, r: r, now: time.Now()}
	for _, conn := range r.srv.Conns() {
		if conn.RemoteOpen() == nil {
			continue
		}
		v.conns = append(v.conns, conn)
		for _, l := range conn.Links() {
			if linkStatsOf(l) != nil {
				v.links = append(v.links, l)
			}
		}
	}
	sort.Slice(v.conns, func(i, j int) bool { return v.conns[i].ID() < v.conns[j].ID() })
	sort.Slice(v.links, func(i, j int) bool { return linkStatsOf(v.links[i]).id < linkStatsOf(v.links[j]).id })
	return v
}

func linkStatsOf(l *engine.Link) *linkStats {
	switch x := l.Context.(type) {
	case *consumer:
		return &x.stats
	case *producer:
		return &x.stats
	}
	return nil
}

// nodes returns the addresses in qdrouterd's order: its own first, then by creation.
func (v *view) nodes() []*node {
	c := v.a.c
	out := []*node{v.a.heartbeat, v.a.mgmt, v.a.mgmtLocal, v.a.internal}
	rest := make([]*node, 0, len(c.nodes))
	for _, n := range c.nodes {
		rest = append(rest, n)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].mgmt.seq < rest[j].mgmt.seq })
	return append(out, rest...)
}

// key is a node's key in qdrouterd's address table: M0 and the address for a mobile
// address, L and the local part for a router-local one (the fake's dynamic reply
// addresses, amqp:/_topo/0/ROUTER/temp.ID, are qdrouterd's Ltemp.ID).
func nodeKey(n *node) string {
	if n.mgmt.key != "" {
		return n.mgmt.key
	}
	name := strings.TrimPrefix(n.name, "amqp:/")
	if rest, ok := strings.CutPrefix(name, "_topo/0/"); ok {
		if _, local, ok := strings.Cut(rest, "/"); ok {
			return "L" + local
		}
	}
	if rest, ok := strings.CutPrefix(name, "_local/"); ok {
		return "L" + rest
	}
	return "M0" + name
}

// ticks is qdrouterd's clock: whole seconds since the router started.
func (a *agent) ticks(t time.Time) uint32 {
	if t.Before(a.started) {
		return 0
	}
	return uint32(t.Sub(a.started) / time.Second)
}

// since is the number of qdrouterd ticks from t to now.
func (a *agent) since(t, now time.Time) uint32 {
	return a.ticks(now) - min(a.ticks(t), a.ticks(now))
}

func memoryUsage() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Sys
}

func workerThreads() int32 { return int32(runtime.GOMAXPROCS(0)) }

// statusText are qdrouterd's descriptions of the statuses its C agent answers with.
var statusText = map[int32]string{
	200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
	404: "Not Found", 500: "Internal Server Error", 501: "Not Implemented",
}

func notSupported(what string) string {
	return fmt.Sprintf("fakerouter: %s is not supported by the fake router", what)
}
