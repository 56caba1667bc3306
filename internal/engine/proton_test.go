package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Interop tests against Qpid Proton's Python binding (Debian python3-qpid-proton),
// an AMQP 1.0 implementation independent of ours and of go-amqp. Each test runs
// testdata/peers/proton_client.py as a subprocess against the engine serving the
// queuePolicy on a loopback port.

// protonRunTimeout bounds one client process; the script's own --timeout is shorter so
// that it reports what it was waiting for before it is killed.
const (
	protonRunTimeout    = 60 * time.Second
	protonClientTimeout = "30"
)

var (
	protonCheckOnce sync.Once
	protonPython    string
	protonScript    string
	protonMissing   string // why the peer cannot run, "" when it can
)

// requirePython skips the test when Debian's Python or its Proton binding is missing,
// and fails it instead under CI=true, where the peer must be installed.
func requirePython(t *testing.T) (python, script string) {
	t.Helper()
	protonCheckOnce.Do(func() {
		protonPython = os.Getenv("AMQP1KIT_PYTHON")
		if protonPython == "" {
			protonPython = "/usr/bin/python3"
		}
		s, err := filepath.Abs(filepath.Join("..", "..", "testdata", "peers", "proton_client.py"))
		if err != nil {
			protonMissing = err.Error()
			return
		}
		protonScript = s
		if _, err := os.Stat(protonScript); err != nil {
			protonMissing = fmt.Sprintf("the Proton client peer is missing: %v", err)
			return
		}
		if _, err := exec.LookPath(protonPython); err != nil {
			protonMissing = fmt.Sprintf("%s not found (install Debian's python3 or set AMQP1KIT_PYTHON): %v", protonPython, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, protonPython, "-c", "import proton").CombinedOutput()
		if err != nil {
			protonMissing = fmt.Sprintf("%s cannot import proton (apt-get install python3-qpid-proton): %v: %s",
				protonPython, err, bytes.TrimSpace(out))
		}
	})
	if protonMissing != "" {
		peers.Missing(t, "Qpid Proton peer not available: %s", protonMissing)
	}
	return protonPython, protonScript
}

// protonResult is the JSON object proton_client.py prints.
type protonResult struct {
	Sent          int            `json:"sent"`
	Outcomes      map[string]int `json:"outcomes"`
	OutcomeList   []string       `json:"outcome_list"`
	Received      int            `json:"received"`
	ReceivedSeq   []int          `json:"received_seq"`
	ReceivedSizes []int          `json:"received_sizes"`
	Peer          *struct {
		ContainerID string         `json:"container_id"`
		Properties  map[string]any `json:"properties"`
		SASLMech    *string        `json:"sasl_mech"`
	} `json:"peer"`
	Error *string `json:"error"`
}

// mech returns the SASL mechanism the client reports, "" for none.
func (r *protonResult) mech() string {
	if r.Peer == nil || r.Peer.SASLMech == nil {
		return ""
	}
	return *r.Peer.SASLMech
}

// protonRun is one finished client process.
type protonRun struct {
	args     []string
	exitCode int
	res      protonResult
	stdout   string
	stderr   string
	took     time.Duration
}

func (r *protonRun) String() string {
	return fmt.Sprintf("proton_client.py %s: exit %d after %v\nstdout: %s\nstderr: %s",
		strings.Join(r.args, " "), r.exitCode, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// protonProc is a client process that runs in the background.
type protonProc struct {
	run  protonRun
	cmd  *exec.Cmd
	out  bytes.Buffer
	err  bytes.Buffer
	t0   time.Time
	done chan struct{}
	werr error
}

// startProton starts proton_client.py with args (--url and --timeout are added).
func startProton(t *testing.T, url string, args ...string) *protonProc {
	t.Helper()
	python, script := requirePython(t)
	ctx, cancel := context.WithTimeout(context.Background(), protonRunTimeout)
	all := append([]string{"--url", url, "--timeout", protonClientTimeout}, args...)
	p := &protonProc{done: make(chan struct{})}
	p.run.args = all
	p.cmd = exec.CommandContext(ctx, python, append([]string{script}, all...)...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.err
	p.cmd.WaitDelay = 5 * time.Second
	p.t0 = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", python, err)
	}
	go func() {
		defer cancel()
		p.werr = p.cmd.Wait()
		close(p.done)
	}()
	// A test that fails early must not leave the process behind.
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// wait waits for the process and parses its output. A process that printed no JSON
// object (a crash, a kill at the deadline) fails the test.
func (p *protonProc) wait(t *testing.T) *protonRun {
	t.Helper()
	<-p.done
	r := &p.run
	r.took = time.Since(p.t0)
	r.stdout, r.stderr = p.out.String(), p.err.String()
	r.exitCode = 0
	var ee *exec.ExitError
	switch {
	case p.werr == nil:
	case errors.As(p.werr, &ee):
		r.exitCode = ee.ExitCode()
	default:
		t.Fatalf("%v\n%s", p.werr, r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r.res); err != nil {
		t.Fatalf("no JSON result (%v)\n%s", err, r)
	}
	t.Logf("proton_client.py %s: exit %d in %v", strings.Join(r.args[4:], " "), r.exitCode, r.took.Round(time.Millisecond))
	return r
}

// exited reports whether the process has ended.
func (p *protonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// runProton runs proton_client.py to its end.
func runProton(t *testing.T, url string, args ...string) *protonRun {
	t.Helper()
	return startProton(t, url, args...).wait(t)
}

// mustSucceed fails the test unless the client exited 0 without an error.
func (r *protonRun) mustSucceed(t *testing.T) *protonRun {
	t.Helper()
	if r.exitCode != 0 || r.res.Error != nil {
		t.Fatalf("Proton client failed\n%s", r)
	}
	return r
}

// mustFail fails the test unless the client exited 1 with an error, and returns the
// error text.
func (r *protonRun) mustFail(t *testing.T) string {
	t.Helper()
	if r.exitCode != 1 || r.res.Error == nil {
		t.Fatalf("Proton client should have failed\n%s", r)
	}
	return *r.res.Error
}

func protonSeqs(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// protonURLWithUser puts user:pass into an amqp://host:port URL.
func protonURLWithUser(url, user, pass string) string {
	return strings.Replace(url, "amqp://", "amqp://"+user+":"+pass+"@", 1)
}

// protonWaitUntil polls cond until it holds, failing the test after timeout or as soon as
// one of the processes ended (it would never make cond true).
func protonWaitUntil(t *testing.T, what string, cond func() bool, procs ...*protonProc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: client ended\n%s", what, p.wait(t))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// protonPolicyState copies what the policy recorded.
func protonPolicyState(p *queuePolicy) (opened int, users []string, outcomes []wire.DeliveryState, closed []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened, append([]string(nil), p.users...), append([]wire.DeliveryState(nil), p.outcomes...),
		append([]error(nil), p.closed...)
}

// protonRequireAccepted checks that the policy heard n settled outcomes, all accepted.
func protonRequireAccepted(t *testing.T, p *queuePolicy, n int) {
	t.Helper()
	_, _, outcomes, _ := protonPolicyState(p)
	require.Len(t, outcomes, n, "outcomes the policy heard for its deliveries")
	for i, o := range outcomes {
		require.IsType(t, &wire.Accepted{}, o, "outcome %d", i)
	}
}

// protonWaitClosed waits until the policy heard n connections close, and checks they closed
// in order (the client sent close, no error).
func protonWaitClosed(t *testing.T, p *queuePolicy, n int) {
	t.Helper()
	protonWaitUntil(t, fmt.Sprintf("%d connections closed", n), func() bool {
		_, _, _, closed := protonPolicyState(p)
		return len(closed) >= n
	})
	_, _, _, closed := protonPolicyState(p)
	require.Len(t, closed, n)
	for i, err := range closed {
		require.NoError(t, err, "connection %d did not close in order", i)
	}
}

func TestProtonAnonymousSendThenReceive(t *testing.T) {
	requirePython(t)
	t.Parallel()
	p := newQueuePolicy()
	_, url := startServer(t, p, nil)

	snd := runProton(t, url, "--sasl-mechs", "ANONYMOUS", "--send", "pq", "--count", "20", "--size", "1024").mustSucceed(t)
	require.Equal(t, 20, snd.res.Sent)
	require.Equal(t, map[string]int{"accepted": 20}, snd.res.Outcomes)
	require.NotNil(t, snd.res.Peer)
	require.Equal(t, "amqp1kit", snd.res.Peer.ContainerID)
	require.Equal(t, "ANONYMOUS", snd.res.mech())
	require.Equal(t, 20, p.depth("pq"), "the policy stores what the sender's outcomes say it accepted")

	rcv := runProton(t, url, "--sasl-mechs", "ANONYMOUS", "--receive", "pq", "--count", "20", "--size", "1024").mustSucceed(t)
	require.Equal(t, 20, rcv.res.Received)
	require.Equal(t, protonSeqs(20), rcv.res.ReceivedSeq, "FIFO order")
	for i, n := range rcv.res.ReceivedSizes {
		require.Equal(t, 1024, n, "size of message %d", i)
	}

	// The client's close follows its dispositions, so by the time the policy hears the
	// close it has heard every outcome.
	protonWaitClosed(t, p, 2)
	require.Zero(t, p.depth("pq"))
	protonRequireAccepted(t, p, 20)
	opened, users, _, _ := protonPolicyState(p)
	require.Equal(t, 2, opened)
	require.Equal(t, []string{"anonymous", "anonymous"}, users)
	p.mu.Lock()
	require.Empty(t, p.consumers["pq"], "the receiver's link is gone")
	p.mu.Unlock()
}

func TestProtonSendAndReceiveOneConnection(t *testing.T) {
	requirePython(t)
	t.Parallel()
	p := newQueuePolicy()
	_, url := startServer(t, p, nil)
	// Default mechanisms: Proton picks ANONYMOUS, the only one offered.
	r := runProton(t, url, "--send", "pq", "--receive", "pq", "--count", "20", "--size", "1024").mustSucceed(t)
	require.Equal(t, map[string]int{"accepted": 20}, r.res.Outcomes)
	require.Equal(t, protonSeqs(20), r.res.ReceivedSeq)
	require.Equal(t, "ANONYMOUS", r.res.mech())
	protonWaitClosed(t, p, 1)
	require.Zero(t, p.depth("pq"))
	protonRequireAccepted(t, p, 20)
}

func TestProtonSASLPlain(t *testing.T) {
	requirePython(t)
	t.Parallel()
	p := newQueuePolicy()
	s, url := startServer(t, p, &Options{Users: map[string]string{"joe": "secret"}, DenyAnonymous: true})
	good := protonURLWithUser(url, "joe", "secret")

	// A good connection that stays open, waiting for messages, while bad ones fail.
	rcv := startProton(t, good, "--sasl-mechs", "PLAIN", "--allow-insecure", "--receive", "pp", "--count", "10", "--size", "100")
	protonWaitUntil(t, "the receiver's link with credit", func() bool {
		for _, c := range s.Conns() {
			for _, l := range c.Links() {
				if l.Address() == "pp" && l.Role() == wire.RoleSender && l.Credit() == 10 {
					return true
				}
			}
		}
		return false
	}, rcv)

	// Concurrent refusals: wrong password, unknown user, ANONYMOUS, no SASL at all.
	bad := []struct {
		name string
		url  string
		args []string
		want []string // any of these, lower case, in the error
	}{
		{"wrong password", protonURLWithUser(url, "joe", "wrong"), []string{"--sasl-mechs", "PLAIN", "--allow-insecure"},
			[]string{"auth", "unauthorized"}},
		{"unknown user", protonURLWithUser(url, "bob", "secret"), []string{"--sasl-mechs", "PLAIN", "--allow-insecure"},
			[]string{"auth", "unauthorized"}},
		{"anonymous", url, []string{"--sasl-mechs", "ANONYMOUS"},
			[]string{"auth", "unauthorized", "mech"}},
		{"no SASL", url, []string{"--no-sasl"},
			[]string{"header", "framing", "sasl"}},
	}
	procs := make([]*protonProc, len(bad))
	for i, b := range bad {
		procs[i] = startProton(t, b.url, append(b.args, "--send", "pp", "--count", "1")...)
	}
	for i, b := range bad {
		r := procs[i].wait(t)
		msg := r.mustFail(t)
		t.Logf("%s refused: %s", b.name, msg)
		found := false
		for _, w := range b.want {
			found = found || strings.Contains(strings.ToLower(msg), w)
		}
		require.True(t, found, "%s: error %q mentions none of %q\n%s", b.name, msg, b.want, r)
		require.Zero(t, r.res.Sent, "%s: nothing may be sent", b.name)
	}

	// The good receiver is undisturbed: a good sender reaches it.
	snd := runProton(t, good, "--sasl-mechs", "PLAIN", "--allow-insecure", "--send", "pp", "--count", "10", "--size", "100").mustSucceed(t)
	require.Equal(t, map[string]int{"accepted": 10}, snd.res.Outcomes)
	require.Equal(t, "PLAIN", snd.res.mech())
	got := rcv.wait(t).mustSucceed(t)
	require.Equal(t, protonSeqs(10), got.res.ReceivedSeq)

	protonWaitClosed(t, p, 2)
	opened, users, _, _ := protonPolicyState(p)
	require.Equal(t, 2, opened, "refused clients never reach Opened")
	require.Equal(t, []string{"joe", "joe"}, users)
	protonRequireAccepted(t, p, 10)
	require.Zero(t, p.depth("pp"))
}

// protonFrameStats counts one connection's transfer frames, as Options.Trace saw them.
type protonFrameStats struct {
	peerMaxFrame          uint32 // from the client's open
	inFrames, inMore      int
	outFrames, outMore    int
	inTooBig, outTooBig   int // frames larger than the receiving side's max-frame-size
	largestIn, largestOut int // largest transfer payload
}

// protonFrameRecorder is an Options.Trace that keeps protonFrameStats per connection.
type protonFrameRecorder struct {
	maxFrame uint32 // the server's
	mu       sync.Mutex
	byConn   map[uint64]*protonFrameStats
}

func (r *protonFrameRecorder) trace(ev TraceEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.byConn[ev.Conn.ID()]
	if st == nil {
		st = &protonFrameStats{}
		r.byConn[ev.Conn.ID()] = st
	}
	switch b := ev.Body.(type) {
	case *wire.Open:
		if ev.Incoming {
			st.peerMaxFrame = b.MaxFrameSize
		}
	case *wire.Transfer:
		// A transfer's frame is at least its payload plus the 8-byte header.
		size := ev.PayloadSize + wire.FrameHeaderSize
		if ev.Incoming {
			st.inFrames++
			if b.More {
				st.inMore++
			}
			st.largestIn = max(st.largestIn, ev.PayloadSize)
			if uint32(size) > r.maxFrame {
				st.inTooBig++
			}
		} else {
			st.outFrames++
			if b.More {
				st.outMore++
			}
			st.largestOut = max(st.largestOut, ev.PayloadSize)
			if st.peerMaxFrame > 0 && uint32(size) > st.peerMaxFrame {
				st.outTooBig++
			}
		}
	}
}

// last returns the stats of the connection with the highest id.
func (r *protonFrameRecorder) last() protonFrameStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var id uint64
	for k := range r.byConn {
		id = max(id, k)
	}
	return *r.byConn[id]
}

// protonRequireStored decodes the messages the policy stored for addr and checks
// each against what proton_client.py sends: seq i in the application properties and a
// body of size bytes, all i%256.
func protonRequireStored(t *testing.T, p *queuePolicy, addr string, n, size int) {
	t.Helper()
	p.mu.Lock()
	q := append([]queued(nil), p.queues[addr]...)
	p.mu.Unlock()
	require.Len(t, q, n, "messages stored at %q", addr)
	for i, st := range q {
		var m wire.Message
		require.NoError(t, m.Unmarshal(st.payload), "stored message %d", i)
		require.Equal(t, fmt.Sprint(i), fmt.Sprint(m.ApplicationProperties["seq"]), "seq of stored message %d", i)
		body := bytes.Join(m.Data, nil)
		require.Len(t, body, size, "body of stored message %d", i)
		require.True(t, bytes.Equal(bytes.Repeat([]byte{byte(i)}, size), body), "body of stored message %d changed", i)
	}
}

// Proton splits 1 MiB messages into frames of the server's 4 KiB max-frame-size; the
// engine reassembles them. Then the engine splits a message for a Proton receiver that
// announces 1 KiB frames.
func TestProtonLargeMultiFrame(t *testing.T) {
	requirePython(t)
	t.Parallel()
	const (
		maxFrame = 4096
		size     = 1 << 20
		// Small enough that the engine's output buffer stays under 1 MiB: see
		// TestProtonLargeToProtonOneMiB.
		outSize = 512 << 10
	)
	rec := &protonFrameRecorder{maxFrame: maxFrame, byConn: map[uint64]*protonFrameStats{}}
	p := newQueuePolicy()
	_, url := startServer(t, p, &Options{MaxFrameSize: maxFrame, Trace: rec.trace})

	snd := runProton(t, url, "--send", "big", "--count", "2", "--size", fmt.Sprint(size)).mustSucceed(t)
	require.Equal(t, map[string]int{"accepted": 2}, snd.res.Outcomes)
	st := rec.last()
	t.Logf("from Proton: %d transfer frames, %d with more, largest payload %d bytes", st.inFrames, st.inMore, st.largestIn)
	require.GreaterOrEqual(t, st.inFrames, 2*size/maxFrame, "transfer frames from Proton")
	require.Equal(t, st.inFrames-2, st.inMore, "all but the last frame of each delivery say more")
	require.Zero(t, st.inTooBig, "frames over the server's max-frame-size")
	protonRequireStored(t, p, "big", 2, size)

	snd = runProton(t, url, "--send", "out", "--count", "1", "--size", fmt.Sprint(outSize)).mustSucceed(t)
	require.Equal(t, map[string]int{"accepted": 1}, snd.res.Outcomes)
	rcv := runProton(t, url, "--receive", "out", "--count", "1", "--size", fmt.Sprint(outSize),
		"--max-frame-size", "1024").mustSucceed(t)
	require.Equal(t, []int{0}, rcv.res.ReceivedSeq)
	st = rec.last()
	t.Logf("to Proton (max-frame-size %d): %d transfer frames, %d with more, largest payload %d bytes",
		st.peerMaxFrame, st.outFrames, st.outMore, st.largestOut)
	require.Equal(t, uint32(1024), st.peerMaxFrame)
	require.GreaterOrEqual(t, st.outFrames, outSize/1024, "the engine must split the message into 1 KiB frames")
	require.Equal(t, st.outFrames-1, st.outMore)
	require.Zero(t, st.outTooBig, "frames over Proton's max-frame-size")

	protonWaitClosed(t, p, 3)
	protonRequireAccepted(t, p, 1)
	require.Zero(t, p.depth("out"))
}

// 1 MiB messages from the engine to Proton: split into 1 KiB frames, and whole to a
// Proton announcing its default (unlimited) max-frame-size.
func TestProtonLargeToProtonOneMiB(t *testing.T) {
	requirePython(t)
	t.Parallel()
	const size = 1 << 20
	rec := &protonFrameRecorder{maxFrame: 4096, byConn: map[uint64]*protonFrameStats{}}
	p := newQueuePolicy()
	_, url := startServer(t, p, &Options{MaxFrameSize: 4096, Trace: rec.trace})
	runProton(t, url, "--send", "big", "--count", "2", "--size", fmt.Sprint(size)).mustSucceed(t)

	rcv := runProton(t, url, "--receive", "big", "--count", "1", "--size", fmt.Sprint(size),
		"--max-frame-size", "1024").mustSucceed(t)
	require.Equal(t, []int{0}, rcv.res.ReceivedSeq)
	st := rec.last()
	t.Logf("to Proton (max-frame-size %d): %d transfer frames, %d with more, largest payload %d bytes",
		st.peerMaxFrame, st.outFrames, st.outMore, st.largestOut)
	require.GreaterOrEqual(t, st.outFrames, size/1024, "the engine must split a 1 MiB message into 1 KiB frames")
	require.Equal(t, st.outFrames-1, st.outMore)
	require.Zero(t, st.outTooBig, "frames over Proton's max-frame-size")

	rcv = runProton(t, url, "--receive", "big", "--count", "1", "--size", fmt.Sprint(size)).mustSucceed(t)
	require.Equal(t, []int{1}, rcv.res.ReceivedSeq)
	st = rec.last()
	t.Logf("to Proton (max-frame-size %d): %d transfer frames, largest payload %d bytes", st.peerMaxFrame, st.outFrames, st.largestOut)
	require.Zero(t, st.outTooBig)

	protonWaitClosed(t, p, 3)
	protonRequireAccepted(t, p, 2)
	require.Zero(t, p.depth("big"))
}

func TestProtonPresettled(t *testing.T) {
	requirePython(t)
	t.Parallel()
	var settledIn, unsettledIn atomic.Int64
	var attachMode atomic.Value
	p := newQueuePolicy()
	_, url := startServer(t, p, &Options{Trace: func(ev TraceEvent) {
		if !ev.Incoming {
			return
		}
		switch b := ev.Body.(type) {
		case *wire.Attach:
			if b.Role == wire.RoleSender {
				attachMode.Store(b.SndSettleMode)
			}
		case *wire.Transfer:
			if b.Settled {
				settledIn.Add(1)
			} else {
				unsettledIn.Add(1)
			}
		}
	}})

	r := runProton(t, url, "--send", "ps", "--count", "20", "--size", "64", "--presettled").mustSucceed(t)
	require.Equal(t, map[string]int{"presettled": 20}, r.res.Outcomes)
	require.Equal(t, wire.SenderSettleModeSettled, attachMode.Load(), "Proton's at-most-once sender attaches with snd-settle-mode settled")
	require.Equal(t, int64(20), settledIn.Load())
	require.Zero(t, unsettledIn.Load())
	// The client closed after its last transfer, and the engine reads in order: every
	// message reached the policy before the connection ended.
	protonWaitClosed(t, p, 1)
	require.Equal(t, 20, p.depth("ps"))

	rcv := runProton(t, url, "--receive", "ps", "--count", "20", "--size", "64").mustSucceed(t)
	require.Equal(t, protonSeqs(20), rcv.res.ReceivedSeq)
	protonWaitClosed(t, p, 2)
	protonRequireAccepted(t, p, 20)
	require.Zero(t, p.depth("ps"))
}

func TestProtonNoSASL(t *testing.T) {
	requirePython(t)
	t.Parallel()

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		var saslFrames atomic.Int64
		p := newQueuePolicy()
		_, url := startServer(t, p, &Options{Trace: func(ev TraceEvent) {
			if _, ok := ev.Body.(wire.SASLFrame); ok {
				saslFrames.Add(1)
			}
		}})
		r := runProton(t, url, "--no-sasl", "--send", "ns", "--receive", "ns", "--count", "5").mustSucceed(t)
		require.Equal(t, map[string]int{"accepted": 5}, r.res.Outcomes)
		require.Equal(t, protonSeqs(5), r.res.ReceivedSeq)
		require.Zero(t, saslFrames.Load(), "no SASL exchange took place")
		protonWaitClosed(t, p, 1)
		_, users, _, _ := protonPolicyState(p)
		require.Equal(t, []string{""}, users, "a client that skipped SASL has no user")
		protonRequireAccepted(t, p, 5)
	})

	t.Run("refused with DenyAnonymous", func(t *testing.T) {
		t.Parallel()
		p := newQueuePolicy()
		_, url := startServer(t, p, &Options{Users: map[string]string{"joe": "secret"}, DenyAnonymous: true})
		msg := runProton(t, url, "--no-sasl", "--send", "ns", "--count", "1").mustFail(t)
		t.Logf("refused: %s", msg)
		opened, _, _, _ := protonPolicyState(p)
		require.Zero(t, opened)
		// The listener still serves authenticated clients.
		runProton(t, protonURLWithUser(url, "joe", "secret"), "--sasl-mechs", "PLAIN", "--allow-insecure",
			"--send", "ns", "--count", "1").mustSucceed(t)
	})
}
