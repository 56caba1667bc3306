package fakebroker_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// The benchmarks run the same go-amqp workload against the fake broker and, in the
// same run, against a private RabbitMQ 3.10 node with the rabbitmq_amqp1_0 plugin
// that they start with scripts/rabbitmq.sh (and stop in TestMain). Without
// rabbitmq-server the RabbitMQ half is skipped with the reason printed. To reuse a
// node that already runs, set AMQP1KIT_BENCH_RABBITMQ_URL (and
// AMQP1KIT_BENCH_RABBITMQ_PID, its beam pid, for the memory benchmark).

func TestMain(m *testing.M) {
	code := m.Run()
	stopRabbit()
	os.Exit(code)
}

var rabbit struct {
	once sync.Once
	dir  string
	url  string
	pid  int
	err  error
}

func startRabbit() {
	if url := os.Getenv("AMQP1KIT_BENCH_RABBITMQ_URL"); url != "" {
		// A node that already runs (its beam pid in AMQP1KIT_BENCH_RABBITMQ_PID for
		// the memory benchmark).
		rabbit.url = url
		rabbit.pid, _ = strconv.Atoi(os.Getenv("AMQP1KIT_BENCH_RABBITMQ_PID"))
		return
	}
	const server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(server); err != nil {
		rabbit.err = fmt.Errorf("%s not found (Debian package rabbitmq-server): %w", server, err)
		return
	}
	script, err := filepath.Abs("../scripts/rabbitmq.sh")
	if err != nil {
		rabbit.err = err
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rabbit.err = err
		return
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "amqp1kit-fakebroker-bench-rabbitmq")
	if err != nil {
		rabbit.err = err
		return
	}
	rabbit.dir = dir
	cmd := exec.Command("bash", script, "start", dir, strconv.Itoa(port))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		rabbit.err = fmt.Errorf("scripts/rabbitmq.sh start: %w", err)
		return
	}
	rabbit.pid, err = strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		rabbit.err = fmt.Errorf("scripts/rabbitmq.sh printed %q, not a pid", out)
		return
	}
	rabbit.url = fmt.Sprintf("amqp://127.0.0.1:%d", port)
	// An interrupted benchmark run stops the node too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		stopRabbit()
		fmt.Fprintln(os.Stderr, "stopped RabbitMQ on", s)
		os.Exit(2)
	}()
}

func stopRabbit() {
	if rabbit.dir == "" {
		return
	}
	script, _ := filepath.Abs("../scripts/rabbitmq.sh")
	cmd := exec.Command("bash", script, "stop", rabbit.dir)
	cmd.Stderr = os.Stderr
	_ = cmd.Run()
	os.RemoveAll(rabbit.dir)
}

// rabbitURL starts RabbitMQ once per test binary, or skips b with the reason.
func rabbitURL(b *testing.B) string {
	rabbit.once.Do(startRabbit)
	if rabbit.err != nil {
		fmt.Fprintln(os.Stderr, "skipping the RabbitMQ benchmarks:", rabbit.err)
		b.Skipf("RabbitMQ: %v", rabbit.err)
	}
	return rabbit.url
}

// rss returns the resident memory of process pid.
func rss(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

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
		url := rabbitURL(b)
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
			before, err := rss(rabbit.pid)
			if err != nil {
				b.Fatal(err)
			}
			if err := enqueue(ctx, snd, count, body, 250); err != nil {
				b.Fatal(err)
			}
			after, err := rss(rabbit.pid)
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
