package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/driver"
)

// runRole runs one of the processes of a cell: the client of a Go or floor workload
// ("client"), or the floor's relay ("relay") or server ("tcp-server").
func runRole(role string, args []string) int {
	switch role {
	case "client":
		return runClient(args)
	case "relay":
		return runRelay(args)
	case "tcp-server":
		return runTCPServer(args)
	}
	fmt.Fprintf(os.Stderr, "benchmatrix: unknown %s %q\n", roleEnv, role)
	return 2
}

// emitter writes the JSON lines the harness reads.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(l workerLine) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(l)
}

// clientArgs are the flags of the client role.
type clientArgs struct {
	workload, url, kind, id string
	duration, warmup        time.Duration
	size, concurrency       int
}

// address returns the cell's own address for what (pass, req, rep) on its intermediary:
// a queue on RabbitMQ, else under the guide's unicast prefix (closest on a router, a
// queue on a broker).
func (a *clientArgs) address(what string) string {
	name := "benchmatrix-" + a.id + "-" + what
	if a.kind == kindRabbit {
		return "/queue/" + name
	}
	return "unicast." + name
}

// measurement is what a workload measured: operations, the time they took (and each
// one's, for the latency workloads), and what the intermediary said of itself.
type measurement struct {
	ops     int64
	elapsed time.Duration
	lat     []time.Duration
	info    string
}

func runClient(args []string) int {
	var a clientArgs
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.StringVar(&a.workload, "workload", "", "")
	fs.StringVar(&a.url, "url", "", "")
	fs.StringVar(&a.kind, "kind", "", "")
	fs.StringVar(&a.id, "id", "x", "")
	fs.DurationVar(&a.duration, "duration", 5*time.Second, "")
	fs.DurationVar(&a.warmup, "warmup", time.Second, "")
	fs.IntVar(&a.size, "size", 1024, "")
	fs.IntVar(&a.concurrency, "concurrency", 16, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	out := &emitter{enc: json.NewEncoder(os.Stdout)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, a.warmup+a.duration+90*time.Second)
	defer cancel()
	measuring := &window{out: out}
	var (
		m   measurement
		err error
	)
	switch a.workload {
	case "passthrough":
		m, err = passThrough(ctx, &a, measuring)
	case "roundtrip":
		m, err = roundTrip(ctx, &a, measuring)
	case "go-calls", "go-calls16", "go-casts":
		m, err = driverRPC(ctx, &a, measuring)
	case "go-notify":
		m, err = driverNotify(ctx, &a, measuring)
	case "floor":
		m, err = floorClient(ctx, &a, measuring)
	default:
		err = fmt.Errorf("unknown workload %q", a.workload)
	}
	if err != nil {
		if !measuring.ended {
			out.emit(workerLine{Event: "error", Message: err.Error()})
		}
		return 1
	}
	if !measuring.ended {
		measuring.end(m, nil)
	}
	return 0
}

// window is the measured window of a cell's client: start says "measuring", end prints
// the result and waits until the harness has sampled the processes (it closes our stdin),
// before the workload tears its connections down.
type window struct {
	out   *emitter
	info  string // what the intermediary said of itself, if the measurement does not say
	ended bool
}

func (w *window) start() { w.out.emit(workerLine{Event: "measuring"}) }

func (w *window) end(m measurement, err error) (measurement, error) {
	w.ended = true
	if err != nil {
		w.out.emit(workerLine{Event: "error", Message: err.Error()})
		return m, err
	}
	if m.info == "" {
		m.info = w.info
	}
	l := workerLine{Event: "result", Ops: m.ops, Seconds: m.elapsed.Seconds(), Info: m.info}
	if len(m.lat) > 0 {
		slices.Sort(m.lat)
		l.P50us = float64(percentile(m.lat, 50)) / float64(time.Microsecond)
		l.P99us = float64(percentile(m.lat, 99)) / float64(time.Microsecond)
	}
	w.out.emit(l)
	waitStdinEOF(10 * time.Second)
	return m, nil
}

// waitStdinEOF waits until stdin ends, at most d.
func waitStdinEOF(d time.Duration) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// percentile returns the nearest-rank p-th percentile of sorted durations (as
// `amqp1kit bench`).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// loop runs op from callers goroutines until d has passed, each call timed; the time
// ends when the last call in flight has returned.
func loop(ctx context.Context, d time.Duration, callers int, op func(context.Context) error) (measurement, error) {
	var (
		wg      sync.WaitGroup
		lats    = make([][]time.Duration, callers)
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	end := start.Add(d)
	for i := range callers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				lat = append(lat, time.Since(t0))
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	m := measurement{elapsed: time.Since(start), lat: slices.Concat(lats...)}
	m.ops = int64(len(m.lat))
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return m, first
}

// warmThenMeasure runs loop for the warm-up, says measuring, and runs it for the
// measured window.
func warmThenMeasure(ctx context.Context, a *clientArgs, callers int, measuring *window, op func(context.Context) error) (measurement, error) {
	if a.warmup > 0 {
		if _, err := loop(ctx, a.warmup, callers, op); err != nil {
			return measurement{}, fmt.Errorf("warming up: %w", err)
		}
	}
	measuring.start()
	return measuring.end(loop(ctx, a.duration, callers, op))
}

// dial opens a go-amqp connection and a session on it.
func dial(ctx context.Context, url string) (*amqp.Conn, *amqp.Session, error) {
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{ContainerID: "benchmatrix-" + randomID()})
	if err != nil {
		return nil, nil, err
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, sess, nil
}

// closeAll closes what a workload opened, without waiting more than 5 s (RabbitMQ 3.10
// does not always answer a detach).
func closeAll(closers ...io.Closer) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range closers {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// drainWait waits until cond holds, polling, or ctx ends.
func drainWait(ctx context.Context, cond func() bool) error {
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

// drainTimeout bounds the wait for the last casts or notifications: what has not
// arrived by then is lost.
const drainTimeout = 15 * time.Second

// drainCount waits until got reaches want, at most drainTimeout.
func drainCount(ctx context.Context, got *atomic.Int64, want int64, what string) error {
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	if err := drainWait(dctx, func() bool { return got.Load() >= want }); err != nil {
		return fmt.Errorf("%d of %d %s arrived within %s of the last one sent (lost)", got.Load(), want, what, drainTimeout)
	}
	return nil
}

// passThrough: one sender → intermediary → one receiver on one address, unsettled; the
// receiver (credit 500) accepts each message; the sender keeps up to 250 awaiting their
// outcome and at most 1000 not yet received (a broker settles on enqueue: without the
// second bound its queue would grow without end). Timed until the receiver has every
// message sent and the sender every outcome.
func passThrough(ctx context.Context, a *clientArgs, measuring *window) (measurement, error) {
	addr := a.address("pass")
	rconn, rsess, err := dial(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	sconn, ssess, err := dial(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	defer closeAll(sconn, rconn)
	rcv, err := rsess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 500})
	if err != nil {
		return measurement{}, fmt.Errorf("receiver on %s: %w", addr, err)
	}
	snd, err := ssess.NewSender(ctx, addr, nil)
	if err != nil {
		return measurement{}, fmt.Errorf("sender on %s: %w", addr, err)
	}
	const window, maxLag = 250, 1000
	var (
		received, settled atomic.Int64
		failed            atomic.Pointer[error]
		lag               = make(chan struct{}, maxLag)
		inflight          = make(chan struct{}, window)
		receipts          = make(chan amqp.SendReceipt, window)
	)
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			m, err := rcv.Receive(wctx, nil)
			if err != nil {
				if wctx.Err() == nil {
					fail(fmt.Errorf("receiving: %w", err))
				}
				return
			}
			if err := rcv.AcceptMessage(wctx, m); err != nil {
				if wctx.Err() == nil {
					fail(fmt.Errorf("accepting: %w", err))
				}
				return
			}
			received.Add(1)
			<-lag
		}
	}()
	go func() {
		for r := range receipts {
			state, err := r.Wait(wctx)
			if err == nil {
				if _, ok := state.(*amqp.StateAccepted); !ok {
					err = fmt.Errorf("outcome %T, not accepted", state)
				}
			}
			if err != nil {
				if wctx.Err() == nil {
					fail(fmt.Errorf("sending: %w", err))
				}
				return
			}
			settled.Add(1)
			<-inflight
		}
	}()
	defer close(receipts)
	body := make([]byte, a.size)
	var sent int64
	phase := func(d time.Duration) (measurement, error) {
		base := sent
		start := time.Now()
		end := start.Add(d)
		for time.Now().Before(end) {
			if p := failed.Load(); p != nil {
				return measurement{}, *p
			}
			select {
			case lag <- struct{}{}:
			case <-ctx.Done():
				return measurement{}, fmt.Errorf("waiting for the receiver (%d sent, %d received): %w", sent, received.Load(), ctx.Err())
			}
			select {
			case inflight <- struct{}{}:
			case <-ctx.Done():
				return measurement{}, fmt.Errorf("waiting for outcomes (%d sent, %d settled): %w", sent, settled.Load(), ctx.Err())
			}
			r, err := snd.SendWithReceipt(ctx, amqp.NewMessage(body), nil)
			if err != nil {
				return measurement{}, fmt.Errorf("sending: %w", err)
			}
			receipts <- r
			sent++
		}
		dctx, cancel := context.WithTimeout(ctx, drainTimeout)
		defer cancel()
		err := drainWait(dctx, func() bool {
			return failed.Load() != nil || (received.Load() == sent && settled.Load() == sent)
		})
		if p := failed.Load(); p != nil {
			return measurement{}, *p
		}
		if err != nil {
			return measurement{}, fmt.Errorf("%d sent, %d settled, %d received %s after the last send", sent, settled.Load(), received.Load(), drainTimeout)
		}
		return measurement{ops: sent - base, elapsed: time.Since(start)}, nil
	}
	if a.warmup > 0 {
		if _, err := phase(a.warmup); err != nil {
			return measurement{}, fmt.Errorf("warming up: %w", err)
		}
	}
	measuring.start()
	m, err := measuring.end(phase(a.duration))
	stop()
	return m, err
}

// roundTrip: a request (unsettled, size bytes) to one address; a consumer on another
// connection accepts it and answers pre-settled with the same bytes on a second address,
// where the client receives it. One at a time: the client waits for the request's outcome
// and for the answer.
func roundTrip(ctx context.Context, a *clientArgs, measuring *window) (measurement, error) {
	reqAddr, repAddr := a.address("req"), a.address("rep")
	cconn, csess, err := dial(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	sconn, ssess, err := dial(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	defer closeAll(cconn, sconn)
	replies, err := csess.NewReceiver(ctx, repAddr, &amqp.ReceiverOptions{Credit: 100})
	if err != nil {
		return measurement{}, fmt.Errorf("receiver on %s: %w", repAddr, err)
	}
	requests, err := ssess.NewReceiver(ctx, reqAddr, &amqp.ReceiverOptions{Credit: 100})
	if err != nil {
		return measurement{}, fmt.Errorf("receiver on %s: %w", reqAddr, err)
	}
	answer, err := ssess.NewSender(ctx, repAddr, nil)
	if err != nil {
		return measurement{}, fmt.Errorf("sender on %s: %w", repAddr, err)
	}
	ask, err := csess.NewSender(ctx, reqAddr, nil)
	if err != nil {
		return measurement{}, fmt.Errorf("sender on %s: %w", reqAddr, err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var failed atomic.Pointer[error]
	go func() {
		for {
			m, err := requests.Receive(wctx, nil)
			if err == nil {
				err = requests.AcceptMessage(wctx, m)
			}
			if err == nil {
				err = answer.Send(wctx, &amqp.Message{
					Properties: &amqp.MessageProperties{CorrelationID: m.Properties.MessageID},
					Data:       [][]byte{m.GetData()},
				}, &amqp.SendOptions{Settled: true})
			}
			if err != nil {
				if wctx.Err() == nil {
					failed.CompareAndSwap(nil, &err)
				}
				return
			}
		}
	}()
	body := make([]byte, a.size)
	var n uint64
	op := func(ctx context.Context) error {
		if p := failed.Load(); p != nil {
			return fmt.Errorf("the consumer: %w", *p)
		}
		n++
		r, err := ask.SendWithReceipt(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: n}, Data: [][]byte{body}}, nil)
		if err != nil {
			return fmt.Errorf("sending: %w", err)
		}
		state, err := r.Wait(ctx)
		if err != nil {
			return fmt.Errorf("request outcome: %w", err)
		}
		if _, ok := state.(*amqp.StateAccepted); !ok {
			return fmt.Errorf("request outcome %T, not accepted", state)
		}
		m, err := replies.Receive(ctx, nil)
		if err != nil {
			return fmt.Errorf("receiving the answer: %w", err)
		}
		if len(m.GetData()) != len(body) {
			return fmt.Errorf("an answer of %d bytes, not %d", len(m.GetData()), len(body))
		}
		return replies.AcceptMessage(ctx, m) // settled already: no frame
	}
	m, err := warmThenMeasure(ctx, a, 1, measuring, op)
	stop()
	return m, err
}

// driverTransports opens the server's and the client's transports (each its own
// connection) and says what the intermediary is and which addressing the driver picked.
func driverTransports(ctx context.Context, url string) (server, client *driver.Transport, info string, err error) {
	server, err = driver.NewTransport(url, nil)
	if err != nil {
		return nil, nil, "", err
	}
	client, err = driver.NewTransport(url, nil)
	if err != nil {
		server.Close()
		return nil, nil, "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addr, err := client.Addresser(cctx)
	if err != nil {
		server.Close()
		client.Close()
		return nil, nil, "", fmt.Errorf("connecting: %w", err)
	}
	product, version, _ := client.PeerProduct()
	mode := "routable"
	if addr.Legacy() {
		mode = "legacy"
	}
	return server, client, fmt.Sprintf("%s %s, %s addresses", product, version, mode), nil
}

// driverRPC: the Go driver's echo server and client over the intermediary, in this
// process: sequential calls (go-calls), concurrent callers (go-calls16) or casts
// (go-casts, timed until the server has them all, at most 200 not yet handled).
func driverRPC(ctx context.Context, a *clientArgs, measuring *window) (measurement, error) {
	st, ct, info, err := driverTransports(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	defer closeAll(ct, st)
	topic := "benchmatrix-" + a.id
	var casts atomic.Int64
	srv, err := driver.NewRPCServer(st, driver.Target{Topic: topic, Server: "bench"}, []driver.Endpoint{{
		Methods: map[string]driver.Method{
			"echo": func(_ context.Context, req *driver.Request) (any, error) {
				return req.Args["payload"], nil
			},
			"record": func(_ context.Context, req *driver.Request) (any, error) {
				casts.Add(1)
				return nil, nil
			},
		},
	}}, nil)
	if err != nil {
		return measurement{}, err
	}
	if err := srv.Start(); err != nil {
		return measurement{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(sctx)
	}()
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		return measurement{}, errors.New("the echo server's links were not attached in time")
	}
	client := driver.NewRPCClient(ct, driver.Target{Topic: topic}, &driver.ClientOptions{Timeout: time.Minute})
	args := map[string]any{"payload": strings.Repeat("x", a.size)}
	// The first call waits until the intermediary routes to the server's links.
	if _, err := client.Call(ctx, nil, "echo", args); err != nil {
		return measurement{}, fmt.Errorf("the echo server did not answer: %w", err)
	}
	measuring.info = info
	var m measurement
	switch a.workload {
	case "go-calls", "go-calls16":
		callers := 1
		if a.workload == "go-calls16" {
			callers = a.concurrency
		}
		m, err = warmThenMeasure(ctx, a, callers, measuring, func(ctx context.Context) error {
			_, err := client.Call(ctx, nil, "echo", args)
			return err
		})
	case "go-casts":
		// qdrouterd drops pre-settled deliveries queued for a link beyond its capacity
		// (250; forwarder.c, qdr_forward_deliver_CT): keep fewer than that on the way.
		const maxLag = 200
		var sent int64
		phase := func(d time.Duration) (measurement, error) {
			base := sent
			start := time.Now()
			for end := start.Add(d); time.Now().Before(end); {
				if sent-casts.Load() >= maxLag {
					if err := drainWait(ctx, func() bool { return sent-casts.Load() < maxLag }); err != nil {
						return measurement{}, err
					}
				}
				if err := client.Cast(ctx, nil, "record", args); err != nil {
					return measurement{}, err
				}
				sent++
			}
			if err := drainCount(ctx, &casts, sent, "casts"); err != nil {
				return measurement{}, err
			}
			return measurement{ops: sent - base, elapsed: time.Since(start)}, nil
		}
		if a.warmup > 0 {
			if _, err := phase(a.warmup); err != nil {
				return measurement{}, fmt.Errorf("warming up: %w", err)
			}
		}
		measuring.start()
		m, err = measuring.end(phase(a.duration))
	}
	return m, err
}

// driverNotify: a Notifier and a Listener (priority info) over the intermediary, in this
// process; one notification at a time, each acknowledged (end to end through a router,
// on store by a broker), at most 1000 not yet handled; timed until the listener has them
// all.
func driverNotify(ctx context.Context, a *clientArgs, measuring *window) (measurement, error) {
	lt, nt, info, err := driverTransports(ctx, a.url)
	if err != nil {
		return measurement{}, err
	}
	defer closeAll(nt, lt)
	topic := "benchmatrix-" + a.id
	var got atomic.Int64
	l, err := driver.NewListener(lt, []driver.Target{{Topic: topic}}, func(context.Context, *driver.Notification) driver.Result {
		got.Add(1)
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	if err != nil {
		return measurement{}, err
	}
	if err := l.Start(); err != nil {
		return measurement{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Stop(sctx)
	}()
	select {
	case <-l.Ready():
	case <-ctx.Done():
		return measurement{}, errors.New("the listener's links were not attached in time")
	}
	n := driver.NewNotifier(nt, &driver.NotifierOptions{PublisherID: "benchmatrix", Topics: []string{topic}})
	payload := map[string]any{"payload": strings.Repeat("x", a.size)}
	if err := n.Info(ctx, nil, "bench.warmup", payload); err != nil {
		return measurement{}, err
	}
	const maxLag = 1000
	sent := int64(1)
	phase := func(d time.Duration) (measurement, error) {
		base := sent
		start := time.Now()
		for end := start.Add(d); time.Now().Before(end); {
			if sent-got.Load() >= maxLag {
				if err := drainWait(ctx, func() bool { return sent-got.Load() < maxLag }); err != nil {
					return measurement{}, err
				}
			}
			if err := n.Info(ctx, nil, "bench.event", payload); err != nil {
				return measurement{}, err
			}
			sent++
		}
		if err := drainCount(ctx, &got, sent, "notifications"); err != nil {
			return measurement{}, err
		}
		return measurement{ops: sent - base, elapsed: time.Since(start), info: info}, nil
	}
	if a.warmup > 0 {
		if _, err := phase(a.warmup); err != nil {
			return measurement{}, fmt.Errorf("warming up: %w", err)
		}
	}
	measuring.start()
	return measuring.end(phase(a.duration))
}

// floorClient: size bytes to the relay, size bytes back, one at a time.
func floorClient(ctx context.Context, a *clientArgs, measuring *window) (measurement, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", a.url)
	if err != nil {
		return measurement{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req := make([]byte, a.size)
	resp := make([]byte, a.size)
	return warmThenMeasure(ctx, a, 1, measuring, func(context.Context) error {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, resp)
		return err
	})
}
