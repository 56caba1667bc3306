package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
)

// One private RabbitMQ node per test run, started by the first test that needs it and
// stopped by TestMain (or on SIGINT/SIGTERM).
var rabbit = rabbitmq.Shared{Prefix: "amqp1kit-interop-rabbitmq-"}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := rabbit.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
	}
	os.Exit(code)
}

// rabbitMQ returns the URL of the run's RabbitMQ node, starting it on first use
// (scripts/rabbitmq.sh: ~5–20 s); it skips the test (fails it under CI=true) when
// RabbitMQ is not installed or does not start.
func rabbitMQ(t *testing.T) string {
	t.Helper()
	if err := rabbitmq.Installed(); err != nil {
		peers.Missing(t, "%v", err)
	}
	node, err := rabbit.Get()
	if err != nil {
		peers.Missing(t, "RabbitMQ did not start: %v", err)
	}
	t.Logf("RabbitMQ node at %s (started in %v)", node.URL, node.Took.Round(time.Millisecond))
	return node.URL
}

// TestRabbitMQ: RabbitMQ 3.10's AMQP 1.0 plugin refuses dynamic sources, so no oslo
// driver can work over it (docs/peers.md). The Go driver must say so at once, with the
// peer's product and reason, rather than retry silently forever as the Python driver
// does.
func TestRabbitMQ(t *testing.T) {
	t.Parallel() // with TestInterop: the node boots while the matrix runs
	url := rabbitMQ(t)

	// failsFast checks one operation's error: a *driver.PeerError naming RabbitMQ and
	// dynamic sources, well before the operation's own timeout.
	failsFast := func(t *testing.T, what string, elapsed time.Duration, err error) {
		t.Helper()
		require.Error(t, err, "%s over RabbitMQ succeeded", what)
		var pe *driver.PeerError
		require.ErrorAs(t, err, &pe, "%s over RabbitMQ: want a *driver.PeerError, got %T: %v", what, err, err)
		require.Equal(t, "RabbitMQ", pe.Product, "the peer's product in %v", err)
		require.NotEmpty(t, pe.Version, "the peer's version in %v", err)
		require.Contains(t, strings.ToLower(err.Error()), "dynamic", "the reason should say dynamic sources are refused: %v", err)
		require.Contains(t, err.Error(), "reply link", "the error should say what was refused: %v", err)
		// Waiting out the 20 s timeout would end in ErrTimeout: the refusal came first.
		require.False(t, errors.Is(err, driver.ErrTimeout), "%s must fail fast, not time out: %v", what, err)
		t.Logf("%s failed after %v: %v", what, elapsed.Round(time.Millisecond), err)
	}
	t.Run("GoDriver_fails_fast_with_PeerError", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		o := goOptions()
		o.ConnectionRetryInterval = time.Second // the driver's default: no tight loop against RabbitMQ
		tr, err := driver.NewTransport(url, &driver.TransportOptions{Options: o})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })

		c := driver.NewRPCClient(tr, driver.Target{Topic: "compute"}, &driver.ClientOptions{Timeout: 20 * time.Second})
		start := time.Now()
		_, err = c.Call(ctx, nil, "echo", map[string]any{"value": 1})
		failsFast(t, "a call", time.Since(start), err)

		// Every later operation on the transport fails the same way, also at once.
		start = time.Now()
		err = c.Cast(ctx, nil, "echo", nil)
		failsFast(t, "a cast", time.Since(start), err)
		n := driver.NewNotifier(tr, nil)
		start = time.Now()
		err = n.Info(ctx, nil, "x", nil)
		failsFast(t, "a notification", time.Since(start), err)
		start = time.Now()
		_, err = tr.Addresser(ctx)
		failsFast(t, "connecting", time.Since(start), err)
	})
	t.Run("GoServer_and_Listener_fail_fast_with_PeerError", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		o := goOptions()
		o.ConnectionRetryInterval = time.Second
		tr, err := driver.NewTransport(url, &driver.TransportOptions{Options: o})
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		// The transport learns that the peer refuses the reply link...
		start := time.Now()
		_, err = tr.Addresser(ctx)
		failsFast(t, "connecting", time.Since(start), err)
		// ...and a server or listener started on it must say so too, not wait forever.
		srv, err := driver.NewRPCServer(tr, driver.Target{Topic: "compute", Server: "s1"}, nil, nil)
		require.NoError(t, err)
		start = time.Now()
		err = srv.Start()
		failsFast(t, "starting an RPC server", time.Since(start), err)
		l, err := driver.NewListener(tr, []driver.Target{{Topic: "notifications"}},
			func(context.Context, *driver.Notification) driver.Result { return driver.Handled }, nil)
		require.NoError(t, err)
		start = time.Now()
		err = l.Start()
		failsFast(t, "starting a notification listener", time.Since(start), err)
	})
	t.Run("PythonDriver_times_out_silently", func(t *testing.T) {
		// What the Go driver must not do: the Python driver reconnects in a loop without
		// a word to the caller, whose call ends in MessagingTimeout.
		t.Parallel()
		py := startSession(t, url)
		py.waitReady(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := py.do(ctx, map[string]any{"op": "call", "topic": "compute", "method": "echo", "timeout": 3})
		require.NoError(t, err)
		e := pyError(out)
		require.NotNil(t, e, "a Python call over RabbitMQ returned %v", out)
		require.Equal(t, "MessagingTimeout", e["class"], errorText(e))
	})
}
