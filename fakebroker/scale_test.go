package fakebroker_test

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
)

// TestThousandsOfLinks: one broker holds two thousand connections and twenty
// thousand consumers (each on a queue of its own, made on demand by the unicast
// pattern) without refusing any, still stores and forwards a message among them, and
// forgets the consumers when the clients go (the queues stay, as qpidd's do). Its
// max-connections is lifted (qpidd's 500 by default), as qpidd's would have to be.
func TestThousandsOfLinks(t *testing.T) {
	const conns, perConn = 2000, 10
	b := fakebroker.RunT(t, &fakebroker.Options{IdleTimeout: -1, MaxConnections: -1})
	raw, err := frameclient.ManyReceivers(b.Addr(), conns, perConn, func(i, j int) string {
		return fmt.Sprintf("unicast.scale.%d.%d", i, j)
	})
	require.NoError(t, err)
	require.Equal(t, conns, b.Connections())
	require.Len(t, b.Links(), conns*perConn)
	require.Len(t, b.Consumers("unicast.scale.1999.9"), 1)

	// A message is still stored, then forwarded to a consumer that comes later.
	ctx := testCtx(t)
	require.NoError(t, connect(t, b.URL()).sender("unicast.scale.live").Send(ctx, amqp.NewMessage([]byte("stored")), nil))
	rcv := connect(t, b.URL()).receiver("unicast.scale.live", 1)
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "stored", string(m.GetData()))
	require.NoError(t, rcv.AcceptMessage(ctx, m))

	for _, c := range raw {
		c.Close()
	}
	require.Eventually(t, func() bool { return b.Connections() == 2 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(b.Links()) == 2 }, 30*time.Second, 10*time.Millisecond,
		"the consumers of connections that went away are forgotten")
}
