package driver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// senderLinks returns the names of the client sender links attached to addr.
func senderLinks(r *fakerouter.Router, addr string) []string {
	var names []string
	for _, l := range r.Links() {
		if l.Role == "sender" && l.Address == addr && strings.HasPrefix(l.Name, "openstack.org/om/sender/") {
			names = append(names, l.Name)
		}
	}
	return names
}

func TestIdleSenderLinksArePurged(t *testing.T) {
	// Python's test_sender_link_maintenance: default_sender_link_timeout=1 detaches an
	// idle sender link; the next send attaches a new one.
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	startServer(t, r, newTransport(t, r.URL(), nil), "purge", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	o := fastOptions()
	o.DefaultSenderLinkTimeout = 200 * time.Millisecond
	cli := driver.NewRPCClient(newTransport(t, r.URL(), o), driver.Target{Topic: "purge"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	const addr = "openstack.org/om/rpc/anycast/openstack/purge"

	_, err := cli.Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.NoError(t, err)
	first := senderLinks(r, addr)
	require.Len(t, first, 1, "one sender link per destination")

	require.Eventually(t, func() bool { return len(senderLinks(r, addr)) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the idle sender link is detached")

	_, err = cli.Call(ctx, nil, "echo", map[string]any{"value": 2})
	require.NoError(t, err)
	second := senderLinks(r, addr)
	require.Len(t, second, 1)
	require.NotEqual(t, first[0], second[0], "a new link (new name) for the next send")
}

func TestBusySenderLinkIsKept(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	startServer(t, r, newTransport(t, r.URL(), nil), "busy", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	o := fastOptions()
	o.DefaultSenderLinkTimeout = time.Second
	cli := driver.NewRPCClient(newTransport(t, r.URL(), o), driver.Target{Topic: "busy"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	const addr = "openstack.org/om/rpc/anycast/openstack/busy"
	var names []string
	// Sends every 50 ms over 2.5 periods: never idle for a whole period.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		require.NoError(t, cli.Cast(ctx, nil, "record", nil))
		names = append(names, senderLinks(r, addr)...)
	}
	require.NotEmpty(t, names)
	for _, n := range names {
		require.Equal(t, names[0], n, "a sender link in use is not purged")
	}
}
