package fakerouter_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
)

// attachMany attaches conns connections with perConn receiving links each, every
// link on an address of its own, and returns the connections.
func attachMany(tb testing.TB, r *fakerouter.Router, conns, perConn int) []net.Conn {
	tb.Helper()
	raw, err := frameclient.ManyReceivers(r.Addr(), conns, perConn, func(i, j int) string {
		return fmt.Sprintf("unicast.scale.%d.%d", i, j)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// TestThousandsOfLinks: one router holds two thousand connections and twenty
// thousand links (each on an address of its own) without refusing any, still routes a
// message end to end among them, and forgets them all when the clients go.
func TestThousandsOfLinks(t *testing.T) {
	const conns, perConn = 2000, 10
	r := fakerouter.RunT(t, &fakerouter.Options{IdleTimeout: -1})
	raw := attachMany(t, r, conns, perConn)
	require.Equal(t, conns, r.Connections())
	require.Len(t, r.Links(), conns*perConn)
	info, ok := r.Address("unicast.scale.1999.9")
	require.True(t, ok)
	require.Equal(t, 1, info.Consumers)

	// Traffic still flows among them.
	ctx := testCtx(t)
	rcv := connect(t, r.URL()).receiver("unicast.scale.live", 1)
	waitConsumers(t, r, "unicast.scale.live", 1)
	done := make(chan error, 1)
	go func() {
		done <- connect(t, r.URL()).sender("unicast.scale.live").Send(ctx, amqp.NewMessage([]byte("through")), nil)
	}()
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, rcv.AcceptMessage(ctx, m))
	require.NoError(t, <-done)

	for _, c := range raw {
		c.Close()
	}
	require.Eventually(t, func() bool { return r.Connections() == 2 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(r.Addresses()) < 10 }, 30*time.Second, 10*time.Millisecond,
		"the addresses of links that went away are forgotten")
}

// BenchmarkPassThroughWithIdleLinks is BenchmarkRouterPassThrough on a router that
// also holds 2 000 idle connections with 10 links each (20 000 links, 20 000
// addresses): the rate beside the plain pass-through shows whether the router
// collapses under many links. It also reports the memory each idle link costs and the
// time to attach one.
func BenchmarkPassThroughWithIdleLinks(b *testing.B) {
	const conns, perConn = 2000, 10
	r := fakerouter.RunT(b, &fakerouter.Options{IdleTimeout: -1})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	raw := attachMany(b, r, conns, perConn)
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Cleanup(func() {
		for _, c := range raw {
			c.Close()
		}
	})
	if n := len(r.Links()); n != conns*perConn {
		b.Fatalf("%d links attached, want %d", n, conns*perConn)
	}
	// Heap and stacks of the router and of the raw clients (a socket each, small
	// beside the router's share), per link.
	used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
	passThrough(b, r, context.Background())
	b.ReportMetric(float64(used)/float64(conns*perConn)/1024, "KiB/idle-link")
	b.ReportMetric(float64(took.Microseconds())/float64(conns*perConn), "µs/attach")
}
