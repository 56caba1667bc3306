package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// A balanced address of the deployment guide, served by both routers.
const anycast = "openstack.org/om/rpc/anycast/reliability-"

var body1KiB = make([]byte, 1024)

// flooder is a go-amqp sender of 1 KiB messages, pre-settled or not.
type flooder struct {
	conn    *amqp.Conn
	sender  *amqp.Sender
	settled bool
	mu      sync.Mutex
	sent    int
	err     error // what ended the flood other than its context
}

func newFlooder(ctx context.Context, url, address string, settled bool) (*flooder, error) {
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return nil, err
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	// Mixed mode (what routers and brokers answer), each message settled or not.
	snd, err := sess.NewSender(ctx, address, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &flooder{conn: conn, sender: snd, settled: settled}, nil
}

// run sends until ctx is done or a send fails.
func (f *flooder) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := f.sender.Send(ctx, &amqp.Message{Data: [][]byte{body1KiB}}, &amqp.SendOptions{Settled: f.settled})
		f.mu.Lock()
		if err != nil {
			if ctx.Err() == nil && !floodOver(ctx, err) {
				f.err = err
			}
			f.mu.Unlock()
			return
		}
		f.sent++
		f.mu.Unlock()
	}
}

// floodOver reports whether err is the flood's own deadline, which go-amqp may report
// from a timer of its own a little before ctx's fires.
func floodOver(ctx context.Context, err error) bool {
	deadline, ok := ctx.Deadline()
	return ok && errors.Is(err, context.DeadlineExceeded) && time.Until(deadline) < time.Second
}

func (f *flooder) count() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent, f.err
}

// rssSampler records a process's RSS every interval until stopped.
type rssSampler struct {
	mu      sync.Mutex
	samples []int // KiB
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if kib, err := rssKiB(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, kib)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() []int {
	close(s.stop)
	<-s.done
	return s.samples
}

func mib(kib int) float64 { return float64(kib) / 1024 }

// series prints about six samples spread over the run, in MiB.
func series(samples []int, every time.Duration) string {
	if len(samples) == 0 {
		return ""
	}
	step := max(1, len(samples)/6)
	var parts []string
	for i := 0; i < len(samples); i += step {
		parts = append(parts, fmt.Sprintf("%gs: %.0f", (time.Duration(i)*every).Seconds(), mib(samples[i])))
	}
	if (len(samples)-1)%step != 0 {
		parts = append(parts, fmt.Sprintf("%gs: %.0f", (time.Duration(len(samples)-1)*every).Seconds(), mib(samples[len(samples)-1])))
	}
	return strings.Join(parts, ", ") + " MiB"
}

// probeStuck: a consumer grants credit and never reads its socket while a sender
// floods pre-settled messages.
func probeStuck(ctx context.Context, e *env, t *target, r *result) {
	address := anycast + "stuck"
	rss0, _ := t.rssKiB()

	nc, err := frameclient.Receivers(t.addr, []string{address})
	if err != nil {
		r.err = fmt.Errorf("stuck consumer: %w", err)
		return
	}
	defer nc.Close()
	fc := frameclient.New(nc)
	zero, credit, h := uint32(0), e.cfg.credit, uint32(0)
	if err := fc.Write(0, &wire.Flow{NextIncomingID: &zero, IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20,
		Handle: &h, DeliveryCount: &zero, LinkCredit: &credit}); err != nil {
		r.err = fmt.Errorf("stuck consumer: granting credit: %w", err)
		return
	}
	// Keep-alive frames (writes only) so that no idle timeout ends the connection.
	keepAlive := make(chan struct{})
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-keepAlive:
				return
			case <-tick.C:
				_ = fc.WriteEmpty()
			}
		}
	}()

	f, err := newFlooder(ctx, t.url(), address, true)
	if err != nil {
		close(keepAlive)
		r.err = fmt.Errorf("sender: %w", err)
		return
	}
	defer f.conn.Close()
	s := sampleRSS(t.pid, e.cfg.sample)
	fctx, cancel := context.WithTimeout(ctx, e.cfg.flood)
	progress := time.NewTicker(5 * time.Second)
	floodDone := make(chan struct{})
	go func() { f.run(fctx); close(floodDone) }()
wait:
	for {
		select {
		case <-floodDone:
			break wait
		case <-progress.C:
			n, _ := f.count()
			kib, _ := t.rssKiB()
			e.logf("  %s: %d sent, RSS %.0f MiB", t.name, n, mib(kib))
		}
	}
	progress.Stop()
	cancel()
	samples := s.finish()
	close(keepAlive)
	sent, ferr := f.count()

	// Now read the consumer's socket: what the router still has for it, then either
	// quiet (the connection was kept) or its end.
	kept, got := drainStuck(fc, e.cfg.quiet)
	peak := 0
	for _, k := range samples {
		peak = max(peak, k)
	}
	r.add(
		num("RSS before", mib(rss0), "MiB"),
		cmp(num("RSS peak during flood", mib(peak), "MiB")),
		cmp(num("RSS at end of flood", mib(samples[len(samples)-1]), "MiB")),
		cmp(num("RSS growth (peak − before)", mib(peak-rss0), "MiB")),
		txt("RSS over time", series(samples, e.cfg.sample)),
		num("messages sent (pre-settled)", float64(sent), ""),
		num("delivered to the consumer once it read", float64(got), ""),
		txt("consumer's connection", kept),
	)
	if ferr != nil {
		r.add(txt("sender", "ended: "+errString(ferr)))
	} else {
		r.add(txt("sender", "kept its link"))
	}
}

// drainStuck reads what the peer sends until it is quiet for quiet, and says whether
// the connection is still open then.
func drainStuck(fc *frameclient.Conn, quiet time.Duration) (string, int) {
	got := 0
	for {
		f, err := fc.NextBefore(time.Now().Add(quiet))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "kept", got
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return "dropped (socket closed without close frame)", got
			}
			return "dropped: " + err.Error(), got
		}
		switch b := f.Body.(type) {
		case *wire.Transfer:
			if !b.More {
				got++
			}
		case *wire.Close:
			return "dropped: close " + wireErr(b.Error), got
		case *wire.End:
			return "session ended: " + wireErr(b.Error), got
		case *wire.Detach:
			return "link detached: " + wireErr(b.Error), got
		}
	}
}

func wireErr(e *wire.Error) string {
	if e == nil {
		return "(no error)"
	}
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s (%s)", e.Condition, e.Description)
}

func errString(err error) string {
	var le *amqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return fmt.Sprintf("detached %s (%s)", le.RemoteErr.Condition, le.RemoteErr.Description)
	}
	var ce *amqp.ConnError
	if errors.As(err, &ce) && ce.RemoteErr != nil {
		return fmt.Sprintf("connection closed %s (%s)", ce.RemoteErr.Condition, ce.RemoteErr.Description)
	}
	return err.Error()
}

// probeLeave: the only consumer leaves mid pre-settled flood; is the sender detached?
func probeLeave(ctx context.Context, e *env, name string) *result {
	r := &result{}
	detached := 0
	var how []string
	var before, after int
	for run := 1; run <= e.cfg.leaveRuns && ctx.Err() == nil; run++ {
		d, sentBefore, sentAfter, end, err := leaveOnce(ctx, e, name, run)
		if err != nil {
			r.err = fmt.Errorf("run %d: %w", run, err)
			break
		}
		e.logf("  %s run %d: %d sent before the consumer left, %d after; sender: %s", name, run, sentBefore, sentAfter, end)
		if d {
			detached++
		}
		how = append(how, end)
		before += sentBefore
		after += sentAfter
	}
	runs := len(how)
	r.add(
		txt("runs where the sender was detached", fmt.Sprintf("%d of %d", detached, runs)),
		txt("sender's end, each run", strings.Join(how, "; ")),
	)
	if runs > 0 {
		r.add(num("sent before the consumer left (mean of runs)", float64(before)/float64(runs), ""),
			num("sent after it left (mean of runs)", float64(after)/float64(runs), ""))
	}
	return r
}

func leaveOnce(ctx context.Context, e *env, name string, run int) (detached bool, before, after int, end string, err error) {
	t, err := e.starter.start(name, "")
	if err != nil {
		return false, 0, 0, "", err
	}
	defer t.stop()
	address := fmt.Sprintf("%sleave-%d", anycast, run)
	rconn, err := amqp.Dial(ctx, t.url(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return false, 0, 0, "", err
	}
	defer rconn.Close()
	rsess, err := rconn.NewSession(ctx, nil)
	if err != nil {
		return false, 0, 0, "", err
	}
	rcv, err := rsess.NewReceiver(ctx, address, &amqp.ReceiverOptions{Credit: 250})
	if err != nil {
		return false, 0, 0, "", err
	}
	go func() {
		for {
			if _, err := rcv.Receive(ctx, nil); err != nil {
				return
			}
		}
	}()
	f, err := newFlooder(ctx, t.url(), address, true)
	if err != nil {
		return false, 0, 0, "", err
	}
	defer f.conn.Close()
	fctx, cancel := context.WithTimeout(ctx, e.cfg.leaveAt+e.cfg.leaveFor)
	defer cancel()
	done := make(chan struct{})
	go func() { f.run(fctx); close(done) }()
	select {
	case <-time.After(e.cfg.leaveAt):
	case <-done:
	}
	before, _ = f.count()
	_ = rconn.Close() // the consumer leaves: its connection closes
	<-done
	total, ferr := f.count()
	if ferr != nil {
		return true, before, total - before, errString(ferr), nil
	}
	return false, before, total - before, "kept its link", nil
}
