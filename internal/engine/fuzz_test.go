package engine

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// fuzzPolicy gives every connection its own queuePolicy (in Conn.Context), so that
// one fuzz input never sees the state another left behind and a failure replays.
type fuzzPolicy struct{}

var fuzzMessage = func() []byte {
	b, err := (&wire.Message{Properties: &wire.Properties{To: "q"}, Data: [][]byte{[]byte("queued")}}).AppendTo(nil)
	if err != nil {
		panic(err)
	}
	return b
}()

func fuzzQueue(c *Conn) *queuePolicy { return c.Context.(*queuePolicy) }

func (fuzzPolicy) Opened(c *Conn) error {
	q := newQueuePolicy()
	q.refuse["forbidden"] = &wire.Error{Condition: wire.ErrCondNotFound}
	q.queues["q"] = []queued{{payload: fuzzMessage}, {payload: fuzzMessage}, {payload: make([]byte, 9000)}}
	c.Context = q
	return q.Opened(c)
}
func (fuzzPolicy) Closed(c *Conn, err error)             { fuzzQueue(c).Closed(c, err) }
func (fuzzPolicy) Attach(l *Link) error                  { return fuzzQueue(l.Conn()).Attach(l) }
func (fuzzPolicy) LinkDetached(l *Link, err *wire.Error) { fuzzQueue(l.Conn()).LinkDetached(l, err) }
func (fuzzPolicy) Delivery(l *Link, d *Delivery)         { fuzzQueue(l.Conn()).Delivery(l, d) }
func (fuzzPolicy) Credit(l *Link)                        { fuzzQueue(l.Conn()).Credit(l) }
func (fuzzPolicy) Disposition(l *Link, d *Delivery, st wire.DeliveryState, settled bool) {
	fuzzQueue(l.Conn()).Disposition(l, d, st, settled)
}

// fuzzOptions keep the limits small so that inputs reach them.
func fuzzOptions() *Options {
	return &Options{
		MaxFrameSize:     4096,
		ChannelMax:       16,
		MaxMessageSize:   16384,
		SessionWindow:    8,
		Users:            map[string]string{"joe": "secret"},
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     5 * time.Second,
	}
}

// Fuzz input modes: what the harness writes before the fuzzed bytes.
const (
	fuzzAfterHeader byte = iota // the AMQP protocol header
	fuzzAfterOpen               // the AMQP header and a valid open
	fuzzRaw                     // nothing: the input negotiates its own headers (SASL...)
)

// FuzzConnReadPath feeds a server connection arbitrary bytes over an in-memory pipe
// (ServeConn), after the AMQP header, after a valid open, or from the first byte. The
// server must never panic, must finish the connection in bounded time once its input
// ends, and every frame it sends must decode.
func FuzzConnReadPath(f *testing.F) {
	srv := NewServer(fuzzPolicy{}, fuzzOptions())
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		runFuzzConn(t, srv, mode, data)
	})
}

func runFuzzConn(t *testing.T, srv *Server, mode byte, data []byte) {
	client, server := halfPipe()
	defer client.Close()
	srv.ServeConn(server)
	c := newestConn(t, srv)

	read := make(chan error, 1)
	go func() { read <- checkServerOutput(client) }()

	var in []byte
	switch mode % 3 {
	case fuzzAfterHeader:
		in = append(in, headerAMQP[:]...)
	case fuzzAfterOpen:
		in = append(in, headerAMQP[:]...)
		in = encodeFrameTo(in, peerOpen())
	}
	in = append(in, data...)
	go func() {
		_, _ = client.Write(in) // the server may close before it has read everything
		client.CloseWrite()     // the server reads the end of its input; its output flows on
	}()

	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the server did not finish the connection; it is stuck (Err: %v)\n%s", c.Err(), buf)
	}
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server finished but did not close its socket")
	}
}

// pipeConn is one end of an in-memory connection like net.Pipe's, but each
// direction closes on its own: the fuzz client can end its input (CloseWrite) and
// still read everything the server says until the server closes. Deadlines are
// ignored: the client always reads, and ends its input.
type pipeConn struct {
	r    *io.PipeReader
	w    *io.PipeWriter
	name string
}

func halfPipe() (client *pipeConn, server *pipeConn) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	return &pipeConn{r: s2cR, w: c2sW, name: "client"}, &pipeConn{r: c2sR, w: s2cW, name: "server"}
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) CloseWrite() error           { return p.w.Close() }
func (p *pipeConn) Close() error {
	p.w.Close()
	p.r.CloseWithError(net.ErrClosed)
	return nil
}
func (p *pipeConn) LocalAddr() net.Addr              { return pipeAddr(p.name) }
func (p *pipeConn) RemoteAddr() net.Addr             { return pipeAddr(p.name + "-peer") }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

func encodeFrameTo(b []byte, body wire.Marshaler) []byte {
	b, err := wire.AppendFrame(b, wire.FrameAMQP, 0, body, nil)
	if err != nil {
		panic(err)
	}
	return b
}

// checkServerOutput reads what the server writes until the pipe closes and reports
// a protocol header or frame that does not parse. A truncated last frame is fine:
// the client closes the pipe whenever it likes.
func checkServerOutput(nc io.Reader) error {
	r := bufio.NewReader(nc)
	for {
		head, err := r.Peek(8)
		if err != nil {
			return nil
		}
		if string(head[:4]) == "AMQP" {
			if _, err := wire.ParseProtocolHeader(head); err != nil {
				return fmt.Errorf("server sent protocol header %q: %w", head, err)
			}
			_, _ = r.Discard(8)
			continue
		}
		h, err := wire.ParseFrameHeader(head, 1<<20)
		if err != nil {
			return fmt.Errorf("server sent frame header %x: %w", head, err)
		}
		frame := make([]byte, h.Size)
		if _, err := io.ReadFull(r, frame); err != nil {
			return nil
		}
		body := frame[int(h.DataOff)*4:]
		if len(body) == 0 {
			continue
		}
		switch h.Type {
		case wire.FrameAMQP:
			if _, _, err := wire.DecodePerformative(body); err != nil {
				return fmt.Errorf("server sent an undecodable frame %x: %w", frame, err)
			}
		case wire.FrameSASL:
			if _, err := wire.DecodeSASLFrame(body); err != nil {
				return fmt.Errorf("server sent an undecodable SASL frame %x: %w", frame, err)
			}
		default:
			return fmt.Errorf("server sent frame type %d", h.Type)
		}
	}
}

// --- the seed corpus -------------------------------------------------------------

// fuzzSeed is one committed corpus entry: valid sequences that reach deep into the
// engine, and broken ones that reach its error paths.
type fuzzSeed struct {
	name string
	mode byte
	data []byte
}

// seedFrames concatenates AMQP frames on channel ch (a *wire.Transfer may carry a
// payload through seedTransfer).
type seedBuf []byte

func (b seedBuf) frame(ch uint16, body wire.Marshaler) seedBuf {
	out, err := wire.AppendFrame(b, wire.FrameAMQP, ch, body, nil)
	if err != nil {
		panic(err)
	}
	return out
}

func (b seedBuf) transfer(ch uint16, t *wire.Transfer, payload []byte) seedBuf {
	out, err := wire.AppendFrame(b, wire.FrameAMQP, ch, t, payload)
	if err != nil {
		panic(err)
	}
	return out
}

func (b seedBuf) sasl(body wire.Marshaler) seedBuf {
	out, err := wire.AppendFrame(b, wire.FrameSASL, 0, body, nil)
	if err != nil {
		panic(err)
	}
	return out
}

func (b seedBuf) raw(p []byte) seedBuf { return append(b, p...) }

func seedBegin() *wire.Begin {
	return &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 64}
}

func fuzzSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	add := func(name string, mode byte, b seedBuf) { seeds = append(seeds, fuzzSeed{name, mode, b}) }
	msg := func(s string) []byte {
		b, err := (&wire.Message{Data: [][]byte{[]byte(s)}}).AppendTo(nil)
		if err != nil {
			panic(err)
		}
		return b
	}
	tr := func(h, id uint32, settled, more bool) *wire.Transfer {
		return &wire.Transfer{Handle: h, DeliveryID: u32(id), DeliveryTag: []byte{byte(id)}, MessageFormat: u32(0), Settled: settled, More: more}
	}
	hdr := func(id byte) []byte { h := wire.ProtocolHeader{ID: id, Major: 1}.Bytes(); return h[:] }
	open := peerOpen()

	add("send-and-close", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, senderAttach("s", 0, "q")).
		transfer(0, tr(0, 0, true, false), msg("pre-settled")).
		transfer(0, tr(0, 1, false, false), msg("unsettled")).
		frame(0, &wire.Detach{Handle: 0, Closed: true}).
		frame(0, &wire.End{}).
		frame(0, &wire.Close{}))
	last := uint32(1)
	add("receive-and-settle-range", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, receiverAttach("r", 0, "q")).
		frame(0, linkFlow(0, 0, 10)).
		frame(0, &wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: &last, Settled: true, State: &wire.Accepted{}}).
		frame(0, &wire.Close{}))
	drain := linkFlow(0, 0, 5)
	drain.Drain, drain.Echo = true, true
	add("drain-and-echo", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, receiverAttach("r", 0, "empty")).
		frame(0, drain).
		frame(0, &wire.Flow{NextIncomingID: u32(0), IncomingWindow: 10, OutgoingWindow: 10, Echo: true}))
	add("multi-frame-abort-then-whole", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, senderAttach("s", 0, "q")).
		transfer(0, tr(0, 0, false, true), []byte("part one ")).
		transfer(0, &wire.Transfer{Handle: 0, Aborted: true}, nil).
		transfer(0, tr(0, 1, false, true), msg("whole ")[:4]).
		transfer(0, &wire.Transfer{Handle: 0}, msg("whole ")[4:]))
	hostile := uint32(math.MaxUint32)
	add("second-mode-hostile-range", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, &wire.Attach{Name: "r2", Handle: 3, Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
			RcvSettleMode: wire.ReceiverSettleModeSecond, Source: &wire.Source{Address: "q"}, Target: &wire.Target{}}).
		frame(0, linkFlow(3, 0, 3)).
		frame(0, &wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: &hostile, State: &wire.Accepted{}}).
		frame(0, &wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: &hostile, Settled: true}))
	idleOpen := peerOpen()
	idleOpen.IdleTimeOut = 50
	idleOpen.MaxFrameSize = 512
	add("open-small-frames-two-sessions", fuzzAfterHeader, seedBuf(nil).
		frame(0, idleOpen).
		frame(0, seedBegin()).
		frame(5, seedBegin()).
		frame(5, receiverAttach("big", 0, "q")).
		frame(5, linkFlow(0, 0, 3)).
		raw(encodeFrameTo(nil, nil)).
		frame(5, &wire.End{}))
	add("sasl-plain-then-amqp", fuzzRaw, seedBuf(nil).
		raw(hdr(wire.ProtoSASL)).
		sasl(&wire.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00joe\x00secret")}).
		raw(hdr(wire.ProtoAMQP)).
		frame(0, open).
		frame(0, seedBegin()))
	add("sasl-plain-challenge", fuzzRaw, seedBuf(nil).
		raw(hdr(wire.ProtoSASL)).
		sasl(&wire.SASLInit{Mechanism: "PLAIN"}).
		sasl(&wire.SASLResponse{Response: []byte("\x00joe\x00secret")}).
		raw(hdr(wire.ProtoAMQP)).
		frame(0, open))
	add("sasl-anonymous-pipelined", fuzzRaw, seedBuf(nil).
		raw(hdr(wire.ProtoSASL)).
		sasl(&wire.SASLInit{Mechanism: "ANONYMOUS"}).
		raw(hdr(wire.ProtoAMQP)).
		frame(0, open).
		frame(0, seedBegin()).
		frame(0, receiverAttach("r", 0, "forbidden")).
		frame(0, linkFlow(0, 0, 1)).
		frame(0, &wire.Close{Error: &wire.Error{Condition: wire.ErrCondInternalError, Description: "bye"}}))

	// Broken inputs.
	add("frame-over-max-size", fuzzAfterOpen, seedBuf(nil).raw([]byte{0, 0, 0x10, 0x01, 2, 0, 0, 0}).raw(make([]byte, 16)))
	add("truncated-begin", fuzzAfterOpen, seedBuf(nil).raw([]byte{0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xc0, 0x01, 0x05}))
	add("attach-on-used-handle", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		frame(0, senderAttach("a", 0, "q")).
		frame(0, senderAttach("b", 0, "q")).
		frame(0, senderAttach("c", 1, "q")).
		frame(0, &wire.End{}))
	add("unattached-and-unbegun", fuzzAfterOpen, seedBuf(nil).
		frame(0, seedBegin()).
		transfer(0, tr(9, 0, false, false), msg("x")).
		frame(3, linkFlow(0, 0, 1)))
	add("garbage", fuzzAfterHeader, seedBuf(nil).raw([]byte("GARBAGE!GARBAGE!GARBAGE!")))
	add("amqp-0-9-1-header", fuzzRaw, seedBuf(nil).raw([]byte("AMQP\x00\x00\x09\x01")))
	big := seedBuf(nil).frame(0, seedBegin()).frame(0, senderAttach("s", 0, "q"))
	big = big.transfer(0, tr(0, 0, false, true), make([]byte, 4000))
	for range 4 {
		big = big.transfer(0, &wire.Transfer{Handle: 0, More: true}, make([]byte, 4000))
	}
	add("oversized-multi-frame", fuzzAfterOpen, big)
	many := seedBuf(nil).frame(0, seedBegin()).frame(0, senderAttach("s", 0, "q"))
	for i := range uint32(20) {
		many = many.transfer(0, tr(0, i, true, false), msg("w"))
	}
	add("beyond-session-window", fuzzAfterOpen, many)
	ext := binary.BigEndian.AppendUint32(nil, 12)
	ext = append(ext, 3, 0, 0, 0, 0, 0, 0, 0)
	add("empty-frame-extended-header", fuzzAfterOpen, seedBuf(nil).raw(ext).frame(0, seedBegin()))
	return seeds
}

// TestFuzzSeedCorpus runs the generated seeds (the committed corpus runs with every
// go test as well) and, with AMQP1KIT_WRITE_CORPUS=1, rewrites the committed files.
func TestFuzzSeedCorpus(t *testing.T) {
	t.Parallel()
	srv := NewServer(fuzzPolicy{}, fuzzOptions())
	t.Cleanup(func() { srv.Close() })
	for _, s := range fuzzSeeds() {
		runFuzzConn(t, srv, s.mode, s.data)
	}
	if os.Getenv("AMQP1KIT_WRITE_CORPUS") != "1" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzConnReadPath")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", s.mode, s.data)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
