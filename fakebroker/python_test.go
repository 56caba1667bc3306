package fakebroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// TestPythonOsloNotificationsThroughBroker runs the real Python oslo.messaging AMQP 1.0
// driver: a notifier sends while nobody listens (the broker stores), a listener started
// afterwards gets everything, and a listener that requeues gets the message again. The
// driver picks the legacy address syntax by itself from the broker's open frame.
func TestPythonOsloNotificationsThroughBroker(t *testing.T) {
	pyoslo.Require(t)
	b := fakebroker.RunT(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := b.URL()

	out := pyoslo.Run(t, "notify", "--url", url, "--topic", "notifications", "--priority", "info",
		"--event-type", "compute.instance.create", "--payload", `{"id": "ünïcode", "n": [1, {"x": null}]}`,
		"--publisher-id", "compute.host1", "--count", "3", "--timeout", "30")
	for _, line := range out {
		require.Nil(t, line["error"], "notify failed: %v", line)
	}
	// Stored on a legacy-addressed queue, waiting for a listener.
	require.NoError(t, b.WaitForDepth(ctx, "unicast.openstack.notifications.info", 3))
	for _, n := range b.Nodes() {
		require.False(t, strings.HasPrefix(n.Name, "openstack.org/"), "routable address %s on a broker", n.Name)
	}

	l := pyoslo.Start(t, "listen", "--url", url, "--topic", "notifications", "--priorities", "info",
		"--count", "3", "--timeout", "60")
	for range 3 {
		ev, err := l.WaitEvent("notification", 30*time.Second)
		require.NoError(t, err)
		require.Equal(t, "compute.instance.create", ev["event_type"])
		require.Equal(t, "compute.host1", ev["publisher_id"])
		require.Equal(t, map[string]any{"id": "ünïcode", "n": []any{1.0, map[string]any{"x": nil}}}, ev["payload"])
	}
	require.NoError(t, b.WaitForDepth(ctx, "unicast.openstack.notifications.info", 0))

	// A listener that requeues the first notification gets it again.
	pyoslo.Run(t, "notify", "--url", url, "--topic", "requeue", "--priority", "error",
		"--event-type", "x.y", "--payload", `{"k": 1}`, "--timeout", "30")
	rl := pyoslo.Start(t, "listen", "--url", url, "--topic", "requeue", "--priorities", "error",
		"--requeue-first", "1", "--count", "1", "--timeout", "60")
	_, err := rl.WaitEvent("requeued", 30*time.Second)
	require.NoError(t, err)
	ev, err := rl.WaitEvent("notification", 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, "x.y", ev["event_type"])
	require.NoError(t, b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Released >= 1 && c.Redelivered >= 1 }))
}

// TestPythonOsloRPCThroughBroker: Python RPC servers and client through the fake broker:
// call, remote exception, cast and fanout (a topic: every server gets a copy), with the
// legacy syntax.
func TestPythonOsloRPCThroughBroker(t *testing.T) {
	pyoslo.Require(t)
	b := fakebroker.RunT(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := b.URL()
	s1 := pyoslo.Start(t, "rpc-server", "--url", url, "--topic", "compute", "--server", "node1", "--timeout", "0")
	s2 := pyoslo.Start(t, "rpc-server", "--url", url, "--topic", "compute", "--server", "node2", "--timeout", "0")
	for _, s := range []*pyoslo.Proc{s1, s2} {
		_, err := s.WaitEvent("ready", 30*time.Second)
		require.NoError(t, err)
	}
	for _, addr := range []string{"exclusive.openstack.compute.node1", "exclusive.openstack.compute.node2", "unicast.openstack.compute"} {
		require.NoError(t, b.WaitForConsumers(ctx, addr, 1), addr)
	}
	require.NoError(t, b.WaitForConsumers(ctx, "broadcast.openstack.compute.all", 2))

	out := pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--method", "echo",
		"--args", `{"value": "héllo"}`, "--call-timeout", "20", "--timeout", "30")
	require.Equal(t, "héllo", out[0]["result"], "%v", out)
	out = pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--server", "node1", "--method", "whoami",
		"--call-timeout", "20", "--timeout", "30")
	require.Equal(t, "node1", out[0]["result"], "%v", out)
	out = pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--method", "fail",
		"--args", `{"message": "Oopsie!"}`, "--call-timeout", "20", "--timeout", "30")
	errObj, _ := out[0]["error"].(map[string]any)
	require.NotNil(t, errObj, "want a remote error, got %v", out)
	require.Contains(t, errObj["class"], "ValueError")

	pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--fanout", "--method", "record",
		"--args", `{"kind": "fanout"}`, "--timeout", "30")
	for _, s := range []*pyoslo.Proc{s1, s2} {
		ev, err := s.WaitEvent("cast", 30*time.Second)
		require.NoError(t, err)
		require.Equal(t, map[string]any{"kind": "fanout"}, ev["kw"])
	}
	pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--cast", "--method", "record",
		"--args", `{"kind": "cast"}`, "--timeout", "30")
	got := 0
	for _, s := range []*pyoslo.Proc{s1, s2} {
		if ev, err := s.WaitEvent("cast", 3*time.Second); err == nil && ev["kw"].(map[string]any)["kind"] == "cast" {
			got++
		}
	}
	require.Equal(t, 1, got, "a cast to the topic reaches exactly one server")
}
