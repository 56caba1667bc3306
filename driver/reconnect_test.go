package driver_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

func TestInFlightCallDuringRouterRestart(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"block": func(ctx context.Context, req *driver.Request) (any, error) {
			started <- struct{}{}
			<-release
			return "late", nil
		},
		"echo": func(ctx context.Context, req *driver.Request) (any, error) {
			var v any
			return v, req.Arg("value", &v)
		},
	}}
	so := fastOptions()
	so.DefaultReplyTimeout = time.Second // the late reply's address is gone
	so.ContainerName = "srv"
	srv, err := driver.NewRPCServer(newTransport(t, r.URL(), so), driver.Target{Topic: "inflight", Server: "s"}, []driver.Endpoint{ep}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))

	cli := driver.NewRPCClient(newTransport(t, r.URL(), named("cli")), driver.Target{Topic: "inflight"}, &driver.ClientOptions{Timeout: 2 * time.Second})
	accepted := r.Stats().Accepted
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := cli.Call(ctx, nil, "block", nil)
		done <- err
	}()
	<-started
	// The server acknowledged the request before dispatching it; wait until the
	// router passed that on, so that the call waits for its reply only.
	require.Eventually(t, func() bool { return r.Stats().Accepted > accepted }, 10*time.Second, 5*time.Millisecond)
	mark := maxConn(r)
	require.NoError(t, r.Restart())

	select {
	case err := <-done:
		require.ErrorIs(t, err, driver.ErrTimeout, "a call waiting for its reply across a reconnect times out, as in Python")
		require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "at its deadline")
	case <-time.After(20 * time.Second):
		t.Fatal("the call in flight hangs after the router restarted")
	}
	close(release) // the late reply goes to a reply address that no longer exists

	// After recovery: the server's links are back, the client has reconnected, and
	// calls succeed.
	waitRecovered(t, r, mark, map[string]int{"srv": 4, "cli": 1}) // the server's 3 links and reply links
	for i := range 3 {
		res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": i})
		require.NoError(t, err)
		require.JSONEq(t, string(rune('0'+i)), string(res))
	}
}

func TestNotificationListenerAfterRouterRestart(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	got := make(chan *driver.Notification, 10)
	l, err := driver.NewListener(newTransport(t, r.URL(), named("lis")), []driver.Target{{Topic: "restart"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		got <- n
		return driver.Handled
	}, nil)
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	const prefix = "openstack.org/om/notify/anycast/openstack/restart."
	require.NoError(t, r.WaitForPrefix(ctx, prefix, len(driver.Priorities())))
	n := driver.NewNotifier(newTransport(t, r.URL(), named("ntf")), &driver.NotifierOptions{Topics: []string{"restart"}})
	require.NoError(t, n.Warn(ctx, nil, "before", nil))
	require.Equal(t, "before", (<-got).EventType)

	for range 2 {
		mark := maxConn(r)
		require.NoError(t, r.Restart())
		// The listener's links (one per priority) and both reply links are back.
		waitRecovered(t, r, mark, map[string]int{"lis": len(driver.Priorities()) + 1, "ntf": 1})
	}
	require.NoError(t, n.Error(ctx, nil, "after", map[string]any{"ok": true}))
	x := <-got
	require.Equal(t, "after", x.EventType)
	require.Equal(t, driver.PriorityError, x.Priority)
	require.JSONEq(t, `{"ok": true}`, string(x.Payload))
}

func TestFailoverWhenTheFirstRouterGoes(t *testing.T) {
	r1 := fakerouter.RunT(t, nil)
	r2 := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	url := "amqp://" + r1.Addr() + "," + r2.Addr()
	startServer(t, r1, newTransport(t, url, named("srv")), "fo2", "s")
	require.NoError(t, r1.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	cli := driver.NewRPCClient(newTransport(t, url, named("cli")), driver.Target{Topic: "fo2"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	var who string
	require.NoError(t, cli.CallInto(ctx, nil, "whoami", nil, &who))
	require.Equal(t, 2, r1.Connections(), "both transports on the first host")
	require.Zero(t, r2.Connections())

	require.NoError(t, r1.Close())
	// The server's links and both reply links come back on the second host.
	waitRecovered(t, r2, 0, map[string]int{"srv": 4, "cli": 1})
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "on r2"})
	require.NoError(t, err)
	require.Equal(t, `"on r2"`, string(res))
}

// logRecords is a slog handler that keeps the records.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// attrs returns the attributes of the records with message msg.
func (h *logRecords) attrs(msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// deadAddrs returns n loopback addresses where nothing listens.
func deadAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		out = append(out, ln.Addr().String())
		ln.Close()
	}
	return out
}

func TestReconnectBackoffAcrossHosts(t *testing.T) {
	dead := deadAddrs(t, 3)
	o := driver.DefaultOptions()
	o.ConnectionRetryInterval = 10 * time.Millisecond
	o.ConnectionRetryBackoff = 2
	o.ConnectionRetryIntervalMax = 40 * time.Millisecond
	logs := &logRecords{}
	tr, err := driver.NewTransport("amqp://"+strings.Join(dead, ","), &driver.TransportOptions{Options: &o, Logger: slog.New(logs)})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	cli := driver.NewRPCClient(tr, driver.Target{Topic: "x"}, &driver.ClientOptions{Timeout: time.Second})
	_, err = cli.Call(testCtx(t), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrTimeout)
	require.Contains(t, err.Error(), "not connected")

	// The delay starts at the interval, is multiplied by the back-off after each
	// failure up to the maximum, and each attempt goes to the next host.
	rec := logs.attrs("reconnecting")
	require.GreaterOrEqual(t, len(rec), 5)
	wantDelays := []time.Duration{10, 20, 40, 40, 40}
	for i, want := range wantDelays {
		require.Equal(t, want*time.Millisecond, rec[i]["delay"].Duration(), "delay before reconnect %d", i+1)
		require.Equal(t, dead[(i+1)%3], rec[i]["host"].String(), "host of reconnect %d", i+1)
	}
	failed := logs.attrs("connection attempt failed")
	require.Equal(t, dead[0], failed[0]["host"].String(), "the first attempt goes to the first host")
}

func TestRetryBudgetAcrossFailedConnections(t *testing.T) {
	// Python: each failed connection attempt uses up one retry of the pending sends;
	// retry=N fails with MessageDeliveryFailure after N+1 attempts.
	o := fastOptions()
	o.ConnectionRetryInterval = 10 * time.Millisecond
	cli := driver.NewRPCClient(newTransport(t, "amqp://"+deadAddrs(t, 1)[0], o), driver.Target{Topic: "x"},
		&driver.ClientOptions{Timeout: 30 * time.Second, Retry: driver.Retries(1)})
	_, err := cli.Call(testCtx(t), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.Contains(t, err.Error(), "retries exhausted")
	require.Contains(t, err.Error(), "connection refused")
	require.False(t, errors.Is(err, driver.ErrTimeout), "the retries ran out before the call's timeout")
}

// maxConn returns the highest connection id the router lists.
func maxConn(r *fakerouter.Router) uint64 {
	var m uint64
	for _, l := range r.Links() {
		m = max(m, l.Conn)
	}
	return m
}

// waitRecovered waits until each transport named in want (by container-id) has at
// least want[name] receiver links on a connection newer than mark: its listeners
// and reply link are back after a restart or failover. The router may list the
// dropped connections for a moment after Restart, so counting links or connections
// alone is not enough. A call on a connection its transport has not yet seen die may
// fail with ErrDeliveryFailure, as in Python (the request was written and is in
// doubt); calls made after recovery must succeed.
func waitRecovered(t *testing.T, r *fakerouter.Router, mark uint64, want map[string]int) {
	t.Helper()
	require.Eventually(t, func() bool {
		have := map[string]int{}
		for _, l := range r.Links() {
			if l.Conn > mark && l.Role == "receiver" {
				have[l.Container]++
			}
		}
		for name, n := range want {
			if have[name] < n {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "transports %v did not reconnect", want)
}

// named returns fast options with a container-id, to find the transport's links at
// the router.
func named(name string) *driver.Options {
	o := fastOptions()
	o.ContainerName = name
	return o
}

// attachCounter counts the attach frames clients send for each address.
type attachCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attachCounter) trace(f fakerouter.Frame) {
	if !f.Incoming || f.Performative != "attach" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	// The client's role is "receiver" when the field is set (a sender's role is the
	// zero value, left out); the target names the address.
	role := "sender"
	if strings.Contains(f.Fields, "Role=receiver") {
		role = "receiver"
	}
	for _, field := range strings.Fields(f.Fields) {
		if addr, ok := strings.CutPrefix(field, "Target=target{Address="); ok {
			a.n[role+" "+addr]++
		}
	}
}

// count returns how many times clients attached a link of role ("sender" or
// "receiver") to addr.
func (a *attachCounter) count(role, addr string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[role+" "+addr]
}

func TestRefusedLinksAreRetriedAfterLinkRetryDelay(t *testing.T) {
	// The router refuses attaches to link-routed addresses (their route's container is
	// not connected; a route per direction, as a link route matches only links of its
	// direction): a listener link is attached again after link_retry_delay, again
	// and again, while the others work; a send uses one retry per refused attach
	// (Python's test_send_retry_fail: retry=2 gives up after 3 attempts).
	var attaches attachCounter
	r := fakerouter.RunT(t, &fakerouter.Options{
		Trace: attaches.trace,
		LinkRoutes: []fakerouter.LinkRoute{
			{Prefix: "openstack.org/om/notify/anycast/openstack/routed.", Direction: "in", Connection: "broker"},
			{Prefix: "openstack.org/om/notify/anycast/openstack/routed.", Direction: "out", Connection: "broker"},
		},
	})
	ctx := testCtx(t)
	got := make(chan string, 1)
	l, err := driver.NewListener(newTransport(t, r.URL(), nil), []driver.Target{{Topic: "routed"}, {Topic: "plain"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		got <- n.EventType
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	const refused = "openstack.org/om/notify/anycast/openstack/routed.info"
	require.Eventually(t, func() bool { return attaches.count("receiver", refused) >= 3 }, 10*time.Second, 10*time.Millisecond,
		"the refused listener link is attached again after link_retry_delay")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/notify/anycast/openstack/plain.", 1))
	n := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{Topics: []string{"plain"}})
	require.NoError(t, n.Info(ctx, nil, "unharmed", nil))
	require.Equal(t, "unharmed", <-got)

	bad := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{Topics: []string{"routed"}, Retry: driver.Retries(2)})
	err = bad.Info(ctx, nil, "refused", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.Contains(t, err.Error(), "retries exhausted")
	require.Contains(t, err.Error(), "qd:no-route-to-dest")
	require.Equal(t, 3, attaches.count("sender", refused), "one attempt and two retries")
}

func TestSendWaitingForCreditMovesToTheNewConnection(t *testing.T) {
	// A notification waits for credit (nobody listens yet) when the router restarts:
	// it was not written, so it goes out on the next connection at once, without
	// waiting link_retry_delay (a minute here), and arrives once a listener comes.
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	o := fastOptions()
	o.LinkRetryDelay = time.Minute
	n := driver.NewNotifier(newTransport(t, r.URL(), o), &driver.NotifierOptions{Topics: []string{"later"}})
	sent := make(chan error, 1)
	go func() { sent <- n.Info(ctx, nil, "patient", nil) }()
	const addr = "openstack.org/om/notify/anycast/openstack/later.info"
	require.Eventually(t, func() bool { return len(senderLinks(r, addr)) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, r.Restart())
	// The sender link comes back on the new connection.
	require.Eventually(t, func() bool {
		for _, l := range r.Links() {
			if l.Role == "sender" && l.Address == addr {
				return true
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond)

	got := make(chan string, 1)
	l, err := driver.NewListener(newTransport(t, r.URL(), nil), []driver.Target{{Topic: "later"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		got <- n.EventType
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	select {
	case err := <-sent:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the notification waits for link_retry_delay instead of the new connection")
	}
	require.Equal(t, "patient", <-got)
}
