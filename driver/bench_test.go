package driver_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// Benchmarks of the driver over the fake router, all in one process: a Go client
// and a Go server (each with its own transport, so its own connection) and the
// router. allocs/op therefore counts a whole round trip: client, router and server.
// The Python driver is measured by oslo_peer.py bench over a fake router in the same
// run (BenchmarkPythonDriver), and across languages by BenchmarkGoClientPythonServer
// and BenchmarkPythonClientGoServer. Results: BENCHMARKS.md.

// benchEnv is a router, a Go RPC server on topic "bench" (echo, record) and a client.
type benchEnv struct {
	r      *fakerouter.Router
	client *driver.RPCClient
	casts  atomic.Int64
	castCh chan struct{} // signalled when casts reaches castWant
	want   atomic.Int64
}

func benchTransport(b *testing.B, url string) *driver.Transport {
	b.Helper()
	tr, err := driver.NewTransport(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	return tr
}

// benchServer serves echo(value) and record() on topic at url.
func benchServer(b *testing.B, url, topic string, env *benchEnv) {
	b.Helper()
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"echo": func(ctx context.Context, req *driver.Request) (any, error) {
			return req.Args["value"], nil
		},
		"record": func(ctx context.Context, req *driver.Request) (any, error) {
			if env != nil && env.casts.Add(1) == env.want.Load() {
				env.castCh <- struct{}{}
			}
			return nil, nil
		},
	}}
	srv, err := driver.NewRPCServer(benchTransport(b, url), driver.Target{Topic: topic, Server: "bench-server"}, []driver.Endpoint{ep}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	<-srv.Ready()
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	env := &benchEnv{r: fakerouter.RunT(b, nil), castCh: make(chan struct{}, 1)}
	benchServer(b, env.r.URL(), "bench", env)
	env.client = driver.NewRPCClient(benchTransport(b, env.r.URL()), driver.Target{Topic: "bench"}, &driver.ClientOptions{Timeout: time.Minute})
	// Warm up: connections, links and credit.
	for i := range 20 {
		if _, err := env.client.Call(context.Background(), nil, "echo", map[string]any{"value": i}); err != nil {
			b.Fatal(err)
		}
	}
	return env
}

// reportLatencies reports rate (per second, with unit) and p50/p99 of lat.
func reportLatencies(b *testing.B, n int, elapsed time.Duration, lat []time.Duration, unit string) {
	b.ReportMetric(float64(n)/elapsed.Seconds(), unit)
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
}

// percentile is the q-quantile of sorted values, by nearest rank (as oslo_peer.py).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return sorted[i]
}

func BenchmarkCallSequential(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	args := map[string]any{"value": 1}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if _, err := env.client.Call(ctx, nil, "echo", args); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, b.N, elapsed, lat, "calls/s")
}

func BenchmarkCall16Concurrent(b *testing.B) {
	const callers = 16
	env := newBenchEnv(b)
	ctx := context.Background()
	var next atomic.Int64
	lats := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := map[string]any{"value": c}
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := env.client.Call(ctx, nil, "echo", args); err != nil {
					failed.Store(err)
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	reportLatencies(b, b.N, elapsed, slices.Concat(lats...), "calls/s")
}

func BenchmarkCast(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	args := map[string]any{"value": 1}
	env.want.Store(env.casts.Load() + int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := env.client.Cast(ctx, nil, "record", args); err != nil {
			b.Fatal(err)
		}
	}
	// Timed until the server has them all: casts are pre-settled, and return once
	// written.
	select {
	case <-env.castCh:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d casts arrived", env.casts.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "casts/s")
}

func BenchmarkNotify(b *testing.B) {
	r := fakerouter.RunT(b, nil)
	var got atomic.Int64
	var want atomic.Int64
	want.Store(-1)
	done := make(chan struct{}, 1)
	l, err := driver.NewListener(benchTransport(b, r.URL()), []driver.Target{{Topic: "bench"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		if got.Add(1) == want.Load() {
			done <- struct{}{}
		}
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Stop(context.Background()) })
	<-l.Ready()
	n := driver.NewNotifier(benchTransport(b, r.URL()), &driver.NotifierOptions{PublisherID: "bench", Topics: []string{"bench"}})
	ctx := context.Background()
	payload := map[string]any{"i": 1}
	if err := n.Info(ctx, nil, "bench.warmup", payload); err != nil {
		b.Fatal(err)
	}
	want.Store(got.Load() + int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	// Each notification waits for the listener's acknowledgement (unsettled, end to
	// end through the router), as the Python notifier's.
	for range b.N {
		if err := n.Info(ctx, nil, "bench.event", payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d notifications arrived", got.Load())
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
}

// BenchmarkGoAMQPRoundTrip is the floor under BenchmarkCallSequential: the same
// request and reply through the fake router with go-amqp alone, without the driver (no
// JSON, no addressing, no reply multiplexing): an unsettled request the server accepts,
// and a pre-settled reply on the client's dynamic address.
func BenchmarkGoAMQPRoundTrip(b *testing.B) {
	r := fakerouter.RunT(b, nil)
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	dial := func() *amqp.Conn {
		c, err := amqp.Dial(ctx, r.URL(), nil)
		must(err)
		b.Cleanup(func() { c.Close() })
		return c
	}
	session := func(c *amqp.Conn) *amqp.Session {
		s, err := c.NewSession(ctx, nil)
		must(err)
		return s
	}
	server := dial()
	requests, err := session(server).NewReceiver(ctx, "requests", &amqp.ReceiverOptions{Credit: 100})
	must(err)
	replySession := session(server)
	go func() {
		var reply *amqp.Sender
		for {
			m, err := requests.Receive(ctx, nil)
			if err != nil {
				return
			}
			to := *m.Properties.ReplyTo
			if reply == nil {
				if reply, err = replySession.NewSender(ctx, to, nil); err != nil {
					return
				}
			}
			_ = requests.AcceptMessage(ctx, m)
			_ = reply.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: m.Properties.MessageID, To: &to},
				Value: `{"response": 1}`}, &amqp.SendOptions{Settled: true})
		}
	}()
	client := dial()
	replies, err := session(client).NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 200})
	must(err)
	replyTo := replies.Address()
	sender, err := session(client).NewSender(ctx, "requests", nil)
	must(err)
	body := `{"request": {"method": "echo", "args": {"value": 1}}, "context": {}}`
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		receipt, err := sender.SendWithReceipt(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "id", ReplyTo: &replyTo}, Value: body}, nil)
		must(err)
		_, err = receipt.Wait(ctx)
		must(err)
		_, err = replies.Receive(ctx, nil)
		must(err)
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, b.N, elapsed, lat, "calls/s")
}

// pythonBenchCount is the number of operations per Python run and measurement:
// $AMQP1KIT_PY_BENCH_COUNT, default 1000 (3 runs each, the median reported).
func pythonBenchCount() string {
	if v := os.Getenv("AMQP1KIT_PY_BENCH_COUNT"); v != "" {
		if _, err := strconv.Atoi(v); err == nil {
			return v
		}
	}
	return "1000"
}

// pythonBench runs oslo_peer.py bench with args over the fake router r and returns
// its summary line (medians of 3 runs of pythonBenchCount operations). The Python
// figures do not depend on b.N.
func pythonBench(b *testing.B, r *fakerouter.Router, args ...string) map[string]any {
	b.Helper()
	p := pyoslo.Start(b, append([]string{"bench", "--url", r.URL(), "--count", pythonBenchCount(), "--timeout", "600"}, args...)...)
	res, err := p.WaitEvent("bench", 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

func reportPython(b *testing.B, res map[string]any, keys ...[2]string) {
	b.Helper()
	for _, k := range keys {
		v, ok := res[k[0]].(float64)
		if !ok {
			b.Fatalf("oslo_peer.py bench: no %q in %v", k[0], res)
		}
		b.ReportMetric(v, k[1])
	}
}

var pyBenchLast sync.Map // benchmark name → map[string]any

// pythonOnce runs f for the first round of a benchmark (b.N == 1: the script takes
// longer than -benchtime, so there is usually no other) and reuses its result for
// later rounds (-benchtime Nx), so that b.N does not run the Python script again.
// Every -count repetition runs it afresh.
func pythonOnce(b *testing.B, f func() map[string]any) map[string]any {
	if v, ok := pyBenchLast.Load(b.Name()); ok && b.N > 1 {
		return v.(map[string]any)
	}
	v := f()
	pyBenchLast.Store(b.Name(), v)
	return v
}

// BenchmarkPythonDriver: the Python driver's own figures (client and server in one
// Python process) over the fake router, as the Go ones above.
func BenchmarkPythonDriver(b *testing.B) {
	pyoslo.Require(b)
	res := pythonOnce(b, func() map[string]any {
		return pythonBench(b, fakerouter.RunT(b, nil))
	})
	b.ReportMetric(0, "ns/op")
	reportPython(b, res,
		[2]string{"calls_per_s", "calls/s"}, [2]string{"p50_us", "p50-µs"}, [2]string{"p99_us", "p99-µs"},
		[2]string{"concurrent_calls_per_s", "conc16-calls/s"}, [2]string{"concurrent_p50_us", "conc16-p50-µs"},
		[2]string{"concurrent_p99_us", "conc16-p99-µs"},
		[2]string{"casts_per_s", "casts/s"}, [2]string{"notifications_per_s", "notifications/s"})
}

// BenchmarkGoClientPythonServer: Go calls to the Python driver's RPC server.
func BenchmarkGoClientPythonServer(b *testing.B) {
	pyoslo.Require(b)
	r := fakerouter.RunT(b, nil)
	topic := fmt.Sprintf("gopy-%d", b.N)
	p := pyoslo.Start(b, "rpc-server", "--url", r.URL(), "--topic", topic, "--server", "py", "--timeout", "0")
	if _, err := p.WaitEvent("ready", time.Minute); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3); err != nil {
		b.Fatal(err)
	}
	client := driver.NewRPCClient(benchTransport(b, r.URL()), driver.Target{Topic: topic}, &driver.ClientOptions{Timeout: time.Minute})
	args := map[string]any{"value": 1}
	for range 20 {
		if _, err := client.Call(ctx, nil, "echo", args); err != nil {
			b.Fatal(err)
		}
	}
	// The Python server prints a line per request: drain them.
	go func() {
		for {
			if _, err := p.Next(time.Hour); err != nil {
				return
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if _, err := client.Call(context.Background(), nil, "echo", args); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatencies(b, b.N, elapsed, lat, "calls/s")
}

// BenchmarkPythonClientGoServer: the Python driver's calls (sequential and from 16
// threads) to a Go RPC server.
func BenchmarkPythonClientGoServer(b *testing.B) {
	pyoslo.Require(b)
	res := pythonOnce(b, func() map[string]any {
		r := fakerouter.RunT(b, nil)
		benchServer(b, r.URL(), "pygo", nil)
		return pythonBench(b, r, "--topic", "pygo", "--no-server", "--only", "calls,concurrent")
	})
	b.ReportMetric(0, "ns/op")
	reportPython(b, res,
		[2]string{"calls_per_s", "calls/s"}, [2]string{"p50_us", "p50-µs"}, [2]string{"p99_us", "p99-µs"},
		[2]string{"concurrent_calls_per_s", "conc16-calls/s"}, [2]string{"concurrent_p50_us", "conc16-p50-µs"},
		[2]string{"concurrent_p99_us", "conc16-p99-µs"})
}
