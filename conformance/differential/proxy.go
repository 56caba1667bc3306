package differential

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// maxRecordedFrame bounds the frames the proxy decodes. A frame header announcing more
// stops the decoding of that direction (the bytes are still forwarded untouched).
const maxRecordedFrame = 64 << 20

// record is one thing the proxy saw on a connection: a protocol header, a frame, or a
// stop in decoding (garbage, TLS, an oversized or malformed frame).
type record struct {
	conn    int
	dir     Direction
	seq     int
	at      time.Time
	channel uint16
	header  *wire.ProtocolHeader // a protocol header
	body    any                  // wire.Performative, wire.SASLFrame, or nil for an empty frame
	payload []byte               // bytes after a transfer's performative (owned)
	sasl    bool                 // a SASL frame
	problem string               // why decoding stopped or this frame could not be decoded
}

// proxy is a recording TCP proxy in front of one intermediary: every connection a
// client opens to it is forwarded, byte for byte, to the target; both directions are
// split into protocol headers, SASL frames and AMQP frames, which are recorded.
type proxy struct {
	ln     net.Listener
	target string // host:port

	mu       sync.Mutex
	cond     *sync.Cond
	records  []record
	conns    int
	open     map[net.Conn]struct{}
	last     time.Time // when the last record was made
	closed   bool
	dialErrs []string
	byAddr   map[string]int // a client's address -> its connection number
	ended    map[int]bool   // connections whose both directions have ended

	wg sync.WaitGroup
}

// startProxy listens on 127.0.0.1:0 and forwards to target (host:port).
func startProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("differential: proxy listen: %w", err)
	}
	p := &proxy{ln: ln, target: target, open: map[net.Conn]struct{}{}, last: time.Now(),
		byAddr: map[string]int{}, ended: map[int]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// addr is the proxy's listening address.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns++
		n := p.conns
		p.open[c] = struct{}{}
		p.byAddr[c.RemoteAddr().String()] = n
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(n, c)
	}
}

// serve forwards one client connection to the target and records both directions.
func (p *proxy) serve(n int, client net.Conn) {
	defer p.wg.Done()
	defer p.forget(client)
	defer func() {
		p.mu.Lock()
		p.ended[n] = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		p.add(record{conn: n, dir: FromPeer, problem: "proxy could not connect to the intermediary: " + err.Error()})
		p.mu.Lock()
		p.dialErrs = append(p.dialErrs, err.Error())
		p.mu.Unlock()
		client.Close()
		return
	}
	if !p.track(server) {
		server.Close()
		client.Close()
		return
	}
	defer p.forget(server)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(n, FromClient, client, server) }()
	go func() { defer wg.Done(); p.pump(n, FromPeer, server, client) }()
	wg.Wait()
	client.Close()
	server.Close()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

// pump copies src to dst unchanged and records what passes. When src ends it
// half-closes dst (or closes it), so that the other direction ends too.
func (p *proxy) pump(n int, dir Direction, src, dst net.Conn) {
	sp := &splitter{emit: func(r record) { r.conn, r.dir = n, dir; p.add(r) }}
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			// Recorded first: what one side sent counts even if the other side has
			// gone and cannot read it.
			sp.feed(buf[:k])
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
			} else {
				dst.Close()
				src.Close()
			}
			return
		}
	}
}

func (p *proxy) add(r record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.seq = len(p.records)
	r.at = time.Now()
	p.last = r.at
	p.records = append(p.records, r)
	p.cond.Broadcast()
}

// snapshot returns the records so far.
func (p *proxy) snapshot() []record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]record(nil), p.records...)
}

// quiet waits until nothing has passed the proxy for d since it was called (and
// since the last frame), or ctx ends: what the last step set off has had d to show.
func (p *proxy) quiet(ctx context.Context, d time.Duration) error {
	start := time.Now()
	for {
		p.mu.Lock()
		last := p.last
		p.mu.Unlock()
		if last.Before(start) {
			last = start
		}
		wait := time.Until(last.Add(d))
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// await waits until a record after index from satisfies match, and returns its index.
func (p *proxy) await(ctx context.Context, from int, match func([]record, int) bool) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; ; {
		for ; i < len(p.records); i++ {
			if match(p.records, i) {
				return i, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		if p.closed {
			return -1, errors.New("differential: proxy closed")
		}
		p.cond.Wait()
	}
}

// awaitPeerClose waits until the intermediary has sent close on the connection
// whose client is at clientAddr, or the connection has ended, or ctx ends.
func (p *proxy) awaitPeerClose(ctx context.Context, clientAddr string) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		n, known := p.byAddr[clientAddr]
		if known {
			for ; i < len(p.records); i++ {
				r := p.records[i]
				if _, ok := r.body.(*wire.Close); ok && r.conn == n && r.dir == FromPeer {
					return
				}
			}
		}
		if (known && p.ended[n]) || p.closed || ctx.Err() != nil {
			return
		}
		p.cond.Wait()
	}
}

// close stops accepting, closes every connection still open and waits for the
// proxy's goroutines to end.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// splitter cuts one direction of a connection into protocol headers and frames. It
// never fails: anything it cannot understand is recorded as a problem, after which it
// stops decoding that direction.
type splitter struct {
	emit    func(record)
	buf     []byte
	stopped bool
	sasl    bool // inside the SASL layer: frames are SASL frames
	started bool // a protocol header has been seen
}

func (s *splitter) feed(b []byte) {
	if s.stopped {
		return
	}
	s.buf = append(s.buf, b...)
	for !s.stopped {
		n := s.next()
		if n == 0 || s.stopped {
			break
		}
		s.buf = s.buf[n:]
	}
	if len(s.buf) == 0 {
		s.buf = nil // let the backing array go
	} else if cap(s.buf) > 1<<20 && len(s.buf) < cap(s.buf)/4 {
		s.buf = append([]byte(nil), s.buf...)
	}
}

func (s *splitter) stop(why string) {
	s.stopped = true
	s.buf = nil
	s.emit(record{problem: why})
}

// next consumes one header or frame from s.buf and returns its length, or 0 when more
// bytes are needed (or decoding stopped).
func (s *splitter) next() int {
	b := s.buf
	if len(b) >= 4 && bytes.Equal(b[:4], []byte("AMQP")) || !s.started {
		if len(b) < wire.ProtocolHeaderSize {
			if len(b) > 0 && !bytes.HasPrefix([]byte("AMQP"), b[:min(len(b), 4)]) {
				s.stop(fmt.Sprintf("not an AMQP protocol header: % x", b))
			}
			return 0
		}
		h, err := wire.ParseProtocolHeader(b)
		if err != nil {
			s.stop(fmt.Sprintf("not an AMQP protocol header: %q", b[:8]))
			return 0
		}
		s.started = true
		s.sasl = h.ID == wire.ProtoSASL
		s.emit(record{header: &h})
		if h.ID == wire.ProtoTLS {
			s.stop("TLS: the proxy does not decode encrypted traffic")
		}
		return wire.ProtocolHeaderSize
	}
	if len(b) < wire.FrameHeaderSize {
		return 0
	}
	fh, err := wire.ParseFrameHeader(b, maxRecordedFrame)
	if err != nil {
		s.stop("bad frame header: " + err.Error())
		return 0
	}
	if uint32(len(b)) < fh.Size {
		return 0
	}
	size := int(fh.Size)
	body := append([]byte(nil), b[int(fh.DataOff)*4:size]...)
	r := record{channel: fh.Channel}
	switch {
	case fh.Type == wire.FrameSASL:
		r.sasl = true
		if len(body) == 0 {
			r.problem = "empty SASL frame"
			break
		}
		f, err := wire.DecodeSASLFrame(body)
		if err != nil {
			r.problem = "undecodable SASL frame: " + err.Error()
			break
		}
		r.body = f
	case fh.Type != wire.FrameAMQP:
		r.problem = fmt.Sprintf("frame of unknown type 0x%02x", fh.Type)
	case len(body) == 0:
		// an empty frame: a keep-alive
	default:
		perf, payload, err := wire.DecodePerformative(body)
		if err != nil {
			r.problem = "undecodable frame: " + err.Error()
			break
		}
		r.body = perf
		if len(payload) > 0 {
			r.payload = payload // aliases body, which this record owns
		}
	}
	s.emit(r)
	return size
}

// targetAddr returns the host:port of an amqp:// URL and the URL rebuilt to point at
// proxyAddr instead (user info, path and query kept).
func targetAddr(raw, proxyAddr string) (hostport, proxied string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("differential: target URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "amqp":
	case "amqps":
		return "", "", fmt.Errorf("differential: target URL %q: TLS (amqps) is not supported; the proxy records plain TCP", raw)
	default:
		return "", "", fmt.Errorf("differential: target URL %q: scheme must be amqp", raw)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	v := *u
	v.Host = proxyAddr
	return host, v.String(), nil
}
