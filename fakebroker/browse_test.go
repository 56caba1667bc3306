package fakebroker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// A receiver asking for distribution-mode copy browses the queue, as in qpidd 1.39.0:
// it is answered copy and sent every available message once, new ones too, without
// taking them; its outcomes change nothing, and a message a consumer holds is not
// shown.
func TestBrowserTakesNothing(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	c := connect(t, b.URL())
	snd := c.sender("unicast.browse")
	send(t, snd, msg("one"), msg("two"))

	fc, err := frameclient.Dial(b.Addr())
	require.NoError(t, err)
	defer fc.Close()
	_, err = fc.Open(&wire.Open{ContainerID: "browser", MaxFrameSize: 65536})
	require.NoError(t, err)
	_, err = fc.Begin(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	require.NoError(t, err)
	answer, err := fc.Attach(0, &wire.Attach{Name: "b", Role: wire.RoleReceiver,
		Source: &wire.Source{Address: "unicast.browse", DistributionMode: "copy"}, Target: &wire.Target{}})
	require.NoError(t, err)
	require.Equal(t, wire.Symbol("copy"), answer.Source.DistributionMode)
	h, dc, credit := uint32(0), uint32(0), uint32(10)
	require.NoError(t, fc.Write(0, &wire.Flow{IncomingWindow: 100, OutgoingWindow: 100, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit}))
	browse := func(want string) {
		t.Helper()
		tr, f, err := frameclient.Expect[*wire.Transfer](fc)
		require.NoError(t, err)
		require.False(t, tr.Settled, "a browser's deliveries go unsettled")
		var m wire.Message
		require.NoError(t, m.Unmarshal(f.Payload))
		require.Equal(t, want, string(m.Data[0]))
		require.NoError(t, fc.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}))
	}
	browse("one")
	browse("two")
	send(t, snd, msg("three"))
	browse("three")
	require.Equal(t, 3, b.Depth("unicast.browse"), "the browser's accepted messages stay")

	// A consumer holding "one" keeps it from a browser that comes later.
	rcv := c.receiver("unicast.browse", 1)
	got, body := receive(t, rcv)
	require.Equal(t, "one", body)
	_, err = fc.Attach(0, &wire.Attach{Name: "b2", Handle: 1, Role: wire.RoleReceiver,
		Source: &wire.Source{Address: "unicast.browse", DistributionMode: "copy"}, Target: &wire.Target{}})
	require.NoError(t, err)
	h = 1
	require.NoError(t, fc.Write(0, &wire.Flow{IncomingWindow: 100, OutgoingWindow: 100, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit}))
	browse("two")
	browse("three")
	require.NoError(t, rcv.AcceptMessage(testCtx(t), got))
	waitDepth(t, b, "unicast.browse", 2)
}
