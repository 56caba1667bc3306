package fakerouter_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/internal/wire"
	"github.com/amqp1kit/amqp1kit/qdmanagement"
)

// The fake router's management agent on its own: requests qdrouterd would leave
// unanswered, and what a test of the fake can rely on.

func mgmtClient(t *testing.T, url string) *qdmanagement.Client {
	t.Helper()
	c, err := qdmanagement.Dial(testCtx(t), url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// status decodes a raw response's status.
func status(t *testing.T, payload []byte) (int32, string) {
	t.Helper()
	var m wire.Message
	require.NoError(t, m.Unmarshal(payload), "%q", payload)
	code, _ := m.ApplicationProperties["statusCode"].(int32)
	desc, _ := m.ApplicationProperties["statusDescription"].(string)
	return code, desc
}

// TestManagementBadRequestsGetAnError sends requests with missing or wrong properties,
// among them some that qdrouterd 1.19.0 never answers (its agent fails or forgets
// them): each gets an error status, and the connection goes on.
func TestManagementBadRequestsGetAnError(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	w := dialMgmtWire(t, r.Addr())
	for _, tc := range []struct {
		mgmtCase
		code int32
		desc string
	}{
		{mgmtCase{name: "no application-properties"}, 400, "No 'operation' property: Message(address=None, properties=None, body=None, reply_to='RRR"},
		{mgmtCase{name: "operation not text", props: mgmtProps("operation", int32(5))}, 500, "AttributeError: 'int32' object has no attribute 'lower'"},
		{mgmtCase{name: "read of a link", props: mgmtProps("operation", "READ", "type", "org.apache.qpid.dispatch.router.link", "identity", "1")}, 501, "fakerouter: READ of org.apache.qpid.dispatch.router.link"},
		{mgmtCase{name: "update of an address", props: mgmtProps("operation", "UPDATE", "type", "org.apache.qpid.dispatch.router.address", "name", "M0x"),
			body: &wire.Map{}}, 501, "fakerouter: UPDATE of org.apache.qpid.dispatch.router.address"},
		{mgmtCase{name: "create of an address rule", props: mgmtProps("operation", "CREATE", "type", "org.apache.qpid.dispatch.router.config.address", "name", "a"),
			body: &wire.Map{}}, 501, "fakerouter: CREATE of org.apache.qpid.dispatch.router.config.address"},
		{mgmtCase{name: "create of a listener", props: mgmtProps("operation", "CREATE", "type", "listener", "name", "l")}, 501, "fakerouter: CREATE is not supported"},
		{mgmtCase{name: "query with a list body", props: node("QUERY", "entityType", "listener"), body: []any{"role"}}, 500, "AttributeError: 'list' object has no attribute 'get'"},
		{mgmtCase{name: "query without a body", props: node("QUERY", "entityType", "listener")}, 500, "AttributeError: 'NoneType' object has no attribute 'get'"},
		{mgmtCase{name: "operation in lower case", props: node("get-mgmt-nodes")}, 200, "OK"},
		{mgmtCase{name: "indent not a number", props: node("GET-JSON-SCHEMA", "indent", "x")}, 500, "ValueError: invalid literal for int() with base 10: 'x'"},
	} {
		got, _ := w.call(tc.mgmtCase)
		code, desc := status(t, got)
		require.Equal(t, tc.code, code, "%s: %s", tc.name, desc)
		require.True(t, strings.HasPrefix(desc, tc.desc), "%s: %q", tc.name, desc)
	}

	// A message that does not decode (its body is cut short) is answered at its
	// reply-to when its properties can be read.
	head, err := (&wire.Message{Properties: &wire.Properties{ReplyTo: w.reply, CorrelationID: "cut"},
		ApplicationProperties: node("GET-TYPES")}).AppendTo(nil)
	require.NoError(t, err)
	got, _ := w.call(mgmtCase{name: "cut", raw: append(head, 0x00, 0x53, 0x77, 0xd1, 0x00, 0x00, 0x10, 0x00)})
	code, desc := status(t, got)
	require.Equal(t, int32(400), code)
	require.True(t, strings.HasPrefix(desc, "Bad Request: message section amqp:amqp-value"), desc)
	got, _ = w.call(mgmtCase{name: "after the cut one", props: node("GET-MGMT-NODES")})
	code, desc = status(t, got)
	require.Equal(t, int32(200), code, "the connection goes on: %s", desc)
}

func TestManagementThroughTheAnonymousRelay(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	c := connect(t, r.URL())
	ctx := testCtx(t)
	replies, err := c.sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true})
	require.NoError(t, err)
	anon := c.sender("")
	to, reply := "$management", replies.Address()
	m := &amqp.Message{
		Properties:            &amqp.MessageProperties{To: &to, ReplyTo: &reply, CorrelationID: "anonymous"},
		ApplicationProperties: map[string]any{"operation": "GET-MGMT-NODES", "type": "org.amqp.management", "name": "self"},
		Value:                 map[string]any{},
	}
	require.NoError(t, anon.Send(ctx, m, nil))
	resp, err := replies.Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "anonymous", resp.Properties.CorrelationID)
	require.EqualValues(t, 200, resp.ApplicationProperties["statusCode"])
}

// TestManagementRepliesGoWhereReplyToSays sends requests on one connection with a reply
// address on another: the response is routed like any message.
func TestManagementRepliesGoWhereReplyToSays(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	a, b := connect(t, r.URL()), connect(t, r.URL())
	replies, err := b.sess.NewReceiver(ctx, "replies.elsewhere", nil)
	require.NoError(t, err)
	waitConsumers(t, r, "replies.elsewhere", 1)
	req := a.sender("$management")
	reply := "replies.elsewhere"
	require.NoError(t, req.Send(ctx, &amqp.Message{
		Properties:            &amqp.MessageProperties{ReplyTo: &reply, CorrelationID: uint64(42)},
		ApplicationProperties: map[string]any{"operation": "QUERY", "type": "org.amqp.management", "name": "self", "entityType": qdmanagement.TypeRouter},
		Value:                 map[string]any{"attributeNames": []any{"id"}},
	}, nil))
	resp, err := replies.Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(42), resp.Properties.CorrelationID)
	require.Equal(t, map[string]any{"attributeNames": []any{"id"}, "results": []any{[]any{"amqp1kit-router"}}}, resp.Value)
	info, ok := r.Address("replies.elsewhere")
	require.True(t, ok)
	require.EqualValues(t, 1, info.Counts.Delivered, "the response counts as a delivery to the reply address")
}

// TestManagementFiguresAreTheFakes checks the management view against the fake's own
// inspection API after some traffic.
func TestManagementFiguresAreTheFakes(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, r.URL())
	rcv := c.receiver("openstack.org/om/rpc/anycast/figures", 10)
	snd := c.sender("openstack.org/om/rpc/anycast/figures")
	for range 3 {
		sent := make(chan error, 1)
		go func() { sent <- snd.Send(ctx, amqp.NewMessage([]byte("x")), nil) }()
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(ctx, m))
		require.NoError(t, <-sent)
	}
	want, ok := r.Address("openstack.org/om/rpc/anycast/figures")
	require.True(t, ok)

	mc := mgmtClient(t, r.URL())
	a, err := mc.Read(ctx, qdmanagement.TypeAddress, "M0openstack.org/om/rpc/anycast/figures", "")
	require.NoError(t, err)
	require.Equal(t, "balanced", a["distribution"])
	require.EqualValues(t, want.Consumers, a["subscriberCount"])
	require.EqualValues(t, want.Counts.Ingress, a["deliveriesIngress"])
	require.EqualValues(t, want.Counts.Delivered, a["deliveriesEgress"])

	links, err := mc.Query(ctx, qdmanagement.TypeLink, "linkDir", "owningAddr", "deliveryCount", "acceptedCount", "unsettledCount", "creditAvailable")
	require.NoError(t, err)
	var in, out map[string]any
	for _, l := range links.Maps() {
		if l["owningAddr"] == "M0openstack.org/om/rpc/anycast/figures" {
			if l["linkDir"] == "in" {
				in = l
			} else {
				out = l
			}
		}
	}
	require.EqualValues(t, 3, in["deliveryCount"])
	require.EqualValues(t, 3, in["acceptedCount"])
	require.EqualValues(t, 0, in["unsettledCount"])
	require.EqualValues(t, 250, in["creditAvailable"])
	require.EqualValues(t, 3, out["deliveryCount"])
	require.EqualValues(t, 3, out["acceptedCount"])

	router, err := mc.Query(ctx, qdmanagement.TypeRouter, "acceptedDeliveries", "connectionCount", "linkCount")
	require.NoError(t, err)
	m := router.Maps()[0]
	// The 3 messages and this client's 2 earlier requests (this one is answered
	// before it is accepted), as qdrouterd counts them.
	require.EqualValues(t, 5, m["acceptedDeliveries"])
	require.EqualValues(t, r.Connections(), m["connectionCount"])
	require.EqualValues(t, len(r.Links()), m["linkCount"])
}

// TestManagementClosesAConnection closes a client's connection as
// "qdmanage update --type connection identity=N adminStatus=deleted" does.
func TestManagementClosesAConnection(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	victim, err := amqp.Dial(ctx, r.URL(), &amqp.ConnOptions{ContainerID: "victim"})
	require.NoError(t, err)
	defer victim.Close()
	mc := mgmtClient(t, r.URL())
	conns, err := mc.Query(ctx, qdmanagement.TypeConnection, "identity", "container")
	require.NoError(t, err)
	var id string
	for _, c := range conns.Maps() {
		if c["container"] == "victim" {
			id, _ = c["identity"].(string)
		}
	}
	require.NotEmpty(t, id)
	resp, err := mc.Call(ctx, qdmanagement.Request{Operation: "UPDATE", Type: qdmanagement.TypeConnection, Identity: id,
		Body: map[string]any{"adminStatus": "deleted"}})
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, resp.StatusDescription)
	body := resp.Body.(map[string]any)
	require.Equal(t, "deleted", body["adminStatus"])
	require.Equal(t, "closing", body["operStatus"])

	_, err = victim.NewSession(ctx, nil)
	var connErr *amqp.ConnError
	require.ErrorAs(t, err, &connErr)
	require.NotNil(t, connErr.RemoteErr)
	require.Equal(t, amqp.ErrCondConnectionForced, connErr.RemoteErr.Condition)
	require.Equal(t, "Connection forced-closed by management request", connErr.RemoteErr.Description)
}

func TestManagementOnAMesh(t *testing.T) {
	m := fakerouter.RunMeshT(t, 2, nil)
	ctx := testCtx(t)
	c := connect(t, m.Router(1).URL())
	c.receiver("unicast.meshed", 1)
	require.NoError(t, m.Router(0).WaitForConsumers(ctx, "unicast.meshed", 1))

	view := func(r *fakerouter.Router) (map[string]any, int) {
		mc := mgmtClient(t, r.URL())
		a, err := mc.Read(ctx, qdmanagement.TypeAddress, "M0unicast.meshed", "")
		require.NoError(t, err)
		links, err := mc.Query(ctx, qdmanagement.TypeLink, "owningAddr")
		require.NoError(t, err)
		n := 0
		for _, l := range links.Maps() {
			if l["owningAddr"] == "M0unicast.meshed" {
				n++
			}
		}
		return a, n
	}
	a0, links0 := view(m.Router(0))
	a1, links1 := view(m.Router(1))
	require.EqualValues(t, 0, a0["subscriberCount"])
	require.EqualValues(t, 1, a0["remoteCount"])
	require.Equal(t, []any{m.Router(1).ID()}, a0["remoteHostRouters"])
	require.EqualValues(t, 1, a1["subscriberCount"])
	require.EqualValues(t, 0, a1["remoteCount"])
	require.Equal(t, 0, links0, "each router lists its own links")
	require.Equal(t, 1, links1)
}

// TestManagementLeavesTheInspectionAPIAlone: the agent's own addresses are not among
// Addresses, and its requests are not counted in Stats.
func TestManagementLeavesTheInspectionAPIAlone(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	mc := mgmtClient(t, r.URL())
	_, err := mc.Query(context.Background(), qdmanagement.TypeRouter)
	require.NoError(t, err)
	for _, a := range r.Addresses() {
		require.NotContains(t, a.Address, "$management")
	}
	require.Zero(t, r.Stats().Ingress)
}

// TestManagementLinkRouteStatus: a link route is active while its route container is
// connected, as qdrouterd shows it.
func TestManagementLinkRouteStatus(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	host, port, err := net.SplitHostPort(b.Addr())
	require.NoError(t, err)
	r := fakerouter.RunT(t, &fakerouter.Options{
		LinkRoutes: []fakerouter.LinkRoute{
			{Prefix: "queue", Direction: "in", Connection: "broker"},
			{Prefix: "queue", Direction: "out", Connection: "broker"},
		},
		Connectors: []fakerouter.Connector{{Name: "broker", Host: host, Port: port, Role: "route-container"}},
	})
	ctx := testCtx(t)
	require.NoError(t, r.WaitForConnector(ctx, "broker"))
	lr, err := mgmtClient(t, r.URL()).Query(ctx, qdmanagement.TypeLinkRoute, "prefix", "direction", "connection", "operStatus")
	require.NoError(t, err)
	require.Equal(t, [][]any{{"queue", "in", "broker", "active"}, {"queue", "out", "broker", "active"}}, lr.Rows)
}

// A pre-settled flood toward a consumer without credit shows in management as in
// qdrouterd 1.19.0: 300 messages, 249 dropped from the consumer's undelivered list and
// 51 waiting there; the outgoing link counts the dropped ones as pre-settled
// deliveries done with, and the address counts all 300 as egress (given to a link).
func TestManagementCountsUndeliveredAsQdrouterd(t *testing.T) {
	real := realpeer.StartQdrouterd(t, nil)
	fake := fakerouter.RunT(t, nil)
	const addr = "unicast.mgmt-dropped"
	figures := func(hostport, url string) map[string]any {
		_ = rawLink(t, hostport, &wire.Attach{Name: "idle", Role: wire.RoleReceiver,
			SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
		zero := uint32(0)
		producer := rawLink(t, hostport, &wire.Attach{Name: "flood", Role: wire.RoleSender,
			SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: addr},
			InitialDeliveryCount: &zero})
		require.Equal(t, 300, flood(t, producer, true, 300*1032))
		// The router has routed all 300 once their credit is back: the sender's
		// delivery-count and credit reach 300 past the link capacity.
		for {
			f, err := producer.Next()
			require.NoError(t, err)
			if fl, ok := f.Body.(*wire.Flow); ok && *fl.DeliveryCount+*fl.LinkCredit >= 300+250 {
				break
			}
		}
		mc := mgmtClient(t, url)
		ctx := testCtx(t)
		got := map[string]any{}
		links, err := mc.Query(ctx, qdmanagement.TypeLink, "linkDir", "owningAddr", "undeliveredCount",
			"droppedPresettledCount", "presettledCount", "deliveryCount")
		require.NoError(t, err)
		for _, l := range links.Maps() {
			if l["owningAddr"] == "M0"+addr {
				for k, v := range l {
					got[fmt.Sprint(l["linkDir"], ".", k)] = fmt.Sprint(v)
				}
			}
		}
		router, err := mc.Query(ctx, qdmanagement.TypeRouter, "droppedPresettledDeliveries", "presettledDeliveries")
		require.NoError(t, err)
		for k, v := range router.Maps()[0] {
			got["router."+k] = fmt.Sprint(v)
		}
		a, err := mc.Read(ctx, qdmanagement.TypeAddress, "M0"+addr, "")
		require.NoError(t, err)
		got["address.deliveriesIngress"], got["address.deliveriesEgress"] = fmt.Sprint(a["deliveriesIngress"]), fmt.Sprint(a["deliveriesEgress"])
		return got
	}
	want := figures(real.Addr(), real.URL())
	require.Equal(t, "249", want["out.droppedPresettledCount"], "qdrouterd: %v", want)
	require.Equal(t, want, figures(fake.Addr(), fake.URL()))
}
