package differential

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// laneKind is the part of a connection a frame belongs to.
type laneKind uint8

const (
	laneConn laneKind = iota
	laneSession
	laneLink
)

// lane identifies a lane before masking: a session by the client's channel, a link
// by its name.
type lane struct {
	kind laneKind
	sess int
	link string
}

// described is a Frame with what normalization needs to know about it.
type described struct {
	Frame
	lane lane
	at   time.Time
}

// describer turns records into frames, one connection's state at a time.
type describer struct {
	conns map[int]*connState
}

type sessKey struct {
	dir  Direction
	sess int
}

type handleKey struct {
	dir    Direction
	sess   int
	handle uint32
}

type deliveryKey struct {
	owner Direction
	sess  int
	id    uint32
}

type linkState struct {
	name      string
	senderDir Direction
	init      *uint32
}

type connState struct {
	peerToClient  map[uint16]int // the intermediary's channel -> the client's
	base          map[sessKey]uint32
	firstDelivery map[sessKey]uint32
	links         map[handleKey]*linkState
	byName        map[string]*linkState
	deliveries    map[deliveryKey]string
	partial       map[handleKey][]byte
}

func newConnState() *connState {
	return &connState{
		peerToClient:  map[uint16]int{},
		base:          map[sessKey]uint32{},
		firstDelivery: map[sessKey]uint32{},
		links:         map[handleKey]*linkState{},
		byName:        map[string]*linkState{},
		deliveries:    map[deliveryKey]string{},
		partial:       map[handleKey][]byte{},
	}
}

// describe turns a trace's records into frames with their fields and lanes.
func describe(records []record) []described {
	d := describer{conns: map[int]*connState{}}
	out := make([]described, 0, len(records))
	for _, r := range records {
		out = append(out, d.one(r))
	}
	return out
}

// session returns the session key of a frame on channel ch sent by dir: the client's
// channel; the intermediary's channels are mapped through its begin's remote-channel.
func (c *connState) session(dir Direction, ch uint16) int {
	if dir == FromClient {
		return int(ch)
	}
	if s, ok := c.peerToClient[ch]; ok {
		return s
	}
	return 1<<16 + int(ch) // a session the intermediary began
}

func (d *describer) one(r record) described {
	c := d.conns[r.conn]
	if c == nil {
		c = newConnState()
		d.conns[r.conn] = c
	}
	f := described{Frame: Frame{Conn: r.conn, Dir: r.dir, Channel: r.channel}, at: r.at}
	b := &fields{}
	switch {
	case r.header != nil:
		f.Type = "header"
		proto := map[byte]string{wire.ProtoAMQP: "amqp", wire.ProtoSASL: "sasl", wire.ProtoTLS: "tls"}[r.header.ID]
		if proto == "" {
			proto = strconv.Itoa(int(r.header.ID))
		}
		b.add("protocol", proto, roleLiteral)
		b.add("version", fmt.Sprintf("%d.%d.%d", r.header.Major, r.header.Minor, r.header.Revision), roleLiteral)
	case r.problem != "" && r.body == nil:
		f.Type = "undecoded"
		f.Problem = r.problem
	case r.sasl:
		describeSASL(&f, b, r.body)
	case r.body == nil:
		f.Type = "empty"
	default:
		c.describePerformative(&f, b, r)
	}
	f.Fields = b.fs
	return f
}

func describeSASL(f *described, b *fields, body any) {
	switch x := body.(type) {
	case *wire.SASLMechanisms:
		f.Type = "sasl-mechanisms"
		b.add("sasl-server-mechanisms", symbols(x.SASLServerMechanisms), roleLiteral)
	case *wire.SASLInit:
		f.Type = "sasl-init"
		b.add("mechanism", string(x.Mechanism), roleLiteral)
		if x.InitialResponse != nil {
			b.add("initial-response", fmt.Sprintf("<%d bytes>", len(x.InitialResponse)), roleLiteral)
		}
		if x.Hostname != "" {
			b.add("hostname", x.Hostname, roleLiteral)
		}
	case *wire.SASLChallenge:
		f.Type = "sasl-challenge"
		b.add("challenge", fmt.Sprintf("<%d bytes>", len(x.Challenge)), roleLiteral)
	case *wire.SASLResponse:
		f.Type = "sasl-response"
		b.add("response", fmt.Sprintf("<%d bytes>", len(x.Response)), roleLiteral)
	case *wire.SASLOutcome:
		f.Type = "sasl-outcome"
		b.add("code", x.Code.String(), roleLiteral)
		if x.AdditionalData != nil {
			b.add("additional-data", formatValue(x.AdditionalData), roleLiteral)
		}
	default:
		f.Type = "undecoded"
		f.Problem = fmt.Sprintf("SASL frame %T", body)
	}
}

func (c *connState) describePerformative(f *described, b *fields, r record) {
	dir := r.dir
	sess := c.session(dir, r.channel)
	f.lane = lane{kind: laneSession, sess: sess}
	switch x := r.body.(type) {
	case *wire.Open:
		f.Type = "open"
		f.lane = lane{kind: laneConn}
		b.add("container-id", x.ContainerID, roleContainer)
		if x.Hostname != "" {
			b.add("hostname", x.Hostname, roleLiteral)
		}
		if x.MaxFrameSize != math.MaxUint32 {
			b.num("max-frame-size", uint64(x.MaxFrameSize))
		}
		if x.ChannelMax != math.MaxUint16 {
			b.num("channel-max", uint64(x.ChannelMax))
		}
		if x.IdleTimeOut != 0 {
			b.num("idle-time-out", uint64(x.IdleTimeOut))
		}
		b.symbols("outgoing-locales", x.OutgoingLocales)
		b.symbols("incoming-locales", x.IncomingLocales)
		b.symbols("offered-capabilities", x.OfferedCapabilities)
		b.symbols("desired-capabilities", x.DesiredCapabilities)
		b.fieldsMap("properties", x.Properties)
	case *wire.Begin:
		f.Type = "begin"
		if x.RemoteChannel != nil {
			if dir == FromPeer {
				c.peerToClient[r.channel] = int(*x.RemoteChannel)
				sess = int(*x.RemoteChannel)
				f.lane.sess = sess
			}
			b.addOwned("remote-channel", strconv.Itoa(int(*x.RemoteChannel)), roleChannel, dir.other())
		}
		c.base[sessKey{dir, sess}] = x.NextOutgoingID
		b.add("next-outgoing-id", strconv.FormatUint(uint64(x.NextOutgoingID), 10), roleBase)
		b.num("incoming-window", uint64(x.IncomingWindow))
		b.num("outgoing-window", uint64(x.OutgoingWindow))
		if x.HandleMax != math.MaxUint32 {
			b.num("handle-max", uint64(x.HandleMax))
		}
		b.symbols("offered-capabilities", x.OfferedCapabilities)
		b.symbols("desired-capabilities", x.DesiredCapabilities)
		b.fieldsMap("properties", x.Properties)
	case *wire.Attach:
		f.Type = "attach"
		ls := c.byName[x.Name]
		if ls == nil {
			ls = &linkState{name: x.Name}
			c.byName[x.Name] = ls
		}
		if x.Role == wire.RoleSender {
			ls.senderDir = dir
			if x.InitialDeliveryCount != nil {
				v := *x.InitialDeliveryCount
				ls.init = &v
			}
		} else if ls.senderDir == 0 {
			ls.senderDir = dir.other()
		}
		c.links[handleKey{dir, sess, x.Handle}] = ls
		f.lane = lane{kind: laneLink, sess: sess, link: x.Name}
		b.add("name", x.Name, roleName)
		b.addOwned("handle", strconv.FormatUint(uint64(x.Handle), 10), roleHandle, dir)
		b.add("role", x.Role.String(), roleLiteral)
		b.add("snd-settle-mode", x.SndSettleMode.String(), roleLiteral)
		b.add("rcv-settle-mode", x.RcvSettleMode.String(), roleLiteral)
		b.source("source", x.Source)
		switch {
		case x.Coordinator != nil:
			b.add("target", "coordinator", roleLiteral)
			b.symbols("target.capabilities", x.Coordinator.Capabilities)
		default:
			b.target("target", x.Target)
		}
		if x.Unsettled != nil {
			b.add("unsettled", fmt.Sprintf("<%d entries>", x.Unsettled.Len()), roleLiteral)
		}
		if x.IncompleteUnsettled {
			b.add("incomplete-unsettled", "true", roleLiteral)
		}
		if x.InitialDeliveryCount != nil {
			b.add("initial-delivery-count", strconv.FormatUint(uint64(*x.InitialDeliveryCount), 10), roleBase)
		}
		if x.MaxMessageSize != 0 {
			b.num("max-message-size", x.MaxMessageSize)
		}
		b.symbols("offered-capabilities", x.OfferedCapabilities)
		b.symbols("desired-capabilities", x.DesiredCapabilities)
		b.fieldsMap("properties", x.Properties)
	case *wire.Flow:
		f.Type = "flow"
		var ls *linkState
		if x.Handle != nil {
			ls = c.links[handleKey{dir, sess, *x.Handle}]
			if ls != nil {
				f.lane = lane{kind: laneLink, sess: sess, link: ls.name}
			}
		}
		if x.NextIncomingID != nil {
			b.rel("next-incoming-id", *x.NextIncomingID, c.base, sessKey{dir.other(), sess})
		}
		b.num("incoming-window", uint64(x.IncomingWindow))
		b.rel("next-outgoing-id", x.NextOutgoingID, c.base, sessKey{dir, sess})
		b.num("outgoing-window", uint64(x.OutgoingWindow))
		if x.Handle != nil {
			b.addOwned("handle", strconv.FormatUint(uint64(*x.Handle), 10), roleHandle, dir)
		}
		if x.DeliveryCount != nil {
			v := *x.DeliveryCount
			switch {
			case ls != nil && ls.init != nil:
				b.addRel("delivery-count", v, relative(v, *ls.init))
			default:
				b.add("delivery-count", strconv.FormatUint(uint64(v), 10), roleBase)
			}
		}
		if x.LinkCredit != nil {
			b.num("link-credit", uint64(*x.LinkCredit))
		}
		if x.Available != nil {
			b.num("available", uint64(*x.Available))
		}
		if x.Drain {
			b.add("drain", "true", roleLiteral)
		}
		if x.Echo {
			b.add("echo", "true", roleLiteral)
		}
		b.fieldsMap("properties", x.Properties)
		// The session's window state depends on how frames crossed in time, not on
		// behaviour: shown, not compared.
		for i := range b.fs {
			switch b.fs[i].Name {
			case "next-incoming-id", "incoming-window", "next-outgoing-id", "outgoing-window":
				b.fs[i].Loose = true
			}
		}
	case *wire.Transfer:
		f.Type = "transfer"
		hk := handleKey{dir, sess, x.Handle}
		if ls := c.links[hk]; ls != nil {
			f.lane = lane{kind: laneLink, sess: sess, link: ls.name}
		}
		b.addOwned("handle", strconv.FormatUint(uint64(x.Handle), 10), roleHandle, dir)
		if x.DeliveryID != nil {
			id := *x.DeliveryID
			sk := sessKey{dir, sess}
			if _, ok := c.firstDelivery[sk]; !ok {
				c.firstDelivery[sk] = id
			}
			b.addRel("delivery-id", id, relative(id, c.firstDelivery[sk]))
			if ls := c.links[hk]; ls != nil {
				c.deliveries[deliveryKey{dir, sess, id}] = ls.name
			}
		}
		if x.DeliveryTag != nil {
			b.add("delivery-tag", fmt.Sprintf("%x", x.DeliveryTag), roleTag)
		}
		if x.MessageFormat != nil && *x.MessageFormat != 0 {
			b.num("message-format", uint64(*x.MessageFormat))
		}
		if x.Settled {
			b.add("settled", "true", roleLiteral)
		}
		if x.More {
			b.add("more", "true", roleLiteral)
		}
		if x.RcvSettleMode != nil {
			b.add("rcv-settle-mode", x.RcvSettleMode.String(), roleLiteral)
		}
		if x.State != nil {
			b.state("state", x.State)
		}
		if x.Resume {
			b.add("resume", "true", roleLiteral)
		}
		if x.Aborted {
			b.add("aborted", "true", roleLiteral)
		}
		if x.Batchable {
			b.add("batchable", "true", roleLiteral)
		}
		payload := append(c.partial[hk], r.payload...)
		switch {
		case x.Aborted:
			delete(c.partial, hk)
		case x.More:
			c.partial[hk] = payload
		default:
			delete(c.partial, hk)
			b.message(payload)
		}
	case *wire.Disposition:
		f.Type = "disposition"
		owner := dir
		if x.Role == wire.RoleReceiver {
			owner = dir.other()
		}
		sk := sessKey{owner, sess}
		b.add("role", x.Role.String(), roleLiteral)
		first, known := c.firstDelivery[sk]
		idField := func(name string, v uint32) {
			if known {
				b.addRel(name, v, relative(v, first))
			} else {
				b.add(name, strconv.FormatUint(uint64(v), 10), roleBase)
			}
		}
		idField("first", x.First)
		last := x.First
		if x.Last != nil {
			last = *x.Last
			idField("last", last)
		}
		b.add("settled", strconv.FormatBool(x.Settled), roleLiteral)
		if x.State != nil {
			b.state("state", x.State)
		}
		if x.Batchable {
			b.add("batchable", "true", roleLiteral)
		}
		l1, ok1 := c.deliveries[deliveryKey{owner, sess, x.First}]
		l2, ok2 := c.deliveries[deliveryKey{owner, sess, last}]
		if ok1 && ok2 && l1 == l2 {
			f.lane = lane{kind: laneLink, sess: sess, link: l1}
		}
	case *wire.Detach:
		f.Type = "detach"
		hk := handleKey{dir, sess, x.Handle}
		if ls := c.links[hk]; ls != nil {
			f.lane = lane{kind: laneLink, sess: sess, link: ls.name}
			delete(c.links, hk)
		}
		b.addOwned("handle", strconv.FormatUint(uint64(x.Handle), 10), roleHandle, dir)
		b.add("closed", strconv.FormatBool(x.Closed), roleLiteral)
		b.error("error", x.Error)
	case *wire.End:
		f.Type = "end"
		b.error("error", x.Error)
	case *wire.Close:
		f.Type = "close"
		f.lane = lane{kind: laneConn}
		b.error("error", x.Error)
	default:
		f.Type = "undecoded"
		f.Problem = fmt.Sprintf("performative %T", r.body)
		f.lane = lane{kind: laneConn}
	}
}

// relative formats v as an offset from base, with serial-number arithmetic.
func relative(v, base uint32) string {
	d := int32(v - base)
	if d >= 0 {
		return "+" + strconv.Itoa(int(d))
	}
	return strconv.Itoa(int(d))
}

// fields accumulates a frame's fields.
type fields struct{ fs []Field }

func (b *fields) add(name, value string, r role) {
	b.fs = append(b.fs, Field{Name: name, Value: value, role: r, Loose: r == roleLoose})
}

func (b *fields) addOwned(name, value string, r role, owner Direction) {
	b.fs = append(b.fs, Field{Name: name, Value: value, role: r, owner: owner})
}

func (b *fields) addRel(name string, v uint32, rel string) {
	b.fs = append(b.fs, Field{Name: name, Value: strconv.FormatUint(uint64(v), 10), role: roleRel, rel: rel})
}

func (b *fields) rel(name string, v uint32, bases map[sessKey]uint32, k sessKey) {
	if base, ok := bases[k]; ok {
		b.addRel(name, v, relative(v, base))
		return
	}
	b.add(name, strconv.FormatUint(uint64(v), 10), roleBase)
}

func (b *fields) num(name string, v uint64) {
	b.add(name, strconv.FormatUint(v, 10), roleLiteral)
}

func (b *fields) symbols(name string, v []wire.Symbol) {
	if len(v) > 0 {
		b.add(name, symbols(v), roleLiteral)
	}
}

func symbols(v []wire.Symbol) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = string(x)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// volatileKeys are open/attach property keys whose values change from run to run.
var volatileKeys = map[string]bool{"qd.conn-id": true}

func (b *fields) fieldsMap(name string, m wire.Fields) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := roleLiteral
		if volatileKeys[k] {
			r = roleVolatile
		}
		b.add(name+"."+k, formatValue(m[wire.Symbol(k)]), r)
	}
}

func (b *fields) annotations(name string, m wire.Annotations) {
	type kv struct {
		k string
		v any
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{formatValue(k), v})
	}
	slices.SortFunc(all, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	for _, x := range all {
		b.add(name+"."+x.k, formatValue(x.v), roleLiteral)
	}
}

func (b *fields) source(name string, s *wire.Source) {
	if s == nil {
		b.add(name, "null", roleLiteral)
		return
	}
	n := len(b.fs)
	if s.Address != "" {
		b.add(name+".address", s.Address, roleAddress)
	}
	b.terminus(name, s.Durable, s.ExpiryPolicy, s.Timeout, s.Dynamic, s.DynamicNodeProperties)
	if s.DistributionMode != "" {
		b.add(name+".distribution-mode", string(s.DistributionMode), roleLiteral)
	}
	b.fieldsMap(name+".filter", s.Filter)
	if s.DefaultOutcome != nil {
		b.state(name+".default-outcome", s.DefaultOutcome)
	}
	b.symbols(name+".outcomes", s.Outcomes)
	b.symbols(name+".capabilities", s.Capabilities)
	if len(b.fs) == n {
		b.add(name, "{}", roleLiteral)
	}
}

func (b *fields) target(name string, t *wire.Target) {
	if t == nil {
		b.add(name, "null", roleLiteral)
		return
	}
	n := len(b.fs)
	if t.Address != "" {
		b.add(name+".address", t.Address, roleAddress)
	}
	b.terminus(name, t.Durable, t.ExpiryPolicy, t.Timeout, t.Dynamic, t.DynamicNodeProperties)
	b.symbols(name+".capabilities", t.Capabilities)
	if len(b.fs) == n {
		b.add(name, "{}", roleLiteral)
	}
}

func (b *fields) terminus(name string, durable wire.TerminusDurability, expiry wire.TerminusExpiryPolicy, timeout uint32, dynamic bool, props wire.Fields) {
	if durable != wire.TerminusDurabilityNone {
		b.add(name+".durable", durable.String(), roleLiteral)
	}
	if expiry != "" && expiry != wire.TerminusExpiryPolicySessionEnd {
		b.add(name+".expiry-policy", string(expiry), roleLiteral)
	}
	if timeout != 0 {
		b.num(name+".timeout", uint64(timeout))
	}
	if dynamic {
		b.add(name+".dynamic", "true", roleLiteral)
	}
	b.fieldsMap(name+".dynamic-node-properties", props)
}

func (b *fields) error(name string, e *wire.Error) {
	if e == nil {
		return
	}
	b.add(name+".condition", string(e.Condition), roleLiteral)
	if e.Description != "" {
		b.add(name+".description", e.Description, roleLoose)
	}
	b.fieldsMap(name+".info", e.Info)
}

func (b *fields) state(name string, s wire.DeliveryState) {
	switch x := s.(type) {
	case *wire.Accepted:
		b.add(name, "accepted", roleLiteral)
	case *wire.Released:
		b.add(name, "released", roleLiteral)
	case *wire.Rejected:
		b.add(name, "rejected", roleLiteral)
		b.error(name+".error", x.Error)
	case *wire.Modified:
		b.add(name, "modified", roleLiteral)
		if x.DeliveryFailed {
			b.add(name+".delivery-failed", "true", roleLiteral)
		}
		if x.UndeliverableHere {
			b.add(name+".undeliverable-here", "true", roleLiteral)
		}
		b.fieldsMap(name+".message-annotations", x.MessageAnnotations)
	case *wire.Received:
		b.add(name, "received", roleLiteral)
		b.num(name+".section-number", uint64(x.SectionNumber))
		b.num(name+".section-offset", x.SectionOffset)
	default:
		b.add(name, formatValue(s), roleLiteral)
	}
}

// message decodes a complete transfer payload into message.* fields.
func (b *fields) message(payload []byte) {
	if len(payload) == 0 {
		return
	}
	var m wire.Message
	if err := m.Unmarshal(payload); err != nil {
		b.add("message", "undecodable: "+err.Error(), roleLiteral)
		return
	}
	if h := m.Header; h != nil {
		b.add("message.header.durable", strconv.FormatBool(h.Durable), roleLiteral)
		if h.Priority != nil {
			b.num("message.header.priority", uint64(*h.Priority))
		}
		if h.TTL != 0 {
			b.fs = append(b.fs, Field{Name: "message.header.ttl", Value: strconv.FormatUint(uint64(h.TTL), 10), role: roleApprox, num: int64(h.TTL)})
		}
		b.add("message.header.first-acquirer", strconv.FormatBool(h.FirstAcquirer), roleLiteral)
		b.num("message.header.delivery-count", uint64(h.DeliveryCount))
	}
	b.annotations("message.delivery-annotations", m.DeliveryAnnotations)
	b.annotations("message.message-annotations", m.MessageAnnotations)
	if p := m.Properties; p != nil {
		n := len(b.fs)
		if p.MessageID != nil {
			b.add("message.properties.message-id", formatValue(p.MessageID), roleMsgID)
		}
		if p.UserID != nil {
			b.add("message.properties.user-id", formatValue(p.UserID), roleLiteral)
		}
		if p.To != "" {
			b.add("message.properties.to", p.To, roleAddress)
		}
		if p.Subject != "" {
			b.add("message.properties.subject", p.Subject, roleLiteral)
		}
		if p.ReplyTo != "" {
			b.add("message.properties.reply-to", p.ReplyTo, roleAddress)
		}
		if p.CorrelationID != nil {
			b.add("message.properties.correlation-id", formatValue(p.CorrelationID), roleMsgID)
		}
		if p.ContentType != "" {
			b.add("message.properties.content-type", string(p.ContentType), roleLiteral)
		}
		if p.ContentEncoding != "" {
			b.add("message.properties.content-encoding", string(p.ContentEncoding), roleLiteral)
		}
		if !p.AbsoluteExpiryTime.IsZero() {
			b.add("message.properties.absolute-expiry-time", p.AbsoluteExpiryTime.Format(time.RFC3339Nano), roleTime)
		}
		if !p.CreationTime.IsZero() {
			b.add("message.properties.creation-time", p.CreationTime.Format(time.RFC3339Nano), roleTime)
		}
		if p.GroupID != "" {
			b.add("message.properties.group-id", p.GroupID, roleLiteral)
		}
		if p.GroupSequence != nil {
			b.num("message.properties.group-sequence", uint64(*p.GroupSequence))
		}
		if p.ReplyToGroupID != "" {
			b.add("message.properties.reply-to-group-id", p.ReplyToGroupID, roleLiteral)
		}
		if len(b.fs) == n {
			b.add("message.properties", "{}", roleLiteral)
		}
	}
	keys := make([]string, 0, len(m.ApplicationProperties))
	for k := range m.ApplicationProperties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.add("message.application-properties."+k, formatValue(m.ApplicationProperties[k]), roleLiteral)
	}
	switch {
	case m.HasValue:
		b.add("message.body", "value "+shorten(formatValue(m.Value)), roleLiteral)
	case len(m.Data) > 0:
		var all []byte
		for _, d := range m.Data {
			all = append(all, d...)
		}
		b.add("message.body", fmt.Sprintf("data(%d) %s", len(m.Data), shorten(formatValue(all))), roleLiteral)
	case len(m.Sequence) > 0:
		b.add("message.body", fmt.Sprintf("sequence(%d) %s", len(m.Sequence), shorten(formatValue(m.Sequence))), roleLiteral)
	}
	b.annotations("message.footer", m.Footer)
}

// shorten cuts long values (management responses) to keep a line readable.
func shorten(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}

// formatValue writes an AMQP value as compact text.
func formatValue(v any) string {
	var b strings.Builder
	writeValue(&b, v, 0)
	return b.String()
}

func writeValue(b *strings.Builder, v any, depth int) {
	if depth > 16 {
		b.WriteString("...")
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(x)
	case wire.Symbol:
		b.WriteString(string(x))
	case []byte:
		if utf8.Valid(x) && printable(string(x)) {
			b.WriteString(strconv.Quote(string(x)))
		} else {
			fmt.Fprintf(b, "0x%x", x)
		}
	case time.Time:
		b.WriteString(x.UTC().Format(time.RFC3339Nano))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeValue(b, e, depth+1)
		}
		b.WriteByte(']')
	case [][]any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeValue(b, e, depth+1)
		}
		b.WriteByte(']')
	case *wire.Array:
		if x == nil {
			b.WriteString("null")
			return
		}
		writeValue(b, x.Values, depth+1)
	case *wire.Map:
		if x == nil {
			b.WriteString("null")
			return
		}
		b.WriteByte('{')
		for i, e := range x.Entries {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValue(b, e.Key, depth+1)
			b.WriteString(": ")
			writeValue(b, e.Value, depth+1)
		}
		b.WriteByte('}')
	case wire.Fields:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + ": ")
			writeValue(b, x[wire.Symbol(k)], depth+1)
		}
		b.WriteByte('}')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + ": ")
			writeValue(b, x[k], depth+1)
		}
		b.WriteByte('}')
	case *wire.Described:
		if x == nil {
			b.WriteString("null")
			return
		}
		b.WriteString("described(")
		if code, ok := x.Descriptor.(uint64); ok {
			fmt.Fprintf(b, "0x%016x", code) // the registries write descriptors in hex
		} else {
			writeValue(b, x.Descriptor, depth+1)
		}
		b.WriteString(" ")
		writeValue(b, x.Value, depth+1)
		b.WriteString(")")
	case wire.UUID:
		b.WriteString(x.String())
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Struct {
			fmt.Fprintf(b, "%s%+v", strings.ToLower(rv.Elem().Type().Name()), rv.Elem().Interface())
			return
		}
		fmt.Fprint(b, v)
	}
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
