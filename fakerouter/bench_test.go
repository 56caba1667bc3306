package fakerouter_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// pipelinedSend sends b.N messages of size bytes on snd, keeping up to window
// unsettled, and waits for every outcome.
func pipelinedSend(b *testing.B, snd *amqp.Sender, size, window int) {
	ctx := context.Background()
	body := make([]byte, size)
	receipts := make(chan amqp.SendReceipt, window)
	errs := make(chan error, 1)
	go func() {
		var first error
		for r := range receipts {
			if _, err := r.Wait(ctx); err != nil && first == nil {
				first = err
			}
		}
		errs <- first
	}()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		r, err := snd.SendWithReceipt(ctx, amqp.NewMessage(body), nil)
		if err != nil {
			b.Fatal(err)
		}
		receipts <- r
	}
	close(receipts)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func dialB(b *testing.B, url string) *amqp.Session {
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	return sess
}

// BenchmarkRouterPassThrough: go-amqp sender → fake router → go-amqp receiver, 1 KiB
// messages, unsettled (end-to-end acknowledged), receiver credit 500.
func BenchmarkRouterPassThrough(b *testing.B) {
	passThrough(b, fakerouter.RunT(b, nil), context.Background())
}

// BenchmarkRabbitMQPassThrough is the same workload through RabbitMQ 3.10's AMQP 1.0
// plugin (a private node, scripts/rabbitmq.sh), on a queue: a broker settles with the
// sender once the message is enqueued, not end to end. Without rabbitmq-server it is
// skipped with the reason printed.
func BenchmarkRabbitMQPassThrough(b *testing.B) {
	node, err := rabbit.Get()
	if err != nil {
		fmt.Fprintln(os.Stderr, "skipping the RabbitMQ benchmark:", err)
		b.Skipf("RabbitMQ: %v", err)
	}
	passThroughURL(b, node.URL, "/queue/bench-pass", func(context.Context) error { return nil }, context.Background())
}

var rabbit = rabbitmq.Shared{Prefix: "amqp1kit-fakerouter-bench-rabbitmq-", FromEnv: true}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := rabbit.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// passThrough runs the pass-through workload through r.
func passThrough(b *testing.B, r *fakerouter.Router, ctx context.Context) {
	addr := "openstack.org/om/rpc/anycast/bench/pass"
	passThroughURL(b, r.URL(), addr, func(ctx context.Context) error { return r.WaitForConsumers(ctx, addr, 1) }, ctx)
}

// passThroughURL runs the pass-through workload on addr at url: a receiver that
// accepts every message (credit 500) and, once ready says the intermediary knows it,
// a sender keeping up to 250 unsettled 1 KiB messages.
func passThroughURL(b *testing.B, url, addr string, ready func(context.Context) error, ctx context.Context) {
	rcv, err := dialB(b, url).NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 500})
	if err != nil {
		b.Fatal(err)
	}
	// The receive loop ends with its context, not with a detach: RabbitMQ 3.10 does
	// not always answer a receiver's detach, so Close could wait for ever.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := rcv.Receive(rctx, nil)
			if err != nil {
				return
			}
			if err := rcv.AcceptMessage(ctx, m); err != nil {
				return
			}
		}
	}()
	if err := ready(ctx); err != nil {
		b.Fatal(err)
	}
	snd, err := dialB(b, url).NewSender(ctx, addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	pipelinedSend(b, snd, 1024, 250)
	stop()
	<-done
}

// settleOnly grants credit and accepts every message: a server that only settles, the
// client's own limit.
type settleOnly struct{ engine.NopHandler }

func (settleOnly) Attach(l *engine.Link) error {
	if l.Role() == wire.RoleReceiver {
		return l.SetCredit(500)
	}
	return nil
}

func (settleOnly) Delivery(l *engine.Link, d *engine.Delivery) {
	d.Settle(&wire.Accepted{})
	if l.Credit() < 250 {
		_ = l.SetCredit(500)
	}
}

// BenchmarkSettleOnlyServer is the same sender against a server that settles at once.
func BenchmarkSettleOnlyServer(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := engine.NewServer(settleOnly{}, nil)
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	snd, err := dialB(b, "amqp://"+ln.Addr().String()).NewSender(context.Background(), "sink", nil)
	if err != nil {
		b.Fatal(err)
	}
	pipelinedSend(b, snd, 1024, 250)
}

// BenchmarkRunT measures start-to-ready: a router listening, address known.
func BenchmarkRunT(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		r, err := fakerouter.Run(nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = r.Close()
		b.StartTimer()
	}
}

// BenchmarkIdleConnections measures the memory an idle client connection costs the
// router: 1000 raw connections that open and then say nothing.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 1000
	for range b.N {
		b.StopTimer()
		r, err := fakerouter.Run(&fakerouter.Options{IdleTimeout: -1})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := frameclient.OpenIdle(r.Addr())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		b.StopTimer()
		for r.Connections() < n {
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
		b.ReportMetric(float64(used)/n/1024, "KiB/conn")
		for _, c := range conns {
			c.Close()
		}
		_ = r.Close()
	}
}
