package driver_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

func TestServerThatRaises(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	startServer(t, r, newTransport(t, r.URL(), nil), "raise", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "raise"}, &driver.ClientOptions{Timeout: 10 * time.Second})

	// A plain Go error goes back as Python's builtins RuntimeError.
	_, err := cli.Call(ctx, nil, "raise", map[string]any{"message": "disk full"})
	var re *driver.RemoteError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "builtins", re.Module)
	require.Equal(t, "RuntimeError", re.Class)
	require.Equal(t, "disk full", re.Message)
	require.Equal(t, []any{"disk full"}, re.Args, "a Python caller rebuilds RuntimeError(*args)")
	require.False(t, errors.Is(err, driver.ErrTimeout) || errors.Is(err, driver.ErrDeliveryFailure))

	// A panic too, and the server survives it.
	_, err = cli.Call(ctx, nil, "panic", nil)
	require.ErrorAs(t, err, &re)
	require.Equal(t, "RuntimeError", re.Class)
	require.Contains(t, re.Message, "something broke")
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "still here"})
	require.NoError(t, err)
	require.Equal(t, `"still here"`, string(res))
}

func TestServerStopWaitsForCallsInFlight(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	started := make(chan struct{}, 3)
	release := make(chan struct{})
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"slow": func(ctx context.Context, req *driver.Request) (any, error) {
			started <- struct{}{}
			<-release
			return "done", nil
		},
	}}
	srv, err := driver.NewRPCServer(newTransport(t, r.URL(), nil), driver.Target{Topic: "stop", Server: "s"}, []driver.Endpoint{ep}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))

	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "stop"}, &driver.ClientOptions{Timeout: 20 * time.Second})
	var wg sync.WaitGroup
	results := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cli.Call(ctx, nil, "slow", nil)
			results[i], errs[i] = string(res), err
		}()
	}
	for range 3 {
		<-started
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(ctx) }()
	// The links go (no new requests) while the methods still run.
	require.Eventually(t, func() bool { return noConsumers(r) }, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while methods were running", err)
	default:
	}
	close(release)
	require.NoError(t, <-stopped)
	wg.Wait()
	for i := range 3 {
		require.NoError(t, errs[i])
		require.Equal(t, `"done"`, results[i], "the reply of a call in flight is delivered")
	}

	// Stopped: nobody serves the topic any more.
	quick := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "stop"}, &driver.ClientOptions{Timeout: 300 * time.Millisecond})
	_, err = quick.Call(ctx, nil, "slow", nil)
	require.ErrorIs(t, err, driver.ErrTimeout)
}

// noConsumers reports whether no RPC address has a consumer.
func noConsumers(r *fakerouter.Router) bool {
	for _, a := range r.Addresses() {
		if !a.Dynamic && a.Consumers > 0 {
			return false
		}
	}
	return true
}

func TestCallMonitorWithoutHeartbeatTimesOut(t *testing.T) {
	// Python's test_call_monitor_bad_no_heartbeat: the server acknowledges the
	// request, sends one heartbeat, then nothing. A raw go-amqp server plays it.
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	conn, err := amqp.Dial(ctx, r.URL(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	rcv, err := sess.NewReceiver(ctx, "openstack.org/om/rpc/anycast/openstack/monitor", &amqp.ReceiverOptions{Credit: 10})
	require.NoError(t, err)
	heartbeatSent := make(chan struct{})
	go func() {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			return
		}
		_ = rcv.AcceptMessage(ctx, m)
		to := *m.Properties.ReplyTo
		snd, err := sess.NewSender(ctx, to, nil)
		if err != nil {
			return
		}
		// A heartbeat: no body, correlation-id = the request's message-id.
		_ = snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: m.Properties.MessageID, To: &to}}, &amqp.SendOptions{Settled: true})
		close(heartbeatSent)
	}()

	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "monitor"},
		&driver.ClientOptions{Timeout: 20 * time.Second, CallMonitorTimeout: 500 * time.Millisecond})
	_, err = cli.Call(ctx, nil, "work", nil)
	require.ErrorIs(t, err, driver.ErrTimeout)
	// The call's own timeout (20 s) would say "no reply in time": the monitor fired.
	require.Contains(t, err.Error(), "call monitor")
	<-heartbeatSent
}

func TestListenerRequeueThroughRouter(t *testing.T) {
	// A requeue through a router is a released outcome back to the notifier, which
	// sends the notification again after link_retry_delay; a listener that handles
	// it the second time gets every notification, none lost.
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	var mu sync.Mutex
	deliveries := map[string]int{}
	handled := map[string]bool{}
	l, err := driver.NewListener(newTransport(t, r.URL(), nil), []driver.Target{{Topic: "rq"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		mu.Lock()
		defer mu.Unlock()
		deliveries[n.MessageID]++
		if deliveries[n.MessageID] == 1 {
			return driver.Requeue
		}
		handled[n.MessageID] = true
		return driver.Handled
	}, &driver.ListenerOptions{AllowRequeue: true, Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/notify/", 1))

	n := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{PublisherID: "p", Topics: []string{"rq"}})
	const count = 5
	for i := range count {
		require.NoError(t, n.Info(ctx, nil, "requeue.test", map[string]any{"i": i}))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, handled, count, "every notification handled")
	for id, d := range deliveries {
		require.Equal(t, 2, d, "notification %s: requeued once, handled once", id)
	}
	require.GreaterOrEqual(t, r.Stats().Released, uint64(count), "the router passed each release back")
}

func TestRequeueNotAllowedIsHandled(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	var mu sync.Mutex
	calls := 0
	l, err := driver.NewListener(newTransport(t, r.URL(), nil), []driver.Target{{Topic: "norq"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		mu.Lock()
		calls++
		mu.Unlock()
		return driver.Requeue
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/notify/", 1))
	require.NoError(t, driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{Topics: []string{"norq"}}).Info(ctx, nil, "x", nil))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, calls, "without AllowRequeue, Requeue is taken as Handled")
	require.Zero(t, r.Stats().Released)
}

func TestBatchListenerOverRouter(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	var mu sync.Mutex
	var batches [][]string
	total := 0
	l, err := driver.NewBatchListener(newTransport(t, r.URL(), nil), []driver.Target{{Topic: "batch"}}, func(ctx context.Context, b []*driver.Notification) driver.Result {
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for _, n := range b {
			ids = append(ids, n.MessageID)
		}
		batches = append(batches, ids)
		total += len(b)
		return driver.Handled
	}, &driver.ListenerOptions{BatchSize: 5, BatchTimeout: 200 * time.Millisecond, Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/notify/", 1))

	// Each notification waits for the listener's acknowledgement, which comes with its
	// batch: send them concurrently.
	n := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{Topics: []string{"batch"}})
	const count = 12
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- n.Info(ctx, nil, "batch.test", map[string]any{"i": i})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, count, total)
	seen := map[string]bool{}
	for _, b := range batches {
		require.LessOrEqual(t, len(b), 5, "no batch above BatchSize")
		for _, id := range b {
			require.False(t, seen[id], "notification %s delivered twice", id)
			seen[id] = true
		}
	}
	require.GreaterOrEqual(t, len(batches), 3)

	// A lone notification comes in a batch of one after BatchTimeout.
	before := len(batches)
	mu.Unlock()
	require.NoError(t, n.Info(ctx, nil, "batch.test", "lone"))
	mu.Lock()
	require.Len(t, batches, before+1)
	require.Len(t, batches[before], 1)
}
