package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastOptions shortens the driver's retry delays for tests.
func fastOptions() *driver.Options {
	o := driver.DefaultOptions()
	o.LinkRetryDelay = 100 * time.Millisecond
	o.ConnectionRetryInterval = 50 * time.Millisecond
	o.ConnectionRetryIntervalMax = 200 * time.Millisecond
	return &o
}

func newTransport(t *testing.T, url string, o *driver.Options) *driver.Transport {
	t.Helper()
	if o == nil {
		o = fastOptions()
	}
	tr, err := driver.NewTransport(url, &driver.TransportOptions{Options: o})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// echoServer starts an RPC server with echo, fail, whoami and record methods.
type echoServer struct {
	name string
	srv  *driver.RPCServer
	mu   sync.Mutex
	seen []string
}

func startServer(t *testing.T, r *fakerouter.Router, tr *driver.Transport, topic, name string) *echoServer {
	t.Helper()
	es := &echoServer{name: name}
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"echo": func(ctx context.Context, req *driver.Request) (any, error) {
			var v any
			if err := req.Arg("value", &v); err != nil {
				return nil, err
			}
			return v, nil
		},
		"fail": func(ctx context.Context, req *driver.Request) (any, error) {
			var msg string
			_ = req.Arg("message", &msg)
			return nil, &driver.RemoteError{Module: "builtins", Class: "ValueError", Message: msg}
		},
		"whoami": func(ctx context.Context, req *driver.Request) (any, error) { return name, nil },
		"record": func(ctx context.Context, req *driver.Request) (any, error) {
			es.mu.Lock()
			es.seen = append(es.seen, req.Method)
			es.mu.Unlock()
			return nil, nil
		},
		"sleep": func(ctx context.Context, req *driver.Request) (any, error) {
			var s float64
			_ = req.Arg("seconds", &s)
			time.Sleep(time.Duration(s * float64(time.Second)))
			return "slept", nil
		},
		"raise": func(ctx context.Context, req *driver.Request) (any, error) {
			var msg string
			_ = req.Arg("message", &msg)
			return nil, errors.New(msg)
		},
		"panic": func(ctx context.Context, req *driver.Request) (any, error) {
			panic("something broke")
		},
	}}
	srv, err := driver.NewRPCServer(tr, driver.Target{Topic: topic, Server: name}, []driver.Endpoint{ep}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	es.srv = srv
	return es
}

func (es *echoServer) records() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	return len(es.seen)
}

func TestCallCastFanoutOverRouter(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	srvT := newTransport(t, r.URL(), nil)
	a := startServer(t, r, srvT, "compute", "node1")
	b := startServer(t, r, srvT, "compute", "node2")
	// Three links per server: unicast, multicast, anycast (routable on a router).
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 6))
	for _, want := range []string{
		"openstack.org/om/rpc/unicast/openstack/compute/node1",
		"openstack.org/om/rpc/multicast/openstack/compute",
		"openstack.org/om/rpc/anycast/openstack/compute",
	} {
		_, ok := r.Address(want)
		require.True(t, ok, "the server did not attach %s (routable syntax)", want)
	}

	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "compute"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	res, err := cli.Call(ctx, map[string]any{"user": "u"}, "echo", map[string]any{"value": map[string]any{"x": 1, "s": "héllo ☃"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"x": 1, "s": "héllo ☃"}`, string(res))

	// To a named server.
	var who string
	require.NoError(t, cli.Prepare(driver.Target{Topic: "compute", Server: "node2"}).CallInto(ctx, nil, "whoami", nil, &who))
	require.Equal(t, "node2", who)

	// A remote exception.
	_, err = cli.Call(ctx, nil, "fail", map[string]any{"message": "Oopsie!"})
	var re *driver.RemoteError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "ValueError", re.Class)
	require.Equal(t, "Oopsie!", re.Message)

	// An unknown method.
	_, err = cli.Call(ctx, nil, "nope", nil)
	require.ErrorAs(t, err, &re)
	require.Equal(t, "NoSuchMethod", re.Class)

	// Cast to the group reaches one server; fanout reaches both.
	require.NoError(t, cli.Cast(ctx, nil, "record", nil))
	require.Eventually(t, func() bool { return a.records()+b.records() == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, cli.Prepare(driver.Target{Topic: "compute", Fanout: true}).Cast(ctx, nil, "record", nil))
	require.Eventually(t, func() bool { return a.records()+b.records() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, a.records(), 1)
	require.GreaterOrEqual(t, b.records(), 1)
}

func TestCallToNobodyTimesOut(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "nobody"}, &driver.ClientOptions{Timeout: 500 * time.Millisecond})
	// No deadline but the call's own: only its timeout can end it (a hang would be the
	// test binary's time-out).
	_, err := cli.Call(context.Background(), nil, "echo", map[string]any{"value": 1})
	require.ErrorIs(t, err, driver.ErrTimeout)
}

func TestLegacyAddressingOption(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	o := fastOptions()
	o.AddressingMode = "legacy"
	tr := newTransport(t, r.URL(), o)
	startServer(t, r, tr, "svc", "s1")
	require.NoError(t, r.WaitForConsumers(ctx, "exclusive.openstack.svc.s1", 1))
	require.NoError(t, r.WaitForConsumers(ctx, "broadcast.openstack.svc.all", 1))
	require.NoError(t, r.WaitForConsumers(ctx, "unicast.openstack.svc", 1))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), o), driver.Target{Topic: "svc"}, nil)
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "legacy"})
	require.NoError(t, err)
	require.Equal(t, `"legacy"`, string(res))
}

func TestNotificationsOverRouter(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	var mu sync.Mutex
	var got []*driver.Notification
	lt := newTransport(t, r.URL(), nil)
	l, err := driver.NewListener(lt, []driver.Target{{Topic: "notifications"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		return driver.Handled
	}, nil)
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/notify/anycast/openstack/notifications.", len(driver.Priorities())))

	n := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{PublisherID: "compute.host1"})
	for _, p := range driver.Priorities() {
		require.NoError(t, n.Notify(ctx, map[string]any{"request_id": "req-1"}, p, "compute.instance.create", map[string]any{"p": string(p)}))
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(driver.Priorities()) }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	seen := map[driver.Priority]bool{}
	for _, x := range got {
		seen[x.Priority] = true
		require.Equal(t, "compute.host1", x.PublisherID)
		require.Equal(t, "compute.instance.create", x.EventType)
		var payload map[string]string
		require.NoError(t, json.Unmarshal(x.Payload, &payload))
		require.Equal(t, string(x.Priority), payload["p"])
		require.Equal(t, "req-1", x.Context["request_id"])
	}
	require.Len(t, seen, len(driver.Priorities()))
}

func TestNotifyWithoutListenerOverRouterFails(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	o := fastOptions()
	o.DefaultNotifyTimeout = 500 * time.Millisecond
	n := driver.NewNotifier(newTransport(t, r.URL(), o), nil)
	err := n.Info(testCtx(t), nil, "x", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure, "no credit and no ttl: a delivery failure, as Python")
}

func TestReleasedCallIsResentThenFails(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	tr := newTransport(t, r.URL(), nil)
	startServer(t, r, tr, "rel", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	require.NoError(t, r.SetOutcome(fakerouter.OutcomeReleased))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "rel"}, &driver.ClientOptions{Retry: driver.Retries(2), Timeout: 10 * time.Second})
	_, err := cli.Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.Contains(t, err.Error(), "retries exhausted")
	require.Equal(t, uint64(3), r.Stats().Released, "one send and two resends")

	require.NoError(t, r.SetOutcome(fakerouter.OutcomeRejected))
	_, err = cli.Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.Contains(t, err.Error(), "rejected")
}

func TestReconnectAfterRouterRestart(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	srvT := newTransport(t, r.URL(), named("srv"))
	startServer(t, r, srvT, "rc", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), named("cli")), driver.Target{Topic: "rc"}, &driver.ClientOptions{Timeout: 5 * time.Second})
	_, err := cli.Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.NoError(t, err)

	mark := maxConn(r)
	require.NoError(t, r.Restart())
	// The server's links come back on the new connection, and the client's transport
	// reconnects (recovery); a call made after that succeeds.
	waitRecovered(t, r, mark, map[string]int{"srv": 4, "cli": 1})
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "after"})
	require.NoError(t, err)
	require.Equal(t, `"after"`, string(res))
}

func TestFailoverToSecondHost(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	// The first host refuses connections (nothing listens there).
	dead := "127.0.0.1:1"
	url := fmt.Sprintf("amqp://%s,%s", dead, r.Addr())
	tr := newTransport(t, url, nil)
	startServer(t, r, tr, "fo", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	cli := driver.NewRPCClient(newTransport(t, url, nil), driver.Target{Topic: "fo"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": 2})
	require.NoError(t, err)
	require.Equal(t, "2", string(res))
}

func TestWrongPasswordIsAClearError(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{Users: map[string]string{"joe": "secret"}, DenyAnonymous: true})
	cli := driver.NewRPCClient(newTransport(t, "amqp://joe:wrong@"+r.Addr(), nil), driver.Target{Topic: "x"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	_, err := cli.Call(testCtx(t), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.False(t, errors.Is(err, driver.ErrTimeout), "a refused login must fail fast, not wait for the call timeout: %v", err)
	require.Contains(t, err.Error(), "unauthorized-access")

	// And the right password works.
	ctx := testCtx(t)
	tr := newTransport(t, "amqp://joe:secret@"+r.Addr(), nil)
	startServer(t, r, tr, "auth", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	_, err = driver.NewRPCClient(tr, driver.Target{Topic: "auth"}, nil).Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.NoError(t, err)
}

func TestCallMonitorHeartbeats(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	startServer(t, r, newTransport(t, r.URL(), nil), "hb", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "hb"},
		&driver.ClientOptions{Timeout: 20 * time.Second, CallMonitorTimeout: 2 * time.Second})
	// The method takes longer than the monitor timeout; heartbeats every second keep
	// the call alive.
	res, err := cli.Call(ctx, nil, "sleep", map[string]any{"seconds": 3.5})
	require.NoError(t, err)
	require.Equal(t, `"slept"`, string(res))
}

func TestBadURLAndOptionsNameTheField(t *testing.T) {
	_, err := driver.NewTransport("http://host", nil)
	var ce *driver.ConfigError
	require.ErrorAs(t, err, &ce)
	_, err = driver.NewTransport("amqp://host:notaport/", nil)
	require.ErrorAs(t, err, &ce)
	_, err = driver.NewTransport("amqp://host/?no_such_option=1", nil)
	require.ErrorAs(t, err, &ce)
	require.True(t, strings.Contains(err.Error(), "no_such_option"), err.Error())
	require.False(t, errors.Is(err, driver.ErrTimeout))
}

func TestPrioritiesReturnsACopy(t *testing.T) {
	p := driver.Priorities()
	require.Equal(t, []driver.Priority{driver.PriorityAudit, driver.PriorityDebug, driver.PriorityInfo, driver.PriorityWarn,
		driver.PriorityError, driver.PriorityCritical, driver.PrioritySample}, p)
	p[0] = "changed"
	require.Equal(t, driver.PriorityAudit, driver.Priorities()[0], "a caller cannot change the driver's list")
}
