package fakerouter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// TestPythonOsloRPCThroughRouter runs the real Python oslo.messaging AMQP 1.0 driver
// (Debian's python3-oslo.messaging) as two RPC servers and a client through the fake
// router: call, remote exception, cast and fanout; the driver must pick the routable
// address syntax by itself from the router's open frame.
func TestPythonOsloRPCThroughRouter(t *testing.T) {
	pyoslo.Require(t)
	r := fakerouter.RunT(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := r.URL()
	s1 := pyoslo.Start(t, "rpc-server", "--url", url, "--topic", "compute", "--server", "node1", "--timeout", "0")
	s2 := pyoslo.Start(t, "rpc-server", "--url", url, "--topic", "compute", "--server", "node2", "--timeout", "0")
	for _, s := range []*pyoslo.Proc{s1, s2} {
		_, err := s.WaitEvent("ready", 30*time.Second)
		require.NoError(t, err)
	}
	// Each server attaches unicast, multicast and anycast links with routable addresses.
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 6))
	for _, addr := range []string{
		"openstack.org/om/rpc/unicast/openstack/compute/node1",
		"openstack.org/om/rpc/unicast/openstack/compute/node2",
		"openstack.org/om/rpc/multicast/openstack/compute",
		"openstack.org/om/rpc/anycast/openstack/compute",
	} {
		require.NoError(t, r.WaitForConsumers(ctx, addr, 1), addr)
	}
	for _, a := range r.Addresses() {
		require.False(t, strings.HasPrefix(a.Address, "unicast.") || strings.HasPrefix(a.Address, "exclusive.") ||
			strings.HasPrefix(a.Address, "broadcast."), "legacy address %s on a router", a.Address)
	}

	out := pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--method", "echo",
		"--args", `{"value": {"text": "héllo ☃", "n": [1, 2, {"x": null}]}}`, "--call-timeout", "20", "--timeout", "30")
	require.Len(t, out, 1)
	require.Equal(t, map[string]any{"text": "héllo ☃", "n": []any{1.0, 2.0, map[string]any{"x": nil}}}, out[0]["result"])

	out = pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--server", "node2", "--method", "whoami",
		"--call-timeout", "20", "--timeout", "30")
	require.Equal(t, "node2", out[0]["result"])

	out = pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--method", "fail",
		"--args", `{"message": "Oopsie!"}`, "--call-timeout", "20", "--timeout", "30")
	errObj, _ := out[0]["error"].(map[string]any)
	require.NotNil(t, errObj, "want a remote error, got %v", out)
	require.Contains(t, errObj["class"], "ValueError")
	require.Contains(t, errObj["message"], "Oopsie!")

	// A fanout cast reaches both servers; a plain cast one of them.
	pyoslo.Run(t, "rpc-call", "--url", url, "--topic", "compute", "--fanout", "--method", "record",
		"--args", `{"kind": "fanout"}`, "--timeout", "30")
	for _, s := range []*pyoslo.Proc{s1, s2} {
		ev, err := s.WaitEvent("cast", 30*time.Second)
		require.NoError(t, err)
		require.Equal(t, map[string]any{"kind": "fanout"}, ev["kw"])
	}
	stats := r.Stats()
	require.Zero(t, stats.Rejected)
	require.NotZero(t, stats.Accepted, "calls are acknowledged end to end")
}
