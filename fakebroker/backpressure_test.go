package fakebroker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// A consumer that grants a lot of credit and then stops reading its socket costs the
// broker about its ConnOutputLimit: the messages wait in their queue instead of piling
// up for the consumer's socket, the consumer keeps its connection, and they all
// arrive once it reads.
func TestStuckConsumerCostsItsOutputLimit(t *testing.T) {
	const outputLimit = 64 << 10
	b := fakebroker.RunT(t, &fakebroker.Options{ConnOutputLimit: outputLimit})
	const addr, n = "unicast.stuck", 20_000

	consumer, err := frameclient.Dial(b.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { consumer.Close() })
	consumer.Timeout = 10 * time.Second
	_, err = consumer.Open(&wire.Open{ContainerID: "stuck", MaxFrameSize: 65536})
	require.NoError(t, err)
	_, err = consumer.Begin(0, &wire.Begin{IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30})
	require.NoError(t, err)
	_, err = consumer.Attach(0, &wire.Attach{Name: "stuck", Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeSettled,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	require.NoError(t, err)
	zero, credit, handle := uint32(0), uint32(1_000_000), uint32(0)
	require.NoError(t, consumer.Write(0, &wire.Flow{NextIncomingID: &zero, IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30,
		Handle: &handle, DeliveryCount: &zero, LinkCredit: &credit}))

	producer := dialLimit(t, b.Addr())
	producer.attachSender(0, &wire.Target{Address: addr})
	payload := body1000(t)
	for range n {
		producer.transfer(0, payload, true)
	}
	ctx := testCtx(t)
	require.NoError(t, b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Received == n }))
	// The broker has everything; what the consumer did not take waits in the queue.
	var queued int
	require.Eventually(t, func() bool {
		for _, c := range b.Conns() {
			if c.Container == "stuck" {
				queued = c.Queued
			}
		}
		info, _ := b.Node(addr)
		return info.Depth > 0 && info.Depth+int(info.Counts.Delivered) == n
	}, 10*time.Second, 10*time.Millisecond)
	info, _ := b.Node(addr)
	t.Logf("held for the stuck consumer: %d bytes queued for its socket, %d messages in the queue", queued, info.Depth)
	// The limit, plus the one message that takes the output over it.
	require.LessOrEqual(t, queued, outputLimit+2*len(payload), "the output queued for a consumer that does not read")
	require.Equal(t, 2, len(b.Conns()), "the stuck consumer keeps its connection")

	got := 0
	for got < n {
		f, err := consumer.Next()
		require.NoError(t, err, "after %d of %d messages", got, n)
		if _, ok := f.Body.(*wire.Transfer); ok {
			got++
		}
	}
	require.NoError(t, b.WaitForDepth(ctx, addr, 0))
}
