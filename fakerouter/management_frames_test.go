package fakerouter_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Raw management requests, frame by frame, against the fake and qdrouterd 1.19.0: each
// response must be the same bytes (the reply address, which ends in random letters, is
// replaced by one of the same length), and the router must send the same frames over
// the whole exchange (qdrouterd's order of a request's disposition and its response
// varies, so the frames are compared as a multiset).

// mgmtWire is a frameclient connection with a sender to $management (handle 0) and a
// dynamic receiver for the responses (handle 1).
type mgmtWire struct {
	t      *testing.T
	c      *frameclient.Conn
	reply  string
	nextID uint32
	credit uint32
}

func dialMgmtWire(t *testing.T, addr string) *mgmtWire {
	t.Helper()
	c, err := frameclient.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Open(&wire.Open{ContainerID: "mgmt-frames", MaxFrameSize: 1 << 20, ChannelMax: 1})
	require.NoError(t, err)
	_, err = c.Begin(0, &wire.Begin{IncomingWindow: 1<<31 - 1, OutgoingWindow: 1<<31 - 1})
	require.NoError(t, err)
	zero := uint32(0)
	a, err := c.Attach(0, &wire.Attach{Name: "mgmt-replies", Handle: 1, Role: wire.RoleReceiver,
		Source: &wire.Source{Dynamic: true}, Target: &wire.Target{}})
	require.NoError(t, err)
	require.NotNil(t, a.Source)
	w := &mgmtWire{t: t, c: c, reply: a.Source.Address}
	w.grant(1000)
	_, err = c.Attach(0, &wire.Attach{Name: "mgmt-requests", Handle: 0, Role: wire.RoleSender,
		Source: &wire.Source{}, Target: &wire.Target{Address: "$management"}, InitialDeliveryCount: &zero})
	require.NoError(t, err)
	fl, _, err := frameclient.Expect[*wire.Flow](c)
	require.NoError(t, err)
	require.NotNil(t, fl.LinkCredit)
	require.EqualValues(t, 250, *fl.LinkCredit, "the credit a sender to $management gets")
	return w
}

func (w *mgmtWire) grant(n uint32) {
	w.t.Helper()
	h, dc := uint32(1), uint32(0)
	next := uint32(0)
	w.credit = n
	require.NoError(w.t, w.c.Write(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1<<31 - 1,
		NextOutgoingID: w.nextID, OutgoingWindow: 1<<31 - 1, Handle: &h, DeliveryCount: &dc, LinkCredit: &n}))
}

// mgmtCase is one raw request.
type mgmtCase struct {
	name        string
	props       map[string]any
	body        any // nil: no body
	correlation any // default: the case's name
	noReply     bool
	// settled makes call wait for the request's disposition too (qdrouterd may send
	// it after the response).
	settled bool
	// raw, when set, is sent as the message instead.
	raw []byte
}

// call sends the request and returns the response's payload (reply address masked)
// and the kinds of the frames that came after the request up to the response.
func (w *mgmtWire) call(tc mgmtCase) ([]byte, []string) {
	w.t.Helper()
	corr := tc.correlation
	if corr == nil {
		corr = tc.name
	}
	m := &wire.Message{Properties: &wire.Properties{CorrelationID: corr}, ApplicationProperties: tc.props}
	if !tc.noReply {
		m.Properties.ReplyTo = w.reply
	}
	if tc.body != nil {
		m.Value, m.HasValue = tc.body, true
	}
	payload, err := m.AppendTo(nil)
	require.NoError(w.t, err)
	if tc.raw != nil {
		payload = tc.raw
	}
	id := w.nextID
	w.nextID++
	zero := uint32(0)
	require.NoError(w.t, w.c.WriteTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: &id,
		DeliveryTag: []byte(fmt.Sprint(id)), MessageFormat: &zero}, payload))
	var kinds []string
	var resp []byte
	var done []byte
	settled := !tc.settled
	for {
		f, err := w.c.Next()
		require.NoError(w.t, err, "%s: waiting for the response", tc.name)
		switch b := f.Body.(type) {
		case *wire.Transfer:
			resp = append(resp, f.Payload...)
			if b.More {
				continue
			}
			kinds = append(kinds, fmt.Sprintf("transfer settled=%v", b.Settled))
			done = bytes.ReplaceAll(resp, []byte(w.reply), []byte(strings.Repeat("R", len(w.reply))))
			if settled {
				return done, kinds
			}
		case *wire.Flow:
			kinds = append(kinds, fmt.Sprintf("flow credit=%d", *b.LinkCredit))
		case *wire.Disposition:
			kinds = append(kinds, fmt.Sprintf("disposition settled=%v %T", b.Settled, b.State))
			if b.First == id {
				settled = true
				if tc.noReply {
					return nil, kinds // no response comes: the request is settled
				}
				if done != nil {
					return done, kinds
				}
			}
		default:
			w.t.Fatalf("%s: unexpected %s", tc.name, frameclient.Describe(f))
		}
	}
}

func mgmtProps(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func node(op string, kv ...any) map[string]any {
	return mgmtProps(append([]any{"operation", op, "type", "org.amqp.management", "name", "self"}, kv...)...)
}

func attrNames(names ...any) *wire.Map {
	return &wire.Map{Entries: []wire.MapEntry{{Key: "attributeNames", Value: names}}}
}

var rawManagementCases = []mgmtCase{
	{name: "unknown operation", props: node("FOO")},
	{name: "unknown entity type", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.bogus"), body: attrNames()},
	{name: "no operation", props: mgmtProps("type", "org.amqp.management", "name", "self")},
	{name: "read router", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router", "name", "x")},
	{name: "read missing address", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router.address", "name", "nope")},
	{name: "read connection by name", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.connection", "name", "x")},
	{name: "read config address", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router.config.address", "identity", "3")},
	{name: "read config address without id", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router.config.address")},
	{name: "query console", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.console"), body: attrNames()},
	{name: "get-mgmt-nodes", props: node("GET-MGMT-NODES")},
	{name: "get-types bogus", props: node("GET-TYPES", "entityType", "bogus")},
	{name: "get-types configurationEntity", props: node("GET-TYPES", "entityType", "configurationEntity")},
	{name: "get-operations listener", props: node("GET-OPERATIONS", "entityType", "listener")},
	{name: "get-attributes config address", props: node("GET-ATTRIBUTES", "entityType", "router.config.address")},
	{name: "get-annotations", props: node("GET-ANNOTATIONS")},
	{name: "query config address paged", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.router.config.address", "offset", int32(1), "count", int32(3)),
		body: attrNames("prefix", "bogus", int32(5), "distribution")},
	{name: "query config address past the end", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.router.config.address", "offset", int32(100)),
		body: attrNames("prefix")},
	{name: "query link route", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.router.config.linkRoute"), body: attrNames()},
	{name: "query auto link", props: node("QUERY", "entityType", "org.apache.qpid.dispatch.router.config.autoLink"), body: attrNames()},
	{name: "query short type", props: node("QUERY", "entityType", "router.link"), body: attrNames()},
	{name: "query listener unknown attribute", props: node("QUERY", "entityType", "listener"), body: attrNames("role", "bogus")},
	{name: "read self", props: mgmtProps("operation", "READ", "name", "self")},
	{name: "read self typed", props: node("READ")},
	{name: "read unknown name", props: mgmtProps("operation", "READ", "name", "nobody")},
	{name: "python needs a name", props: mgmtProps("operation", "READ", "type", "listener")},
	{name: "create router", props: mgmtProps("operation", "CREATE", "type", "org.apache.qpid.dispatch.router", "name", "r")},
	{name: "delete connection", props: mgmtProps("operation", "DELETE", "type", "org.apache.qpid.dispatch.connection", "identity", "1")},
	{name: "update link without map", props: mgmtProps("operation", "UPDATE", "type", "org.apache.qpid.dispatch.router.link", "identity", "1")},
	{name: "update link without id", props: mgmtProps("operation", "UPDATE", "type", "org.apache.qpid.dispatch.router.link"),
		body: &wire.Map{Entries: []wire.MapEntry{{Key: "adminStatus", Value: "enabled"}}}},
	{name: "profile not started", props: node("PROFILE")},
	{name: "ulong correlation (python)", props: node("GET-MGMT-NODES"), correlation: uint64(7)},
	{name: "ulong correlation (core)", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router.address", "name", "nope"), correlation: uint64(300)},
	{name: "no reply-to", props: node("GET-MGMT-NODES"), noReply: true},
	{name: "after no reply-to", props: node("GET-ANNOTATIONS")},
	{name: "get-schema", props: node("GET-SCHEMA")},
	{name: "get-json-schema", props: node("GET-JSON-SCHEMA")},
	{name: "get-json-schema indented", props: node("GET-JSON-SCHEMA", "indent", int32(2))},
}

func TestManagementRawRequestsSameAsQdrouterd(t *testing.T) {
	real := realpeer.StartQdrouterd(t, nil)
	fake := fakerouter.RunT(t, &fakerouter.Options{ID: realRouterID})
	rw, fw := dialMgmtWire(t, real.Addr()), dialMgmtWire(t, fake.Addr())
	require.Equal(t, len(rw.reply), len(fw.reply), "reply addresses %q and %q", rw.reply, fw.reply)
	var wantFrames, gotFrames []string
	for _, tc := range rawManagementCases {
		want, wantKinds := rw.call(tc)
		got, gotKinds := fw.call(tc)
		if !bytes.Equal(want, got) {
			t.Errorf("%s: response differs\n--- qdrouterd:\n%s\n--- fake:\n%s", tc.name, describeResponse(want), describeResponse(got))
		}
		wantFrames, gotFrames = append(wantFrames, wantKinds...), append(gotFrames, gotKinds...)
	}
	// A last request, whose response follows every earlier disposition on both.
	last := mgmtCase{name: "last", props: node("GET-ANNOTATIONS"), settled: true}
	_, wantKinds := rw.call(last)
	_, gotKinds := fw.call(last)
	wantFrames, gotFrames = append(wantFrames, wantKinds...), append(gotFrames, gotKinds...)
	sort.Strings(wantFrames)
	sort.Strings(gotFrames)
	require.Equal(t, wantFrames, gotFrames, "the frames the routers sent")
}

// describeResponse shows a response's sections decoded, and its bytes.
func describeResponse(b []byte) string {
	var m wire.Message
	err := m.Unmarshal(b)
	var sb strings.Builder
	if err != nil {
		fmt.Fprintf(&sb, "(does not decode: %v)\n", err)
	} else {
		fmt.Fprintf(&sb, "properties %+v\napplication-properties %v\nbody %s\n", m.Properties, m.ApplicationProperties, truncate(fmt.Sprintf("%#v", m.Value), 400))
	}
	fmt.Fprintf(&sb, "%d bytes: %s", len(b), truncate(fmt.Sprintf("%q", b), 1500))
	return sb.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
