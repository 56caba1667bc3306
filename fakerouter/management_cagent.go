package fakerouter

import (
	"crypto/tls"
	"sort"
	"strconv"
	"strings"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The C agent: qdrouterd's router-core agent (src/router_core/agent*.c), which answers
// QUERY, READ, CREATE, UPDATE and DELETE of the core's entity types.

// cTable is one entity type of the C agent.
type cTable struct {
	name    string
	columns []string
	// list returns the objects in qdrouterd's order.
	list func(v *view) []cObject
	// read selects how READ finds an object.
	read readRule
	// config is set on the configuration types, which qdrouterd can create and delete.
	config bool
	// nullColumn is set on the types whose rows hold a null for a column that is not a
	// string; the others leave it out of the row (qdrouterd's column writers with and
	// without a default case).
	nullColumn bool
}

// cObject gives the value of each column of one entity.
type cObject func(col string) any

type readRule int

const (
	readByNameOrIdentity readRule = iota // 400 without either
	readByIdentity                       // connection: 400 without identity
	readByKey                            // router.address: identity, else name
	readForbidden                        // router, console
	readHangs                            // router.link: qdrouterd never answers
)

// maxColumns is QDR_AGENT_MAX_COLUMNS: a longer attributeNames list means all columns.
const maxColumns = 64

const mgmtPrefix = "org.apache.qpid.dispatch."

var cTables = map[string]*cTable{}

func init() {
	for _, t := range []*cTable{
		{name: mgmtPrefix + "router.config.address", config: true, read: readByNameOrIdentity, list: configAddresses,
			columns: strings.Fields("name identity type prefix distribution waypoint ingressPhase egressPhase pattern priority fallback")},
		{name: mgmtPrefix + "router.config.linkRoute", config: true, read: readByNameOrIdentity, list: configLinkRoutes,
			columns: strings.Fields("name identity type prefix distribution connection containerId direction dir operStatus pattern addExternalPrefix delExternalPrefix")},
		{name: mgmtPrefix + "router.config.autoLink", config: true, read: readByNameOrIdentity,
			columns: strings.Fields("name identity type address addr direction dir phase connection containerId externalAddress externalAddr linkRef operStatus lastError fallback")},
		{name: mgmtPrefix + "router", read: readForbidden, list: routerEntity, nullColumn: true,
			columns: strings.Fields("name identity id type mode area version metadata addrCount linkCount nodeCount linkRouteCount autoLinkCount connectionCount presettledDeliveries droppedPresettledDeliveries acceptedDeliveries rejectedDeliveries releasedDeliveries modifiedDeliveries deliveriesDelayed1Sec deliveriesDelayed10Sec deliveriesStuck deliveriesIngress deliveriesEgress deliveriesTransit deliveriesIngressRouteContainer deliveriesEgressRouteContainer deliveriesRedirectedToFallback linksBlocked uptimeSeconds memoryUsage workerThreads")},
		{name: mgmtPrefix + "connection", read: readByIdentity, list: connectionEntities,
			columns: strings.Fields("name identity host role protocol dir container sasl isAuthenticated user isEncrypted sslProto sslCipher properties sslSsf tenant type ssl opened active adminStatus operStatus uptimeSeconds lastDlvSeconds enableProtocolTrace")},
		{name: mgmtPrefix + "router.link", read: readHangs, list: linkEntities, nullColumn: true,
			columns: strings.Fields("name identity type linkName linkType linkDir owningAddr capacity peer undeliveredCount unsettledCount deliveryCount connectionId adminStatus operStatus presettledCount droppedPresettledCount acceptedCount rejectedCount releasedCount modifiedCount deliveriesDelayed1Sec deliveriesDelayed10Sec deliveriesStuck ingressHistogram priority settleRate creditAvailable zeroCreditSeconds")},
		{name: mgmtPrefix + "router.address", read: readByKey, list: addressEntities, nullColumn: true,
			columns: strings.Fields("name identity type key distribution inProcess subscriberCount remoteCount containerCount remoteHostRouters deliveriesIngress deliveriesEgress deliveriesTransit deliveriesToContainer deliveriesFromContainer deliveriesEgressRouteContainer deliveriesIngressRouteContainer transitOutstanding trackedDeliveries priority deliveriesRedirectedToFallback")},
		{name: mgmtPrefix + "console", read: readForbidden},
		{name: mgmtPrefix + "router.config.exchange", config: true, read: readByNameOrIdentity,
			columns: strings.Fields("name identity address phase alternateAddress alternatePhase matchMethod bindingCount receivedCount droppedCount forwardedCount divertedCount")},
		{name: mgmtPrefix + "router.config.binding", config: true, read: readByNameOrIdentity,
			columns: strings.Fields("name identity exchangeName bindingKey nextHopAddress nextHopPhase matchedCount")},
		{name: mgmtPrefix + "router.connection.linkRoute", config: true, read: readByNameOrIdentity,
			columns: strings.Fields("name identity type pattern direction containerId")},
	} {
		cTables[t.name] = t
	}
}

func (t *cTable) forbidden() bool { return t.columns == nil }

func (t *cTable) objects(v *view) []cObject {
	if t.list == nil {
		return nil
	}
	return t.list(v)
}

// cStatus is a C agent response with qdrouterd's description of the status.
func cStatus(status int32, body any) response {
	return response{status: status, desc: statusText[status], body: body}
}

// cRaw is a C agent response whose body is written as is.
func cRaw(status int32, desc string, raw []byte) response {
	if desc == "" {
		desc = statusText[status]
	}
	return response{status: status, desc: desc, rawBody: raw}
}

var (
	rawNull         = []byte{wire.TypeNull}
	rawEmptyMap     = composer{}.append(nil, pairs())
	rawNullEmptyMap = append([]byte{wire.TypeNull}, rawEmptyMap...)
)

// cAgent answers a request the C agent takes.
func (a *agent) cAgent(r *Router, from *engine.Conn, t *cTable, op string, req *mgmtRequest) response {
	switch op {
	case "QUERY":
		return a.cQuery(r, t, req)
	case "READ":
		return a.cRead(r, t, req)
	case "UPDATE":
		switch t.name {
		case mgmtPrefix + "connection":
			return a.updateConnection(r, req)
		case mgmtPrefix + "router.link":
			return a.updateLink(r, req)
		case mgmtPrefix + "console":
			return cRaw(403, "", rawNull)
		}
	case "CREATE":
		if t.read == readForbidden {
			return cRaw(403, "", rawNull)
		}
	case "DELETE":
		if t.read == readForbidden || t.name == mgmtPrefix+"connection" {
			return cStatus(403, pairs()) // a delete has no body to write the null in
		}
	}
	// qdrouterd creates and deletes configuration entities (the fake's configuration
	// is fixed) and never answers the other operations on these types.
	return response{status: 501, desc: notSupported(op + " of " + t.name), body: pairs()}
}

// columnsFor picks the columns of a QUERY as qdrouterd does (qdr_agent_set_columns):
// all of them unless attributeNames is a non-empty list shorter than 64; a name it
// does not know gives column 0 (name), one that is not a string gives a column with
// no name whose values are null (-1).
func columnsFor(req *mgmtRequest, all []string) []int {
	var names []any
	if m, ok := req.body.(*wire.Map); ok {
		v, found := m.Get("attributeNames")
		if !found {
			v, _ = m.Get(wire.Symbol("attributeNames"))
		}
		names, _ = v.([]any)
	}
	if len(names) == 0 || len(names) >= maxColumns {
		cols := make([]int, len(all))
		for i := range cols {
			cols[i] = i
		}
		return cols
	}
	cols := make([]int, len(names))
	for i, n := range names {
		s, ok := n.(string)
		if !ok {
			cols[i] = -1
			continue
		}
		for j, c := range all {
			if c == s {
				cols[i] = j
				break
			}
		}
	}
	return cols
}

// intProp reads an integer property as qdrouterd does (qd_parse_as_long): 0 when it is
// not an integer.
func (q *mgmtRequest) intProp(key string) (int64, bool) {
	v, ok := q.props[key]
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return int64(v), true
	}
	return 0, true
}

func (a *agent) cQuery(r *Router, t *cTable, req *mgmtRequest) response {
	if t.forbidden() {
		return cStatus(403, pairs("attributeNames", emptyList{}, "results", []any{}))
	}
	cols := columnsFor(req, t.columns)
	names := make([]any, 0, len(cols))
	for _, c := range cols {
		if c >= 0 {
			names = append(names, t.columns[c])
		}
	}
	objs := t.objects(a.view(r))
	offset, _ := req.intProp("offset")
	count, hasCount := req.intProp("count")
	if !hasCount || count <= 0 {
		count = int64(len(objs)) // absent, 0 or negative: all of them
	}
	results := []any{}
	for i := max(offset, 0); i < int64(len(objs)) && int64(len(results)) < count; i++ {
		row := make([]any, 0, len(cols))
		for _, c := range cols {
			switch {
			case c >= 0:
				row = append(row, objs[i](t.columns[c]))
			case t.nullColumn:
				row = append(row, nil)
			}
		}
		results = append(results, row)
	}
	return cStatus(200, pairs("attributeNames", names, "results", results))
}

// ident returns a request's name or identity property: whether it is there, and its
// text (a value that is not text matches nothing).
func (q *mgmtRequest) ident(key string) (string, bool) {
	if !q.has(key) {
		return "", false
	}
	s, ok := q.text(key)
	if !ok {
		return "\x00not text", true
	}
	return s, true
}

func (a *agent) cRead(r *Router, t *cTable, req *mgmtRequest) response {
	name, hasName := req.ident("name")
	identity, hasIdentity := req.ident("identity")
	switch t.read {
	case readForbidden:
		return cRaw(403, "", rawNullEmptyMap)
	case readHangs:
		return response{status: 501, desc: notSupported("READ of " + t.name + " (qdrouterd never answers it)"), body: pairs()}
	case readByIdentity:
		if !hasIdentity {
			return response{status: 400, desc: "Name not supported. Identity required", body: pairs()}
		}
	case readByNameOrIdentity:
		if !hasName && !hasIdentity {
			return response{status: 400, desc: "No name or identity provided", body: pairs()}
		}
	}
	col, want := "name", name
	if hasIdentity {
		col, want = "identity", identity
	} else if !hasName {
		return cStatus(404, pairs())
	}
	for _, o := range t.objects(a.view(r)) {
		if v, _ := o(col).(string); v == want {
			return cStatus(200, objectMap(t, o))
		}
	}
	return cStatus(404, pairs())
}

func objectMap(t *cTable, o cObject) *wire.Map {
	m := &wire.Map{}
	for _, c := range t.columns {
		m.Entries = append(m.Entries, wire.MapEntry{Key: c, Value: o(c)})
	}
	return m
}

// updateConnection is qdra_connection_update_CT: adminStatus deleted closes a
// connection, enableProtocolTrace sets the flag the connection entity shows.
func (a *agent) updateConnection(r *Router, req *mgmtRequest) response {
	body, isMap := req.body.(*wire.Map)
	identity, hasIdentity := req.ident("identity")
	bad := response{status: 400, desc: statusText[400], body: pairs()}
	if !isMap || !hasIdentity {
		return bad
	}
	admin, hasAdmin := body.Get("adminStatus")
	trace, hasTrace := body.Get("enableProtocolTrace")
	if !hasAdmin && !hasTrace {
		return bad
	}
	t := cTables[mgmtPrefix+"connection"]
	v := a.view(r)
	var conn *engine.Conn
	for _, c := range v.conns {
		if strconv.FormatUint(c.ID(), 10) == identity {
			conn = c
		}
	}
	if conn == nil {
		return bad
	}
	var raw []byte
	resp := cRaw(200, "", nil)
	if hasAdmin {
		switch admin {
		case "deleted":
			a.conn(conn).closing = true
			resp.closing = conn
		case "enabled":
		default:
			return bad
		}
		raw = composer{}.append(raw, objectMap(t, v.connection(conn)))
	}
	if hasTrace {
		on, _ := trace.(bool)
		a.conn(conn).trace = &on
		raw = composer{}.append(raw, objectMap(t, v.connection(conn)))
	}
	resp.rawBody = raw
	return resp
}

// updateLink is qdra_link_update_CT: only adminStatus may be given (qdrouterd then
// changes nothing and answers with the link).
func (a *agent) updateLink(r *Router, req *mgmtRequest) response {
	body, isMap := req.body.(*wire.Map)
	if !isMap {
		return cRaw(400, "", []byte{})
	}
	bad := response{status: 400, desc: statusText[400], body: pairs()}
	if _, ok := body.Get("adminStatus"); !ok {
		return bad
	}
	name, hasName := req.ident("name")
	identity, hasIdentity := req.ident("identity")
	col, want := "identity", identity
	switch {
	case hasIdentity:
	case hasName:
		col, want = "name", name
	default:
		return bad
	}
	t := cTables[mgmtPrefix+"router.link"]
	for _, o := range linkEntities(a.view(r)) {
		if s, _ := o(col).(string); s == want {
			return cStatus(200, objectMap(t, o))
		}
	}
	return cStatus(404, pairs())
}

// The entities.

func routerEntity(v *view) []cObject {
	a, r := v.a, v.r
	rs := a.router(r)
	addrs := uint64(len(v.nodes()))
	return []cObject{func(col string) any {
		switch col {
		case "name", "id":
			return r.opts.ID
		case "identity":
			return "1"
		case "type":
			return mgmtPrefix + "router"
		case "mode":
			return "standalone"
		case "area":
			return "0"
		case "version":
			return r.opts.Version
		case "addrCount":
			return addrs
		case "linkCount":
			return uint64(len(v.links))
		case "linkRouteCount":
			return uint64(len(a.c.routes))
		case "connectionCount":
			return uint64(len(v.conns))
		case "presettledDeliveries":
			return rs.presettled
		case "droppedPresettledDeliveries":
			return rs.droppedPresettled
		case "acceptedDeliveries":
			return rs.accepted
		case "rejectedDeliveries":
			return rs.rejected
		case "releasedDeliveries":
			return rs.released
		case "modifiedDeliveries":
			return rs.modified
		case "deliveriesIngress":
			return rs.ingress
		case "deliveriesEgress":
			return rs.egress
		case "nodeCount", "autoLinkCount", "deliveriesDelayed1Sec", "deliveriesDelayed10Sec", "deliveriesStuck",
			"deliveriesTransit", "deliveriesIngressRouteContainer", "deliveriesEgressRouteContainer",
			"deliveriesRedirectedToFallback":
			return uint64(0)
		case "linksBlocked":
			return uint32(0)
		case "uptimeSeconds":
			return a.ticks(v.now)
		case "memoryUsage":
			return memoryUsage()
		case "workerThreads":
			return workerThreads()
		}
		return nil
	}}
}

func connectionEntities(v *view) []cObject {
	out := make([]cObject, len(v.conns))
	for i, c := range v.conns {
		out[i] = v.connection(c)
	}
	return out
}

func (v *view) connection(c *engine.Conn) cObject {
	st := v.a.conns[c]
	if st == nil { // closing: Closed has been heard, the server has not let go yet
		st = &connStats{opened: v.now, closing: true}
	}
	host := c.RemoteAddr().String()
	ts := c.TLS()
	return func(col string) any {
		switch col {
		case "name":
			return "connection/" + host
		case "identity":
			return strconv.FormatUint(c.ID(), 10)
		case "host":
			return host
		case "role":
			return "normal"
		case "protocol":
			return "amqp"
		case "dir":
			return "in"
		case "container":
			if id := c.ContainerID(); id != "" {
				return id
			}
		case "sasl":
			if m := c.Mechanism(); m != "" {
				return m
			}
		case "isAuthenticated":
			return c.Mechanism() != ""
		case "user":
			if u := c.User(); u != "" {
				return u
			}
			return "anonymous"
		case "isEncrypted", "ssl":
			return ts != nil
		case "sslProto":
			if ts != nil {
				return tlsVersionName(ts.Version)
			}
		case "sslCipher":
			if ts != nil {
				return tls.CipherSuiteName(ts.CipherSuite)
			}
		case "sslSsf":
			if ts != nil {
				return cipherBits(tls.CipherSuiteName(ts.CipherSuite))
			}
			return int64(0)
		case "properties":
			return connProperties(c)
		case "type":
			return mgmtPrefix + "connection"
		case "opened", "active":
			return true
		case "adminStatus":
			if st.closing {
				return "deleted"
			}
			return "enabled"
		case "operStatus":
			if st.closing {
				return "closing"
			}
			return "up"
		case "uptimeSeconds":
			return v.a.since(st.opened, v.now)
		case "lastDlvSeconds":
			// qdrouterd keeps the tick of the last delivery, 0 meaning none: one in
			// the router's first second is none.
			if !st.lastDelivery.IsZero() && v.a.ticks(st.lastDelivery) > 0 {
				return v.a.since(st.lastDelivery, v.now)
			}
		case "enableProtocolTrace":
			if st.trace != nil {
				return *st.trace
			}
			return v.r.opts.Trace != nil
		}
		return nil
	}
}

// connProperties are a client's open properties as qdrouterd shows them: text and
// integer values under text keys (others it cannot show).
func connProperties(c *engine.Conn) *wire.Map {
	m := &wire.Map{}
	open := c.RemoteOpen()
	if open == nil {
		return m
	}
	keys := make([]string, 0, len(open.Properties))
	for k := range open.Properties {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch x := open.Properties[wire.Symbol(k)].(type) {
		case string:
			m.Set(k, x)
		case wire.Symbol:
			m.Set(k, string(x))
		case int32:
			if x != 0 {
				m.Set(k, x)
			}
		case int64:
			if x != 0 {
				m.Set(k, int32(x))
			}
		}
	}
	return m
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

func cipherBits(name string) int64 {
	switch {
	case strings.Contains(name, "AES_256"), strings.Contains(name, "CHACHA20"):
		return 256
	case strings.Contains(name, "AES_128"):
		return 128
	}
	return 0
}

// histogramWidth is qd_bitmask_width(): a link's ingressHistogram has one count per
// possible router of the network.
const histogramWidth = 128

func linkEntities(v *view) []cObject {
	out := make([]cObject, 0, len(v.links))
	for _, l := range v.links {
		out = append(out, v.link(l))
	}
	return out
}

func (v *view) link(l *engine.Link) cObject {
	st := linkStatsOf(l)
	co, isConsumer := l.Context.(*consumer)
	p, _ := l.Context.(*producer)
	// qdrouterd shows the credit Proton had when it last looked, which for a sender is
	// what the router last granted (its deliveries in flight are not subtracted).
	credit := l.Credit()
	if !isConsumer && credit > 0 {
		credit = st.granted
	}
	return func(col string) any {
		switch col {
		case "name", "linkName":
			return l.Name()
		case "identity":
			return strconv.FormatUint(st.id, 10)
		case "type":
			return mgmtPrefix + "router.link"
		case "linkType":
			return "endpoint"
		case "linkDir":
			if isConsumer {
				return "out"
			}
			return "in"
		case "owningAddr":
			switch {
			case isConsumer:
				return nodeKey(co.node)
			case p.node != nil:
				return nodeKey(p.node)
			}
		case "capacity":
			return v.a.c.capacity
		case "undeliveredCount":
			if isConsumer {
				return uint64(len(co.undelivered))
			}
			return uint64(0)
		case "unsettledCount":
			if isConsumer {
				return uint64(max(co.outstanding, 0))
			}
			return uint64(p.inFlight)
		case "deliveryCount":
			return st.deliveries
		case "connectionId":
			return strconv.FormatUint(l.Conn().ID(), 10)
		case "adminStatus":
			return "enabled"
		case "operStatus":
			return "up"
		case "presettledCount":
			return st.presettled
		case "droppedPresettledCount":
			return st.droppedPresett
		case "acceptedCount":
			return st.accepted
		case "rejectedCount":
			return st.rejected
		case "releasedCount":
			return st.released
		case "modifiedCount":
			return st.modified
		case "deliveriesDelayed1Sec", "deliveriesDelayed10Sec", "deliveriesStuck":
			return uint64(0)
		case "ingressHistogram":
			if isConsumer {
				h := make([]any, histogramWidth)
				for i := range h {
					h[i] = uint64(0)
				}
				h[0] = st.deliveries
				return h
			}
		case "priority":
			return uint32(4)
		case "settleRate":
			return uint32(0)
		case "creditAvailable":
			return credit
		case "zeroCreditSeconds":
			if credit > 0 || st.zeroSince.IsZero() {
				return uint32(0)
			}
			return v.a.since(st.zeroSince, v.now)
		}
		return nil
	}
}

func addressEntities(v *view) []cObject {
	nodes := v.nodes()
	out := make([]cObject, len(nodes))
	for i, n := range nodes {
		out[i] = v.address(n)
	}
	return out
}

func (v *view) address(n *node) cObject {
	key := nodeKey(n)
	local := uint32(0)
	remote := map[*Router]bool{}
	for _, co := range n.consumers {
		if co.r == v.r {
			local++
		} else {
			remote[co.r] = true
		}
	}
	return func(col string) any {
		switch col {
		case "name", "identity", "key":
			return key
		case "type":
			return mgmtPrefix + "router.address"
		case "distribution":
			if n.dynamic || strings.HasPrefix(key, "Ltemp.") {
				return string(Balanced) // qdrouterd's dynamic addresses show balanced
			}
			return string(n.dist)
		case "inProcess":
			return n.mgmt.inProcess
		case "subscriberCount":
			return local
		case "remoteCount":
			return uint32(len(remote))
		case "containerCount":
			return uint32(0)
		case "remoteHostRouters":
			ids := []string{}
			for r := range remote {
				ids = append(ids, r.opts.ID)
			}
			sort.Strings(ids)
			out := make([]any, len(ids))
			for i, id := range ids {
				out[i] = id
			}
			return out
		case "deliveriesIngress":
			return n.counts.Ingress
		case "deliveriesEgress":
			return n.mgmt.egress
		case "deliveriesToContainer":
			return n.mgmt.toContainer
		case "deliveriesFromContainer":
			return n.mgmt.fromContainer
		case "deliveriesTransit", "deliveriesEgressRouteContainer", "deliveriesIngressRouteContainer",
			"deliveriesRedirectedToFallback":
			return uint64(0)
		case "transitOutstanding":
			if n.mgmt.egress > 0 && n.dist != Multicast {
				h := make([]any, histogramWidth)
				for i := range h {
					h[i] = int64(0)
				}
				return h
			}
		case "trackedDeliveries":
			return int64(0)
		case "priority":
			return int32(-1)
		}
		return nil
	}
}

func configAddresses(v *view) []cObject {
	rules := v.a.c.table.rules
	out := make([]cObject, len(rules))
	for i := range rules {
		rule := rules[i].rule
		name := "address/" + strconv.Itoa(i)
		identity := strconv.Itoa(i + 1)
		out[i] = func(col string) any {
			switch col {
			case "name":
				return name
			case "identity":
				return identity
			case "type":
				return mgmtPrefix + "router.config.address"
			case "prefix":
				if rule.Prefix != "" {
					return rule.Prefix
				}
			case "pattern":
				if rule.Pattern != "" {
					return rule.Pattern
				}
			case "distribution":
				switch rule.Distribution {
				case Multicast, Closest, Balanced:
					return string(rule.Distribution)
				}
			case "waypoint", "fallback":
				return false
			case "ingressPhase", "egressPhase":
				return int32(0)
			case "priority":
				return int32(-1)
			}
			return nil
		}
	}
	return out
}

func configLinkRoutes(v *view) []cObject {
	c := v.a.c
	out := make([]cObject, len(c.routes))
	for i := range c.routes {
		lr := c.routes[i].route
		active := v.a.routeActive(&lr)
		name := "linkRoute/" + strconv.Itoa(i)
		identity := strconv.Itoa(len(c.table.rules) + i + 1)
		out[i] = func(col string) any {
			switch col {
			case "name":
				return name
			case "identity":
				return identity
			case "type":
				return mgmtPrefix + "router.config.linkRoute"
			case "prefix":
				if lr.Prefix != "" {
					return lr.Prefix
				}
			case "pattern":
				if lr.Pattern != "" {
					return lr.Pattern
				}
			case "distribution":
				return "linkBalanced"
			case "connection":
				if lr.Connection != "" {
					return lr.Connection
				}
			case "containerId":
				if lr.ContainerID != "" && lr.Connection == "" {
					return lr.ContainerID
				}
			case "direction", "dir":
				return lr.Direction
			case "operStatus":
				if active {
					return "active"
				}
				return "inactive"
			}
			return nil
		}
	}
	return out
}

// routeActive reports whether a route container that serves route is connected (its
// operStatus is then active). It takes the link routes' lock under the core's.
func (a *agent) routeActive(route *LinkRoute) bool {
	lr := &a.c.lr
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, bc := range lr.open {
		if route.serves(bc) {
			return true
		}
	}
	return false
}
