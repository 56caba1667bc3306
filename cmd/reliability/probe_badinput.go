package main

import (
	"context"
	"encoding/binary"
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

// badKind is one kind of malformed input: what the client sends first (the protocol
// header alone, then open, then begin on channel 0), then its bad bytes.
type badKind struct {
	name  string
	after int // 0: header only, 1: header and open, 2: header, open and begin
	bad   func(address string) []byte
}

const (
	afterHeader = iota
	afterOpen
	afterBegin
)

func frame(ch uint16, body wire.Marshaler) []byte {
	b, err := wire.AppendFrame(nil, wire.FrameAMQP, ch, body, nil)
	if err != nil {
		panic(err)
	}
	return b
}

// rawFrame builds a frame from a header's fields and a body, whatever they say.
func rawFrame(size uint32, doff, typ byte, ch uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, size)
	b = append(b, doff, typ, byte(ch>>8), byte(ch))
	return append(b, body...)
}

func bodyFrame(typ byte, ch uint16, body []byte) []byte {
	return rawFrame(uint32(wire.FrameHeaderSize+len(body)), 2, typ, ch, body)
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

func begin() *wire.Begin {
	return &wire.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}
}

func sendAttach(name string, h uint32, address string) *wire.Attach {
	return &wire.Attach{Name: name, Handle: h, Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: address}}
}

var badKinds = []badKind{
	{"frame-size-over-max-frame-size (2 MiB)", afterBegin, func(string) []byte {
		return rawFrame(2<<20, 2, wire.FrameAMQP, 0, make([]byte, 2<<20-8))
	}},
	{"frame-size-huge (4 GiB, 8 bytes sent)", afterBegin, func(string) []byte {
		return rawFrame(0xfffffff0, 2, wire.FrameAMQP, 0, nil)
	}},
	{"garbage-after-open", afterOpen, func(string) []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }},
	{"data-offset-below-2", afterBegin, func(string) []byte { return rawFrame(12, 1, wire.FrameAMQP, 0, []byte{0, 0, 0, 0}) }},
	{"size-below-data-offset", afterBegin, func(string) []byte { return rawFrame(8, 4, wire.FrameAMQP, 0, nil) }},
	{"sasl-frame-after-open", afterBegin, func(string) []byte {
		b, _ := wire.AppendFrame(nil, wire.FrameSASL, 0, &wire.SASLInit{Mechanism: "ANONYMOUS"}, nil)
		return b
	}},
	{"unknown-frame-type (7)", afterBegin, func(string) []byte { return bodyFrame(7, 0, []byte{0x00, 0x53, 0x13, 0x45}) }},
	{"malformed-performative (truncated list)", afterBegin, func(string) []byte {
		return bodyFrame(wire.FrameAMQP, 0, []byte{0x00, 0x53, 0x13, 0xd0, 0, 0, 0, 100, 0, 0, 0, 9, 0x43})
	}},
	{"performative-missing-mandatory-field (flow, empty list)", afterBegin, func(string) []byte {
		return bodyFrame(wire.FrameAMQP, 0, []byte{0x00, 0x53, 0x13, 0x45})
	}},
	{"unknown-descriptor (0x99)", afterBegin, func(string) []byte { return bodyFrame(wire.FrameAMQP, 0, []byte{0x00, 0x53, 0x99, 0x45}) }},
	{"body-not-described (a bare list)", afterBegin, func(string) []byte { return bodyFrame(wire.FrameAMQP, 0, []byte{0x45}) }},
	{"message-section-as-performative (data)", afterBegin, func(string) []byte {
		return bodyFrame(wire.FrameAMQP, 0, []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 'x'})
	}},
	{"stray-bytes-after-performative (flow)", afterBegin, func(string) []byte {
		f := frame(0, &wire.Flow{NextIncomingID: u32(0), IncomingWindow: 100, OutgoingWindow: 100})
		f = append(f, 0xde, 0xad, 0xbe, 0xef)
		binary.BigEndian.PutUint32(f, uint32(len(f)))
		return f
	}},
	{"frame-on-channel-without-session (flow on 3)", afterBegin, func(string) []byte {
		return frame(3, &wire.Flow{NextIncomingID: u32(0), IncomingWindow: 100, OutgoingWindow: 100})
	}},
	{"begin-on-used-channel", afterBegin, func(string) []byte { return frame(0, begin()) }},
	{"begin-with-remote-channel that never began", afterBegin, func(string) []byte {
		b := begin()
		b.RemoteChannel = u16(5)
		return frame(1, b)
	}},
	{"second-open", afterBegin, func(string) []byte { return frame(0, &wire.Open{ContainerID: "bad"}) }},
	{"first-frame-not-open (begin)", afterHeader, func(string) []byte { return frame(0, begin()) }},
	{"first-frame-undecodable", afterHeader, func(string) []byte { return bodyFrame(wire.FrameAMQP, 0, []byte{0x00, 0x53, 0x10, 0xd0, 0xff}) }},
	{"attach-on-used-handle (two link names)", afterBegin, func(a string) []byte {
		return append(frame(0, sendAttach("bad-1", 7, a)), frame(0, sendAttach("bad-2", 7, a))...)
	}},
	{"transfer-on-unattached-handle", afterBegin, func(string) []byte {
		b, _ := wire.AppendFrame(nil, wire.FrameAMQP, 0, &wire.Transfer{Handle: 9, DeliveryID: u32(0), DeliveryTag: []byte{1}, MessageFormat: u32(0), Settled: true}, []byte{0x00, 0x53, 0x77, 0xa1, 0x01, 'x'})
		return b
	}},
	{"flow-on-unattached-handle", afterBegin, func(string) []byte {
		return frame(0, &wire.Flow{NextIncomingID: u32(0), IncomingWindow: 100, OutgoingWindow: 100, Handle: u32(4), DeliveryCount: u32(0), LinkCredit: u32(10)})
	}},
	{"detach-of-unattached-handle", afterBegin, func(string) []byte { return frame(0, &wire.Detach{Handle: 5, Closed: true}) }},
}

// badConn sends one kind of bad input on a connection of its own and reports how
// the connection (or session, or link) ended.
func badConn(addr, address string, k badKind, wait time.Duration) string {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer nc.Close()
	hdr := wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	out := append([]byte{}, hdr[:]...)
	if k.after >= afterOpen {
		out = append(out, frame(0, &wire.Open{ContainerID: "reliability-bad", MaxFrameSize: 65536, ChannelMax: 15})...)
	}
	if k.after >= afterBegin {
		out = append(out, frame(0, begin())...)
	}
	out = append(out, k.bad(address)...)
	// Write in the background: a server that closes early stops reading a big frame.
	go func() {
		_ = nc.SetWriteDeadline(time.Now().Add(wait))
		_, _ = nc.Write(out)
	}()
	fc := frameclient.New(nc)
	fc.Timeout = wait
	deadline := time.Now().Add(wait)
	h, err := fc.ReadHeader()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
			return "socket closed before any answer"
		}
		return "no protocol header: " + short(err)
	}
	if h.ID != wire.ProtoAMQP {
		return fmt.Sprintf("answered with protocol header %d", h.ID)
	}
	var seen []string // what the peer answered before it ended or went quiet
	then := func() string {
		if len(seen) == 0 {
			return ""
		}
		return " (after " + strings.Join(seen, ", ") + ")"
	}
	for {
		f, err := fc.NextBefore(deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Sprintf("no answer within %v%s", wait, then())
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
				return "socket closed, no close frame" + then()
			}
			return "read: " + short(err)
		}
		switch b := f.Body.(type) {
		case *wire.Close:
			return "close " + wireErr(b.Error)
		case *wire.End:
			return "end " + wireErr(b.Error)
		case *wire.Detach:
			if b.Error != nil {
				return "detach " + wireErr(b.Error)
			}
			seen = append(seen, "detach")
		case *wire.Open:
			seen = append(seen, "open")
		case *wire.Begin:
			seen = append(seen, "begin")
		case *wire.Attach:
			seen = append(seen, "attach")
		case nil:
		default:
			seen = append(seen, fmt.Sprintf("%T", b)[len("*wire."):])
		}
	}
}

func short(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// goodClient does round trips (send, receive, accept, outcome) on address one after another
// until stopped.
type goodClient struct {
	mu                  sync.Mutex
	attempted, complete int
	errs                map[string]int
}

func (g *goodClient) run(ctx context.Context, url, address string) error {
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return err
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return err
	}
	rcv, err := sess.NewReceiver(ctx, address, nil)
	if err != nil {
		return err
	}
	snd, err := sess.NewSender(ctx, address, nil)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		g.mu.Lock()
		g.attempted++
		g.mu.Unlock()
		err := func() error {
			octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return sendReceive(octx, snd, rcv)
		}()
		g.mu.Lock()
		if err != nil {
			g.errs[short(err)]++
		} else {
			g.complete++
		}
		g.mu.Unlock()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err // the good client's link or connection is gone
		}
	}
	return nil
}

func probeBadInput(ctx context.Context, e *env, t *target, r *result) {
	good, bad := anycast+"good", anycast+"bad"
	if !isRouter(t.name) {
		good, bad = "unicast.reliability-good", "unicast.reliability-bad"
	}
	g := &goodClient{errs: map[string]int{}}
	gctx, stopGood := context.WithCancel(ctx)
	gdone := make(chan error, 1)
	go func() { gdone <- g.run(gctx, t.url(), good) }()
	time.Sleep(200 * time.Millisecond)
	var ends []measure
	answered, silent, cut := 0, 0, 0
	for _, k := range badKinds {
		if ctx.Err() != nil {
			break
		}
		end := badConn(t.addr, bad, k, e.cfg.badWait)
		e.logf("  %s: %s: %s", t.name, k.name, end)
		ends = append(ends, txt("bad: "+k.name, end))
		switch {
		case strings.HasPrefix(end, "close ") || strings.HasPrefix(end, "end ") || strings.HasPrefix(end, "detach "):
			answered++
		case strings.HasPrefix(end, "no answer"):
			silent++
		case strings.HasPrefix(end, "socket closed"):
			cut++
		}
	}
	time.Sleep(e.cfg.badGood)
	stopGood()
	gerr := <-gdone
	g.mu.Lock()
	r.add(txt("good round trips completed / attempted", fmt.Sprintf("%d / %d", g.complete, g.attempted)))
	if len(g.errs) > 0 {
		r.add(txt("good client's failures", tallyString(g.errs, g.attempted-g.complete)))
	}
	g.mu.Unlock()
	if gerr != nil {
		r.add(txt("good client's end", "failed: "+errString(gerr)))
	}
	r.add(
		num("bad connections ended with a condition (close, end or detach)", float64(answered), ""),
		num("bad connections whose socket was closed without a frame", float64(cut), ""),
		txt("bad connections left unanswered", fmt.Sprintf("%d (waited %v each)", silent, e.cfg.badWait)),
	)
	r.add(ends...)
}
