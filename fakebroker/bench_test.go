package fakebroker_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
)

// The benchmarks run the same go-amqp workload against the fake broker and, in the
// same run, against a private RabbitMQ 3.10 node with the rabbitmq_amqp1_0 plugin
// that they start with scripts/rabbitmq.sh (internal/testenv/rabbitmq; stopped in TestMain or
// on SIGINT/SIGTERM). Without rabbitmq-server the RabbitMQ half is skipped with the
// reason printed. To reuse a node that already runs, set AMQP1KIT_BENCH_RABBITMQ_URL
// (and AMQP1KIT_BENCH_RABBITMQ_PID, its beam pid, for the memory benchmark).

func TestMain(m *testing.M) {
	code := m.Run()
	if err := rabbit.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

var rabbit = rabbitmq.Shared{Prefix: "amqp1kit-fakebroker-bench-rabbitmq-", FromEnv: true}

// rabbitNode starts RabbitMQ once per test binary, or skips b with the reason.
func rabbitNode(b *testing.B) *rabbitmq.Node {
	n, err := rabbit.Get()
	if err != nil {
		fmt.Fprintln(os.Stderr, "skipping the RabbitMQ benchmarks:", err)
		b.Skipf("RabbitMQ: %v", err)
	}
	rabbitStarted.Do(func() {
		if n.Dir != "" {
			fmt.Fprintf(os.Stderr, "RabbitMQ node ready on %s (pid %d, dir %s) in %v\n", n.URL, n.PID, n.Dir, n.Took.Round(time.Millisecond))
		}
	})
	return n
}

var rabbitStarted sync.Once

func rabbitURL(b *testing.B) string { return rabbitNode(b).URL }

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func dialB(b *testing.B, url string) *amqp.Session {
	ctx := benchCtx(b)
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

// enqueue sends n messages of body on snd, keeping up to window unsettled, and waits
// for every outcome (accepted: stored).
func enqueue(ctx context.Context, snd *amqp.Sender, n int, body []byte, window int) error {
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
	for range n {
		r, err := snd.SendWithReceipt(ctx, amqp.NewMessage(body), nil)
		if err != nil {
			close(receipts)
			<-errs
			return err
		}
		receipts <- r
	}
	close(receipts)
	return <-errs
}

// dequeue receives and accepts n messages on rcv (manual credit), keeping 250 to 500
// messages of credit out.
func dequeue(ctx context.Context, rcv *amqp.Receiver, n int) error {
	credit := min(500, n)
	if err := rcv.IssueCredit(uint32(credit)); err != nil {
		return err
	}
	for i := range n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			return fmt.Errorf("message %d of %d: %w", i, n, err)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			return err
		}
		credit--
		if left := n - i - 1; credit <= 250 && left > credit {
			more := min(250, left-credit)
			if err := rcv.IssueCredit(uint32(more)); err != nil {
				return err
			}
			credit += more
		}
	}
	return nil
}

type benchTarget struct {
	name string
	url  func(b *testing.B) string
	// queue returns the address of queue name on the target.
	queue func(name string) string
}

var benchTargets = []benchTarget{
	{"fakebroker", func(b *testing.B) string { return fakebroker.RunT(b, nil).URL() }, func(n string) string { return "unicast." + n }},
	{"rabbitmq", rabbitURL, func(n string) string { return "/queue/" + n }},
}

// BenchmarkEnqueueThenDequeue: b.N messages of 1 KiB sent unsettled by one go-amqp
// sender (up to 250 awaiting their outcome) to a queue with no consumer taking them,
// then received and accepted by one go-amqp receiver (credit 250-500). Reports both
// phases' rates.
func BenchmarkEnqueueThenDequeue(b *testing.B) {
	for _, tg := range benchTargets {
		b.Run(tg.name, func(b *testing.B) {
			ctx := benchCtx(b)
			url := tg.url(b)
			addr := tg.queue(fmt.Sprintf("bench-%d", time.Now().UnixNano()))
			// The receiver attaches first, with no credit: it creates the queue on
			// RabbitMQ and takes nothing during the enqueue phase.
			rcv, err := dialB(b, url).NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: -1})
			if err != nil {
				b.Fatal(err)
			}
			snd, err := dialB(b, url).NewSender(ctx, addr, nil)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 1024)
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			start := time.Now()
			if err := enqueue(ctx, snd, b.N, body, 250); err != nil {
				b.Fatal(err)
			}
			enq := time.Since(start)
			start = time.Now()
			if err := dequeue(ctx, rcv, b.N); err != nil {
				b.Fatal(err)
			}
			deq := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/enq.Seconds(), "enq-msgs/s")
			b.ReportMetric(float64(b.N)/deq.Seconds(), "deq-msgs/s")
			// RabbitMQ 3.10 may never answer the detach of a receiver that still has
			// credit; the connection goes at cleanup anyway.
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = rcv.Close(cctx)
			cancel()
		})
	}
}

// BenchmarkStoredMessageMemory stores 20 000 messages of 1 KiB and reports the memory
// each costs: the fake broker's Go heap in use (after a GC; client included, a
// constant), RabbitMQ's resident set (the beam process). Run it with -benchtime=1x.
func BenchmarkStoredMessageMemory(b *testing.B) {
	const count = 20000
	body := make([]byte, 1024)
	b.Run("fakebroker", func(b *testing.B) {
		for range b.N {
			fb, err := fakebroker.Run(nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := benchCtx(b)
			snd, err := dialB(b, fb.URL()).NewSender(ctx, "unicast.mem", nil)
			if err != nil {
				b.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if err := enqueue(ctx, snd, count, body, 250); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if d := fb.Depth("unicast.mem"); d != count {
				b.Fatalf("depth %d, want %d", d, count)
			}
			b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/count, "B/msg")
			_ = fb.Close()
		}
	})
	b.Run("rabbitmq", func(b *testing.B) {
		node := rabbitNode(b)
		url, pid := node.URL, node.PID
		for range b.N {
			ctx := benchCtx(b)
			addr := fmt.Sprintf("/queue/mem-%d", time.Now().UnixNano())
			sess := dialB(b, url)
			rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: -1})
			if err != nil {
				b.Fatal(err)
			}
			snd, err := sess.NewSender(ctx, addr, nil)
			if err != nil {
				b.Fatal(err)
			}
			before, err := rabbitmq.RSS(pid)
			if err != nil {
				b.Fatal(err)
			}
			if err := enqueue(ctx, snd, count, body, 250); err != nil {
				b.Fatal(err)
			}
			after, err := rabbitmq.RSS(pid)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(int64(after)-int64(before))/count, "B/msg")
			b.StopTimer()
			if err := dequeue(ctx, rcv, count); err != nil { // leave the node empty
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkRun measures start-to-ready: a broker listening, address known.
func BenchmarkRun(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		fb, err := fakebroker.Run(nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = fb.Close()
		b.StartTimer()
	}
}
