package fakerouter

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The Python agent: qdrouterd's qpid_dispatch_internal/management/agent.py, which
// answers what the C agent does not take: the management node's own operations
// (GET-TYPES, GET-ATTRIBUTES, GET-OPERATIONS, GET-ANNOTATIONS, GET-MGMT-NODES,
// GET-SCHEMA, GET-JSON-SCHEMA, GET-LOG, PROFILE, QUERY, READ) and the entities it keeps
// itself (the management node, the router's configuration, listeners, configured
// addresses and link routes, the policy).

// pyStatus is an error the Python agent raises (ManagementError and its subclasses).
type pyStatus struct {
	status int32
	desc   string
}

func (e *pyStatus) Error() string { return e.desc }

func badRequest(format string, args ...any) *pyStatus {
	return &pyStatus{400, fmt.Sprintf(format, args...)}
}

func notFoundStatus(format string, args ...any) *pyStatus {
	return &pyStatus{404, fmt.Sprintf(format, args...)}
}

func notImplemented(format string, args ...any) *pyStatus {
	return &pyStatus{501, fmt.Sprintf(format, args...)}
}

func internalError(format string, args ...any) *pyStatus {
	return &pyStatus{500, fmt.Sprintf(format, args...)}
}

// pyEntity is an entity of the Python agent's cache.
type pyEntity struct {
	typ   *schemaType
	attrs *wire.Map
}

func (e *pyEntity) get(name string) any {
	v, _ := e.attrs.Get(name)
	return v
}

// pyAgent answers as agent.py's Agent.receive does.
func (a *agent) pyAgent(r *Router, req *mgmtRequest) response {
	status, body, err := a.pyHandle(r, req)
	if err != nil {
		return pyError(err.status, err.desc)
	}
	if body == nil {
		body = pairs()
	}
	desc := statusText[status]
	return response{status: status, desc: desc, python: true, body: body}
}

func (a *agent) pyHandle(r *Router, req *mgmtRequest) (int32, any, *pyStatus) {
	s := theSchema()
	opv, ok := req.props["operation"]
	if !ok {
		return 0, nil, badRequest("No 'operation' property: %s", req.pyRepr())
	}
	op, isText := opv.(string)
	if sym, isSym := opv.(wire.Symbol); isSym {
		op, isText = string(sym), true
	}
	if !isText {
		return 0, nil, internalError("AttributeError: '%s' object has no attribute 'lower'", pyTypeName(opv))
	}
	if strings.ToLower(op) == "create" {
		return 0, nil, notImplemented("%s", notSupported("CREATE"))
	}
	target, err := a.findEntity(r, req)
	if err != nil {
		return 0, nil, err
	}
	upper := strings.ToUpper(op)
	allowed := false
	for _, o := range target.typ.operations {
		allowed = allowed || o == upper
	}
	if !allowed {
		return 0, nil, notImplemented("Operation '%s' not implemented for '%s' %s", upper, target.typ.name, pyRepr(target.typ.operations))
	}
	method := strings.ReplaceAll(strings.ToLower(op), "-", "_")
	if target.typ.name == mgmtPrefix+"management" {
		switch method {
		case "query":
			return a.pyQuery(r, s, req)
		case "get_types":
			t, err := requestedType(s, req)
			if err != nil {
				return 0, nil, err
			}
			m := &wire.Map{}
			for _, et := range s.types {
				if t == nil || et.isA(t) {
					m.Set(et.name, stringList(et.bases))
				}
			}
			return 200, m, nil
		case "get_annotations":
			return 200, pairs(), nil
		case "get_operations", "get_attributes":
			t, err := requestedType(s, req)
			if err != nil {
				return 0, nil, err
			}
			m := &wire.Map{}
			for _, et := range s.types {
				if t == nil || t == et {
					if method == "get_operations" {
						m.Set(et.name, stringList(et.operations))
					} else {
						m.Set(et.name, stringList(et.attributeNames()))
					}
				}
			}
			return 200, m, nil
		case "get_mgmt_nodes":
			return 200, []any{}, nil // standalone: no other routers
		case "get_schema":
			return 200, s.dump, nil
		case "get_json_schema":
			indent, set, err := req.pyIntProp("indent")
			if err != nil {
				return 0, nil, err
			}
			return 200, pyJSON(s.dump, indent, set), nil
		case "get_log":
			if _, _, err := req.pyIntProp("limit"); err != nil {
				return 0, nil, err
			}
			return 200, []any{}, nil // the fake keeps no log
		case "profile":
			return a.profile(req)
		}
	}
	switch method {
	case "read":
		if tv, ok := req.props["type"]; ok && tv != nil {
			want := s.longName(fmt.Sprint(textOf(tv)))
			if want != "" && target.typ.name != want {
				return 0, nil, notFoundStatus("Entity type '%s' does match requested type '%s'", target.typ.name, want)
			}
		}
		return 200, target.attrs, nil
	case "update", "delete":
		return 0, nil, notImplemented("%s", notSupported(strings.ToUpper(op)+" of "+target.typ.name))
	}
	return 0, nil, notImplemented("Operation '%s' not implemented on %s", op, target.typ.name)
}

func textOf(v any) any {
	if s, ok := v.(wire.Symbol); ok {
		return string(s)
	}
	return v
}

func stringList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// requestedType is ManagementEntity.requested_type: the entityType property's type,
// nil when there is none.
func requestedType(s *mgmtSchema, req *mgmtRequest) (*schemaType, *pyStatus) {
	v := req.props["entityType"]
	if v == nil || v == "" {
		return nil, nil
	}
	name := fmt.Sprint(textOf(v))
	t := s.lookup(name)
	if t == nil {
		return nil, badRequest("No such entity type '%s'", name)
	}
	return t, nil
}

// pyIntProp is ManagementEntity._intprop: int(value) when the property is set.
func (q *mgmtRequest) pyIntProp(key string) (int, bool, *pyStatus) {
	v := q.props[key]
	switch v := textOf(v).(type) {
	case nil:
		return 0, false, nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, false, internalError("ValueError: invalid literal for int() with base 10: %s", pyQuote(v))
		}
		return n, true, nil
	case bool:
		if v {
			return 1, true, nil
		}
		return 0, true, nil
	case float32:
		return int(v), true, nil
	case float64:
		return int(v), true, nil
	}
	if n, ok := q.intProp(key); ok {
		if _, isInt := pythonValue(v).(int); isInt {
			return int(n), true, nil
		}
	}
	return 0, false, internalError("TypeError: int() argument must be a string, a bytes-like object or a real number, not '%s'", pyTypeName(v))
}

func (a *agent) profile(req *mgmtRequest) (int32, any, *pyStatus) {
	if req.has("start") {
		a.profiling = true
		return 200, nil, nil
	}
	if !a.profiling {
		return 0, nil, badRequest("Profiler not started")
	}
	if req.has("stop") {
		a.profiling = false
		return 200, "", nil
	}
	return 0, nil, badRequest("Bad profile request %s", req.pyRepr())
}

// pyQuery is ManagementEntity.query: offset and count are not looked at.
func (a *agent) pyQuery(r *Router, s *mgmtSchema, req *mgmtRequest) (int32, any, *pyStatus) {
	t, err := requestedType(s, req)
	if err != nil {
		return 0, nil, err
	}
	var all []string
	if t != nil {
		all = t.attributeNames()
	} else {
		all = s.allAttrs
	}
	body, isMap := req.body.(*wire.Map)
	if !isMap {
		return 0, nil, internalError("AttributeError: '%s' object has no attribute 'get'", pyTypeName(req.body))
	}
	namesV, _ := body.Get("attributeNames")
	var names []string
	switch nv := textOf(namesV).(type) {
	case nil:
	case string:
		for _, r := range nv { // a string is a sequence of characters to Python
			names = append(names, string(r))
		}
	case []any:
		var unknown []any
		for _, n := range nv {
			s, ok := textOf(n).(string)
			if !ok || !contains(all, s) {
				unknown = append(unknown, n)
				continue
			}
			names = append(names, s)
		}
		if len(unknown) > 0 {
			forType := ""
			if t != nil {
				forType = " for type " + t.name
			}
			return 0, nil, notFoundStatus("Unknown attributes %s%s.", pyRepr(unknown), forType)
		}
	case *wire.Map:
		for _, e := range nv.Entries {
			if s, ok := textOf(e.Key).(string); ok {
				names = append(names, s)
			}
		}
	default:
		if nv != false && nv != 0 {
			return 0, nil, internalError("TypeError: '%s' object is not iterable", pyTypeName(namesV))
		}
	}
	if len(names) > 0 {
		var unknown []any
		for _, n := range names {
			if !contains(all, n) {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			forType := ""
			if t != nil {
				forType = " for type " + t.name
			}
			return 0, nil, notFoundStatus("Unknown attributes %s%s.", pyRepr(unknown), forType)
		}
	} else {
		names = all
	}
	results := []any{}
	for _, e := range a.pyEntities(r) {
		if t != nil && !e.typ.isA(t) {
			continue
		}
		row := make([]any, len(names))
		nonEmpty := false
		for i, n := range names {
			row[i] = e.get(n)
			nonEmpty = nonEmpty || row[i] != nil
		}
		if nonEmpty {
			results = append(results, row)
		}
	}
	return 200, pairs("attributeNames", stringList(names), "results", results), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// findEntity is Agent.find_entity: the entity named by the name or identity property,
// or the management node itself when neither is given.
func (a *agent) findEntity(r *Router, req *mgmtRequest) (*pyEntity, *pyStatus) {
	s := theSchema()
	var requested *schemaType
	if tv := req.props["type"]; tv != nil && tv != "" {
		name := fmt.Sprint(textOf(tv))
		if requested = s.lookup(name); requested == nil {
			return nil, badRequest("No such entity type '%s'", name)
		}
	}
	entities := a.pyEntities(r)
	mgmt := entities[0]
	var keys []string
	for _, k := range []string{"name", "identity"} {
		if req.has(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if requested == nil || mgmt.typ.isA(requested) {
			return mgmt, nil
		}
		return nil, badRequest("%s: No name or identity provided", requested.name)
	}
	attrvals := func() string {
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + pyStr(req.props[k])
		}
		return strings.Join(parts, " ")
	}
	k := keys[0]
	want := textOf(req.props[k])
	var found []*pyEntity
	for _, e := range entities {
		if e.get(k) == want {
			found = append(found, e)
		}
	}
	switch {
	case len(found) > 1:
		return nil, internalError("Duplicate (%d) entities with %s=%s", len(found), k, pyStr(want))
	case len(found) == 0:
		return nil, notFoundStatus("No entity with %s", attrvals())
	}
	e := found[0]
	for _, k := range keys {
		if e.get(k) != textOf(req.props[k]) {
			return nil, badRequest("Conflicting %s", attrvals())
		}
	}
	if requested != nil && !e.typ.isA(requested) {
		return nil, badRequest("Entity type '%s' does not extend requested type '%s'", e.typ.name, requested.name)
	}
	return e, nil
}

// pyStr is Python's str() of a value.
func pyStr(v any) string {
	switch v := textOf(v).(type) {
	case string:
		return v
	case nil:
		return "None"
	}
	return pyRepr(v)
}

// pyEntities are the entities of the Python agent's cache: the management node, the
// router's configuration, the policy, the configured addresses and link routes, and
// the listener. (qdrouterd also keeps log, logStats and allocator entities, which the
// fake has no figures for.)
func (a *agent) pyEntities(r *Router) []*pyEntity {
	s := theSchema()
	var out []*pyEntity
	add := func(short string, given *wire.Map, name string) {
		t := s.lookup(short)
		e := &pyEntity{typ: t, attrs: &wire.Map{}}
		e.attrs.Set("type", t.name)
		for _, en := range given.Entries {
			e.attrs.Set(en.Key, en.Value)
		}
		for _, at := range t.attributes {
			if at.defValue == nil || at.name == "name" || at.name == "identity" || at.name == "type" {
				continue
			}
			if _, ok := e.attrs.Get(at.name); !ok {
				e.attrs.Set(at.name, at.defValue)
			}
		}
		e.attrs.Set("identity", name)
		e.attrs.Set("name", name)
		out = append(out, e)
	}
	out = append(out, &pyEntity{typ: s.lookup("management"),
		attrs: pairs("identity", "self", "name", "self", "type", mgmtPrefix+"management")})
	add("router", pairs("mode", "standalone", "id", r.opts.ID, "workerThreads", int(workerThreads())), "router/"+r.opts.ID)
	open := 0
	for _, conn := range r.srv.Conns() {
		if conn.RemoteOpen() != nil {
			open++
		}
	}
	add("policy", pairs(), "policy/None")
	pol := out[len(out)-1].attrs
	pol.Set("connectionsProcessed", int(a.processed))
	pol.Set("connectionsDenied", 0)
	pol.Set("connectionsCurrent", open)
	pol.Set("linksDenied", 0)
	pol.Set("maxMessageSizeDenied", 0)
	pol.Set("totalDenials", 0)
	for i, rule := range a.c.table.rules {
		given := &wire.Map{}
		if rule.rule.Prefix != "" {
			given.Set("prefix", rule.rule.Prefix)
		} else {
			given.Set("pattern", rule.rule.Pattern)
		}
		given.Set("distribution", string(rule.rule.Distribution))
		add("router.config.address", given, "address/"+strconv.Itoa(i))
	}
	for i, cr := range a.c.routes {
		lr := cr.route
		given := &wire.Map{}
		if lr.Prefix != "" {
			given.Set("prefix", lr.Prefix)
		} else {
			given.Set("pattern", lr.Pattern)
		}
		given.Set("direction", lr.Direction)
		if lr.Connection != "" {
			given.Set("connection", lr.Connection)
		}
		if lr.ContainerID != "" {
			given.Set("containerId", lr.ContainerID)
		}
		add("router.config.linkRoute", given, "linkRoute/"+strconv.Itoa(i))
	}
	host, port, err := net.SplitHostPort(r.Addr())
	if err == nil {
		add("listener", a.listenerAttrs(r, host, port), "listener/"+host+":"+port)
	}
	return out
}

// listenerAttrs are the listener's configured attributes: the ConfigFile's listener
// when there is one, else what the router's options amount to.
func (a *agent) listenerAttrs(r *Router, host, port string) *wire.Map {
	o := r.opts
	m := pairs("host", host, "port", port, "role", "normal")
	mechs := "ANONYMOUS"
	switch {
	case len(o.Users) > 0 && o.DenyAnonymous:
		mechs = "PLAIN"
	case len(o.Users) > 0:
		mechs = "ANONYMOUS PLAIN"
	}
	if o.AllowExternal {
		mechs += " EXTERNAL"
	}
	m.Set("authenticatePeer", o.DenyAnonymous)
	m.Set("saslMechanisms", mechs)
	if o.ConfigFile != "" {
		if cfg, err := LoadConfig(o.ConfigFile); err == nil {
			for _, l := range cfg.Listeners {
				if l.Role != "normal" {
					continue
				}
				for _, k := range []string{"authenticatePeer", "saslMechanisms"} {
					if v, ok := l.Attributes[k]; ok {
						if k == "authenticatePeer" {
							b, _ := parseBool(v)
							m.Set(k, b)
						} else {
							m.Set(k, v)
						}
					}
				}
				break
			}
		}
	}
	if o.RequireTLS {
		m.Set("requireSsl", true)
	}
	m.Set("maxFrameSize", int(o.MaxFrameSize))
	m.Set("idleTimeoutSeconds", int(o.IdleTimeout.Seconds()))
	return m
}

// pyRepr of a request is the Python agent's repr of its Message.
func (q *mgmtRequest) pyRepr() string {
	addr := any(nil)
	if q.to != "" {
		addr = q.to
	}
	props := any(nil)
	if q.hasProps {
		m := &wire.Map{}
		for k, v := range q.props {
			m.Set(k, v)
		}
		sortMap(m)
		props = m
	}
	replyTo := any(nil)
	if q.replyTo != "" {
		replyTo = q.replyTo
	}
	ct := any(nil)
	if q.contentType != "" {
		ct = q.contentType
	}
	return fmt.Sprintf("Message(address=%s, properties=%s, body=%s, reply_to=%s, correlation_id=%s, content_type=%s)",
		pyRepr(addr), pyRepr(props), pyRepr(q.body), pyRepr(replyTo), pyRepr(pythonValue(q.correlation)), pyRepr(ct))
}

func sortMap(m *wire.Map) {
	e := m.Entries
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && fmt.Sprint(e[j-1].Key) > fmt.Sprint(e[j].Key); j-- {
			e[j-1], e[j] = e[j], e[j-1]
		}
	}
}
