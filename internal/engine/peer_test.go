package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// testPeer is the engine tests' frame-level AMQP 1.0 client, in the manner of
// x/net/http2's testConnFramer: the project's frame client (internal/frameclient)
// with the test's t, so that a step that fails fails the test and a test reads like
// a transcript of the connection. It writes protocol headers and frames built with
// internal/wire (or any bytes at all, legal or not) and reads the server's frames
// back.
//
// Every read is bounded by wait, so a server that says nothing fails the test
// instead of hanging it. Empty frames (keep-alives) are skipped unless keepEmpty is
// set.
type testPeer struct {
	t         testing.TB
	fc        *frameclient.Conn
	nc        net.Conn
	wait      time.Duration
	keepEmpty bool
	// chans maps the peer's channel to the server's channel of each session.
	chans map[uint16]uint16
}

// frame is one frame read from the server.
type frame = frameclient.Frame

func newTestPeer(t testing.TB, nc net.Conn) *testPeer {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	const wait = 5 * time.Second
	fc := frameclient.New(nc)
	fc.Timeout = wait
	return &testPeer{t: t, fc: fc, nc: nc, wait: wait, chans: map[uint16]uint16{}}
}

// dialPeer connects a test peer to addr ("host:port" or "amqp://host:port").
func dialPeer(t testing.TB, addr string) *testPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "amqp://"), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newTestPeer(t, nc)
}

// pipePeer serves one end of a net.Pipe with s and returns a peer on the other.
func pipePeer(t testing.TB, s *Server) *testPeer {
	t.Helper()
	client, server := net.Pipe()
	s.ServeConn(server)
	return newTestPeer(t, client)
}

// --- writing -------------------------------------------------------------------

// write sends raw bytes and fails the test if they cannot be written.
func (p *testPeer) write(b []byte) {
	p.t.Helper()
	if err := p.tryWrite(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// tryWrite sends raw bytes, for illegal input after which the server may already
// have closed the socket.
func (p *testPeer) tryWrite(b []byte) error { return p.fc.WriteRaw(b) }

func (p *testPeer) writeHeader(id byte) {
	p.t.Helper()
	if err := p.fc.WriteHeader(id); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// encodeFrame builds a frame; body nil makes an empty frame.
func encodeFrame(t testing.TB, typ byte, ch uint16, body wire.Marshaler, payload []byte) []byte {
	t.Helper()
	b, err := wire.AppendFrame(nil, typ, ch, body, payload)
	if err != nil {
		t.Fatalf("encoding %T: %v", body, err)
	}
	return b
}

func (p *testPeer) writeFrame(ch uint16, body wire.Marshaler) {
	p.t.Helper()
	if err := p.fc.Write(ch, body); err != nil {
		p.t.Fatalf("writing %T: %v", body, err)
	}
}

func (p *testPeer) writeTransfer(ch uint16, tr *wire.Transfer, payload []byte) {
	p.t.Helper()
	if err := p.fc.WriteTransfer(ch, tr, payload); err != nil {
		p.t.Fatalf("writing a transfer: %v", err)
	}
}

func (p *testPeer) writeSASL(body wire.Marshaler) {
	p.t.Helper()
	if err := p.fc.WriteSASL(body); err != nil {
		p.t.Fatalf("writing %T: %v", body, err)
	}
}

func (p *testPeer) writeEmpty() {
	p.t.Helper()
	if err := p.fc.WriteEmpty(); err != nil {
		p.t.Fatalf("writing an empty frame: %v", err)
	}
}

// --- reading -------------------------------------------------------------------

// wantHeader reads the server's protocol header and checks its protocol id.
func (p *testPeer) wantHeader(id byte) {
	p.t.Helper()
	got, err := p.fc.ReadHeader()
	if err != nil {
		p.t.Fatalf("reading the server's protocol header: %v", err)
	}
	if want := (wire.ProtocolHeader{ID: id, Major: 1}); got != want {
		p.t.Fatalf("server sent protocol header %v, want %v", got, want)
	}
}

// readFrameAny reads one frame, empty ones included; the first byte must arrive
// before first.
func (p *testPeer) readFrameAny(first time.Time) (frame, error) { return p.fc.NextBefore(first) }

// next returns the next frame, skipping keep-alives unless keepEmpty is set.
func (p *testPeer) next() frame {
	p.t.Helper()
	for {
		f, err := p.readFrameAny(time.Now().Add(p.wait))
		if err != nil {
			p.t.Fatalf("reading a frame: %v", err)
		}
		if f.Body == nil && !p.keepEmpty {
			continue
		}
		return f
	}
}

// readFrame reads the next frame and requires its body to be a T.
func readFrame[T any](p *testPeer) (T, frame) {
	p.t.Helper()
	f := p.next()
	v, ok := f.Body.(T)
	if !ok {
		var want T
		p.t.Fatalf("got %v, want %T", f, want)
	}
	return v, f
}

func (p *testPeer) wantOpen() *wire.Open {
	p.t.Helper()
	o, _ := readFrame[*wire.Open](p)
	return o
}

func checkCond(t testing.TB, what string, got *wire.Error, want wire.ErrCond) {
	t.Helper()
	switch {
	case want == "" && got != nil:
		t.Fatalf("%s carries error %v, want none", what, got)
	case want != "" && got == nil:
		t.Fatalf("%s carries no error, want %s", what, want)
	case want != "" && got.Condition != want:
		t.Fatalf("%s carries %s (%s), want %s", what, got.Condition, got.Description, want)
	}
}

// wantClose reads a close frame with condition cond ("" for none).
func (p *testPeer) wantClose(cond wire.ErrCond) *wire.Close {
	p.t.Helper()
	c, _ := readFrame[*wire.Close](p)
	checkCond(p.t, "close", c.Error, cond)
	return c
}

// wantEnd reads an end frame with condition cond ("" for none).
func (p *testPeer) wantEnd(cond wire.ErrCond) *wire.End {
	p.t.Helper()
	e, _ := readFrame[*wire.End](p)
	checkCond(p.t, "end", e.Error, cond)
	return e
}

// wantDetach reads a detach frame with condition cond ("" for none).
func (p *testPeer) wantDetach(cond wire.ErrCond) *wire.Detach {
	p.t.Helper()
	d, _ := readFrame[*wire.Detach](p)
	checkCond(p.t, "detach", d.Error, cond)
	return d
}

// wantSASLOutcome reads a sasl-outcome with the given code.
func (p *testPeer) wantSASLOutcome(code wire.SASLCode) {
	p.t.Helper()
	o, _ := readFrame[*wire.SASLOutcome](p)
	if o.Code != code {
		p.t.Fatalf("sasl-outcome code %v, want %v", o.Code, code)
	}
}

// wantClosedSocket requires the server to close the socket without sending another
// frame (keep-alives aside).
func (p *testPeer) wantClosedSocket() {
	p.t.Helper()
	deadline := time.Now().Add(p.wait)
	for {
		f, err := p.readFrameAny(deadline)
		if err == nil {
			if f.Body == nil {
				continue
			}
			p.t.Fatalf("got %v, want the socket closed", f)
		}
		if isClosedErr(err) {
			return
		}
		p.t.Fatalf("waiting for the server to close the socket: %v", err)
	}
}

func isClosedErr(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
}

// wantIdle requires the server to send nothing but keep-alives for d.
func (p *testPeer) wantIdle(d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, err := p.readFrameAny(deadline)
		if err == nil {
			if f.Body == nil && !p.keepEmpty {
				continue
			}
			p.t.Fatalf("got %v, want silence for %v", f, d)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		p.t.Fatalf("waiting for silence: %v", err)
	}
}

// --- scripted steps -------------------------------------------------------------

// peerOpen is the open a well-behaved peer sends.
func peerOpen() *wire.Open {
	return &wire.Open{ContainerID: "test-peer", MaxFrameSize: math.MaxUint32, ChannelMax: 65535}
}

// open exchanges plain AMQP headers and open frames and returns the server's open.
func (p *testPeer) open() *wire.Open {
	p.t.Helper()
	return p.openWith(peerOpen())
}

func (p *testPeer) openWith(o *wire.Open) *wire.Open {
	p.t.Helper()
	p.writeHeader(wire.ProtoAMQP)
	p.wantHeader(wire.ProtoAMQP)
	p.writeFrame(0, o)
	return p.wantOpen()
}

// saslInit runs the SASL layer up to the outcome, which is returned unread.
func (p *testPeer) saslInit(mech wire.Symbol, resp []byte) *wire.SASLMechanisms {
	p.t.Helper()
	p.writeHeader(wire.ProtoSASL)
	p.wantHeader(wire.ProtoSASL)
	m, _ := readFrame[*wire.SASLMechanisms](p)
	p.writeSASL(&wire.SASLInit{Mechanism: mech, InitialResponse: resp})
	return m
}

// begin begins a session on channel ch with a large incoming window.
func (p *testPeer) begin(ch uint16) *wire.Begin {
	p.t.Helper()
	return p.beginWith(ch, &wire.Begin{IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, HandleMax: math.MaxUint32})
}

func (p *testPeer) beginWith(ch uint16, b *wire.Begin) *wire.Begin {
	p.t.Helper()
	p.writeFrame(ch, b)
	got, f := readFrame[*wire.Begin](p)
	if got.RemoteChannel == nil || *got.RemoteChannel != ch {
		p.t.Fatalf("begin answer has remote-channel %v, want %d", got.RemoteChannel, ch)
	}
	p.chans[ch] = f.Channel
	return got
}

// attach sends an attach and reads the server's attach.
func (p *testPeer) attach(ch uint16, a *wire.Attach) *wire.Attach {
	p.t.Helper()
	p.writeFrame(ch, a)
	got, f := readFrame[*wire.Attach](p)
	if got.Name != a.Name {
		p.t.Fatalf("attach answer for link %q, want %q", got.Name, a.Name)
	}
	if sc, ok := p.chans[ch]; ok && f.Channel != sc {
		p.t.Fatalf("attach answer on channel %d, want %d", f.Channel, sc)
	}
	return got
}

// senderAttach is the attach of a peer that sends to addr.
func senderAttach(name string, handle uint32, addr string) *wire.Attach {
	zero := uint32(0)
	return &wire.Attach{
		Name: name, Handle: handle, Role: wire.RoleSender,
		SndSettleMode: wire.SenderSettleModeMixed, RcvSettleMode: wire.ReceiverSettleModeFirst,
		Source: &wire.Source{}, Target: &wire.Target{Address: addr}, InitialDeliveryCount: &zero,
	}
}

// receiverAttach is the attach of a peer that receives from addr.
func receiverAttach(name string, handle uint32, addr string) *wire.Attach {
	return &wire.Attach{
		Name: name, Handle: handle, Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, RcvSettleMode: wire.ReceiverSettleModeFirst,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{},
	}
}

// linkFlow builds a flow granting credit on handle from delivery-count dc.
func linkFlow(handle, dc, credit uint32) *wire.Flow {
	next := uint32(0)
	return &wire.Flow{
		NextIncomingID: &next, IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20,
		Handle: &handle, DeliveryCount: &dc, LinkCredit: &credit,
	}
}

// message encodes a message with one data section.
func message(t testing.TB, data []byte) []byte {
	t.Helper()
	b, err := (&wire.Message{Data: [][]byte{data}}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(v uint32) *uint32 { return &v }

// delivery is a message the peer received, reassembled from its transfers.
type delivery struct {
	ID      uint32
	Tag     []byte
	Settled bool
	Payload []byte
	Frames  []frame
}

// receive reads n whole deliveries (frames other than transfers fail the test).
func (p *testPeer) receive(n int) []delivery {
	p.t.Helper()
	var out []delivery
	var cur *delivery
	for len(out) < n {
		tr, f := readFrame[*wire.Transfer](p)
		if cur == nil {
			if tr.DeliveryID == nil {
				p.t.Fatalf("first transfer of a delivery without delivery-id: %v", f)
			}
			cur = &delivery{ID: *tr.DeliveryID, Tag: tr.DeliveryTag}
		}
		cur.Settled = cur.Settled || tr.Settled
		cur.Payload = append(cur.Payload, f.Payload...)
		cur.Frames = append(cur.Frames, f)
		if !tr.More {
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// echo asks the server for its session flow state on channel ch and returns it: a
// way to check that nothing else is in the pipe before it.
func (p *testPeer) echo(ch uint16) *wire.Flow {
	p.t.Helper()
	next := uint32(0)
	p.writeFrame(ch, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, Echo: true})
	f, fr := readFrame[*wire.Flow](p)
	if f.Handle != nil {
		p.t.Fatalf("got %v, want the session's echo", fr)
	}
	return f
}

// --- logs -----------------------------------------------------------------------

// logSink collects a server's log lines for assertions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func newLogSink() (*logSink, *slog.Logger) {
	s := &logSink{}
	return s, slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// want waits (bounded) until a log line contains every one of parts.
func (s *logSink) want(t testing.TB, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(s.String(), "\n") {
			ok := true
			for _, part := range parts {
				if !strings.Contains(line, part) {
					ok = false
					break
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line contains all of %q; the log:\n%s", parts, s.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- a well-behaved client beside the misbehaving one -----------------------------

// bystander is a go-amqp client connected to the same server as a misbehaving peer.
// It is connected before the bad input and must go on working after it, and a new
// client must be able to connect too: no other connection notices a bad one.
type bystander struct {
	t    testing.TB
	url  string
	opts *amqp.ConnOptions
	conn *amqp.Conn
	snd  *amqp.Sender
	rcv  *amqp.Receiver
	n    int
}

var bystanderSeq struct {
	sync.Mutex
	n int
}

func newBystander(t testing.TB, url string, opts *amqp.ConnOptions) *bystander {
	t.Helper()
	b := &bystander{t: t, url: url, opts: opts}
	var err error
	b.conn, b.snd, b.rcv, err = bystanderLinks(url, opts)
	if err != nil {
		t.Fatalf("bystander: %v", err)
	}
	t.Cleanup(func() { b.conn.Close() })
	return b
}

func bystanderLinks(url string, opts *amqp.ConnOptions) (*amqp.Conn, *amqp.Sender, *amqp.Receiver, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bystanderSeq.Lock()
	bystanderSeq.n++
	addr := fmt.Sprintf("bystander-%d", bystanderSeq.n)
	bystanderSeq.Unlock()
	conn, err := amqp.Dial(ctx, url, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	sess, err := conn.NewSession(ctx, nil)
	if err == nil {
		var snd *amqp.Sender
		var rcv *amqp.Receiver
		if snd, err = sess.NewSender(ctx, addr, nil); err == nil {
			if rcv, err = sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10}); err == nil {
				return conn, snd, rcv, nil
			}
		}
	}
	conn.Close()
	return nil, nil, nil, err
}

// roundTrip sends one message through the server and receives it back.
func bystanderRoundTrip(snd *amqp.Sender, rcv *amqp.Receiver, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := fmt.Appendf(nil, "bystander message %d", i)
	if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if !bytes.Equal(m.GetData(), body) {
		return fmt.Errorf("received %q, want %q", m.GetData(), body)
	}
	return rcv.AcceptMessage(ctx, m)
}

func (b *bystander) roundTrip() error {
	b.n++
	return bystanderRoundTrip(b.snd, b.rcv, b.n)
}

// check requires the bystander's connection to work and a new one to work too.
func (b *bystander) check() {
	b.t.Helper()
	if err := b.roundTrip(); err != nil {
		b.t.Fatalf("the bystander connection was disturbed: %v", err)
	}
	conn, snd, rcv, err := bystanderLinks(b.url, b.opts)
	if err != nil {
		b.t.Fatalf("a new client cannot connect: %v", err)
	}
	defer conn.Close()
	if err := bystanderRoundTrip(snd, rcv, 0); err != nil {
		b.t.Fatalf("a new client does not work: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// serverConn returns the server's newest connection.
func newestConn(t testing.TB, s *Server) *Conn {
	t.Helper()
	var c *Conn
	for _, x := range s.Conns() {
		if c == nil || x.ID() > c.ID() {
			c = x
		}
	}
	if c == nil {
		t.Fatal("the server has no connection")
	}
	return c
}
