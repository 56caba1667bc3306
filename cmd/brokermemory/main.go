// Command brokermemory measures the broker memory ceiling of RELIABILITY.md: one slow
// consumer (it accepts a message every 10 ms) and one sender flooding unsettled 1 KiB
// messages into the same queue for 20 s, against the fake broker served by `amqp1kit
// serve` in a process of its own and then against the real qpidd 1.39.0 (the
// deployment guide's configuration, through internal/testenv/realpeer and $AMQP1KIT_QPIDD) in
// a process of its own, in the same run. It prints, for each, the broker's resident
// set size (peak and at the end, sampled from /proc), what the sender sent and got
// accepted, how often and why its link was detached, and what the consumer took.
//
// The sender writes frames by hand (internal/frameclient), as many transfers as the
// broker grants credit for, without waiting for outcomes; a link the broker detaches
// (at a queue limit) is attached again at once, as a client that retries would.
//
//	go run ./brokermemory                        # from cmd/: build amqp1kit, probe both
//	go run ./brokermemory --amqp1kit /path/amqp1kit --duration 5s --no-real
//
// It is slow (about a minute with the defaults) and no test runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

type config struct {
	duration time.Duration
	size     int
	delay    time.Duration
	amqp1kit string
	real     bool
	sample   time.Duration
	address  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &config{}
	fs := flag.NewFlagSet("brokermemory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long the sender floods")
	fs.IntVar(&c.size, "size", 1024, "bytes of each message's body")
	fs.DurationVar(&c.delay, "delay", 10*time.Millisecond, "the slow consumer's time per message")
	fs.StringVar(&c.amqp1kit, "amqp1kit", "", "the amqp1kit binary that serves the fake broker (empty: go build it into a temporary directory)")
	noReal := fs.Bool("no-real", false, "probe the fake broker only")
	fs.DurationVar(&c.sample, "sample", 500*time.Millisecond, "RSS sampling interval")
	fs.StringVar(&c.address, "address", "unicast.reliability.memory", "the queue's address (the guide's unicast pattern makes it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.real = !*noReal
	if c.amqp1kit == "" {
		dir, err := os.MkdirTemp("", "brokermemory-")
		if err != nil {
			fmt.Fprintln(stderr, "brokermemory:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		c.amqp1kit = filepath.Join(dir, "amqp1kit")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.amqp1kit, "github.com/amqp1kit/amqp1kit/cmd/amqp1kit")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, "brokermemory: building amqp1kit (run from cmd/, or give --amqp1kit):", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "machine: %s; %d cores (GOMAXPROCS %d); %s\n", osRelease(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(stdout, "probe: one consumer accepting a message every %v, one sender flooding unsettled %d-byte bodies for %v, queue %s\n\n",
		c.delay, c.size, c.duration, c.address)
	code := 0
	targets := []string{"fakebroker"}
	if c.real {
		targets = append(targets, "qpidd")
	}
	for _, name := range targets {
		r, err := probe(ctx, c, name)
		if err != nil {
			fmt.Fprintf(stdout, "%s: error: %v\n", name, err)
			code = 1
			continue
		}
		r.print(stdout)
	}
	return code
}

// result is what one probe measured.
type result struct {
	name          string
	peakKiB       int
	endKiB        int
	series        []int
	every         time.Duration
	sent          int64
	accepted      int64
	consumed      int64
	detaches      int64
	firstDetach   string
	sentBytes     int64
	encodedLength int
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "%s:\n", r.name)
	fmt.Fprintf(w, "  RSS peak                    %.0f MiB\n", float64(r.peakKiB)/1024)
	fmt.Fprintf(w, "  RSS at the end              %.0f MiB\n", float64(r.endKiB)/1024)
	fmt.Fprintf(w, "  sent (unsettled)            %d messages of %d bytes encoded, %.0f MiB\n", r.sent, r.encodedLength, float64(r.sentBytes)/(1<<20))
	fmt.Fprintf(w, "  accepted                    %d\n", r.accepted)
	fmt.Fprintf(w, "  consumed                    %d\n", r.consumed)
	fmt.Fprintf(w, "  sender detached             %d times\n", r.detaches)
	if r.firstDetach != "" {
		fmt.Fprintf(w, "  first detach                %s\n", r.firstDetach)
	}
	var s []string
	step := max(1, len(r.series)/10)
	for i := 0; i < len(r.series); i += step {
		s = append(s, fmt.Sprintf("%.0fs %.0f", (time.Duration(i)*r.every).Seconds(), float64(r.series[i])/1024))
	}
	fmt.Fprintf(w, "  RSS over time (MiB)         %s\n\n", strings.Join(s, ", "))
}

// broker is one running broker in a process of its own.
type broker struct {
	addr string
	pid  int
	stop func()
}

func start(c *config, name string) (*broker, error) {
	if name == "qpidd" {
		p, err := realpeer.Start(realpeer.Qpidd, nil)
		if err != nil {
			return nil, err
		}
		return &broker{addr: p.Addr(), pid: p.Pid(), stop: func() { _ = p.Close() }}, nil
	}
	cmd := exec.Command(c.amqp1kit, "serve", "--no-router", "--broker-addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, url, ok := strings.Cut(sc.Text(), "amqp://"); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			stop := func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			}
			return &broker{addr: strings.TrimSpace(url), pid: cmd.Process.Pid, stop: stop}, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("%s serve printed no address", c.amqp1kit)
}

func probe(ctx context.Context, c *config, name string) (*result, error) {
	b, err := start(c, name)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	r := &result{name: name, every: c.sample}
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()

	// The slow consumer.
	conn, err := amqp.Dial(ctx, "amqp://"+b.addr, nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	rcv, err := sess.NewReceiver(ctx, c.address, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil { // Receive returns prefetched messages whatever ctx says
			m, err := rcv.Receive(ctx, nil)
			if err != nil {
				return
			}
			time.Sleep(c.delay)
			if rcv.AcceptMessage(context.Background(), m) == nil {
				atomic.AddInt64(&r.consumed, 1)
			}
		}
	}()

	// RSS sampling.
	samples := make(chan []int, 1)
	go func() {
		var s []int
		t := time.NewTicker(c.sample)
		defer t.Stop()
		for {
			if kib, err := rssKiB(b.pid); err == nil {
				s = append(s, kib)
			}
			select {
			case <-ctx.Done():
				samples <- s
				return
			case <-t.C:
			}
		}
	}()

	err = flood(ctx, c, b.addr, r)
	wg.Wait()
	r.series = <-samples
	for _, kib := range r.series {
		r.peakKiB = max(r.peakKiB, kib)
	}
	r.endKiB, _ = rssKiB(b.pid)
	r.peakKiB = max(r.peakKiB, r.endKiB)
	if err != nil && ctx.Err() == nil {
		return r, err
	}
	return r, nil
}

// flood sends unsettled messages to c.address as fast as credit allows until ctx ends,
// attaching again whenever the broker detaches the link; it counts what was sent and
// accepted and the detaches.
func flood(ctx context.Context, c *config, addr string, r *result) error {
	fc, err := frameclient.Dial(addr)
	if err != nil {
		return err
	}
	readerDone := make(chan struct{})
	defer func() {
		fc.Close()
		<-readerDone
	}()
	fc.Timeout = c.duration + 10*time.Second
	if _, err := fc.Open(&wire.Open{ContainerID: "brokermemory", MaxFrameSize: 65536, ChannelMax: 15}); err != nil {
		return err
	}
	if _, err := fc.Begin(0, &wire.Begin{IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, HandleMax: 1023}); err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = fc.NetConn().SetReadDeadline(time.Now()) }()
	payload, err := (&wire.Message{Data: [][]byte{make([]byte, c.size)}}).AppendTo(nil)
	if err != nil {
		return err
	}
	r.encodedLength = len(payload)

	// The reader keeps the credit of the current link (limit: the delivery-count up
	// to which the broker allows transfers) and says when the link is detached. The
	// broker's frames name the link by its own handle, learnt from its attach.
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		handle   uint32             // the current link's, ours
		peer     uint32 = 1<<32 - 1 // the broker's for it, once it answered the attach
		limit    uint32             // for the current handle
		sentOn   uint32             // transfers on the current handle
		detached bool
		readErr  error
	)
	go func() {
		defer close(readerDone)
		for {
			f, err := fc.Next()
			mu.Lock()
			if err != nil {
				readErr = err
				cond.Broadcast()
				mu.Unlock()
				return
			}
			switch b := f.Body.(type) {
			case *wire.Attach:
				if b.Name == fmt.Sprintf("flood-%d", handle) {
					peer = b.Handle
				}
			case *wire.Flow:
				if b.Handle != nil && *b.Handle == peer && b.LinkCredit != nil && b.DeliveryCount != nil {
					limit = *b.DeliveryCount + *b.LinkCredit
					cond.Broadcast()
				}
			case *wire.Disposition:
				if _, ok := b.State.(*wire.Accepted); ok {
					last := b.First
					if b.Last != nil {
						last = *b.Last
					}
					r.accepted += int64(last - b.First + 1)
				}
			case *wire.Detach:
				if b.Handle == peer {
					detached = true
					r.detaches++
					if r.firstDetach == "" && b.Error != nil {
						r.firstDetach = fmt.Sprintf("%s %q", b.Error.Condition, b.Error.Description)
					}
					cond.Broadcast()
				}
			}
			mu.Unlock()
		}
	}()

	var outID uint32
	format := uint32(0)
	attach := func(h uint32) error {
		zero := uint32(0)
		return fc.Write(0, &wire.Attach{Name: fmt.Sprintf("flood-%d", h), Handle: h, Role: wire.RoleSender,
			SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: c.address},
			InitialDeliveryCount: &zero})
	}
	if err := attach(0); err != nil {
		return err
	}
	for ctx.Err() == nil {
		mu.Lock()
		for !detached && readErr == nil && int32(limit-sentOn) <= 0 && ctx.Err() == nil {
			cond.Wait()
		}
		if readErr != nil {
			mu.Unlock()
			if ctx.Err() != nil {
				return nil
			}
			return readErr
		}
		if detached {
			// Answer the detach and attach again under the next handle.
			old := handle
			handle, peer, limit, sentOn, detached = (handle+1)%1024, 1<<32-1, 0, 0, false
			h := handle
			mu.Unlock()
			if err := fc.Write(0, &wire.Detach{Handle: old, Closed: true}); err != nil {
				return err
			}
			if err := attach(h); err != nil {
				return err
			}
			continue
		}
		h := handle
		sentOn++
		mu.Unlock()
		id := outID
		outID++
		if err := fc.WriteTransfer(0, &wire.Transfer{Handle: h, DeliveryID: &id, DeliveryTag: []byte(strconv.FormatUint(uint64(id), 10)),
			MessageFormat: &format}, payload); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.sent++
		r.sentBytes += int64(len(payload))
	}
	mu.Lock()
	cond.Broadcast()
	mu.Unlock()
	return nil
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return runtime.GOOS
}
