package differential

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// stream is a client's side of a connection: SASL header, init, AMQP header, open,
// begin, an attach and a transfer with a message.
func stream(t testing.TB) []byte {
	t.Helper()
	var b []byte
	add := func(typ byte, ch uint16, body wire.Marshaler, payload []byte) {
		var err error
		if b, err = wire.AppendFrame(b, typ, ch, body, payload); err != nil {
			t.Fatal(err)
		}
	}
	h := wire.ProtocolHeader{ID: wire.ProtoSASL, Major: 1}.Bytes()
	b = append(b, h[:]...)
	add(wire.FrameSASL, 0, &wire.SASLInit{Mechanism: "ANONYMOUS"}, nil)
	h = wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	b = append(b, h[:]...)
	add(wire.FrameAMQP, 0, &wire.Open{ContainerID: "c", MaxFrameSize: 65536, ChannelMax: 7}, nil)
	add(wire.FrameAMQP, 0, &wire.Begin{IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 3}, nil)
	add(wire.FrameAMQP, 0, &wire.Attach{Name: "l", Role: wire.RoleSender, Target: &wire.Target{Address: "q"}, InitialDeliveryCount: new(uint32)}, nil)
	b = append(b, 0, 0, 0, 8, 2, 0, 0, 0) // an empty frame
	msg, err := (&wire.Message{Header: &wire.Header{Durable: true, TTL: 1000}, Data: [][]byte{[]byte("hi")}}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := uint32(0)
	add(wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{1}, More: true}, msg[:3])
	add(wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, More: false}, msg[3:])
	return b
}

func split(b []byte, chunk int) []record {
	var out []record
	s := &splitter{emit: func(r record) { out = append(out, r) }}
	for len(b) > 0 {
		n := min(chunk, len(b))
		s.feed(b[:n])
		b = b[n:]
	}
	return out
}

func types(rs []record) string {
	ds := describe(rs)
	var s []string
	for _, d := range ds {
		s = append(s, d.Type)
	}
	return strings.Join(s, " ")
}

func TestSplitterWholeAndByteByByte(t *testing.T) {
	b := stream(t)
	want := "header sasl-init header open begin attach empty transfer transfer"
	for _, chunk := range []int{len(b), 1, 3, 7} {
		got := split(b, chunk)
		if types(got) != want {
			t.Errorf("chunk %d: %s, want %s", chunk, types(got), want)
		}
	}
	ds := describe(split(b, 1))
	last := ds[len(ds)-1]
	if v, _ := last.Get("message.header.ttl"); v != "1000" {
		t.Errorf("the message split over two transfers is not decoded: %s", last.body())
	}
	if v, _ := last.Get("message.body"); v != `data(1) "hi"` {
		t.Errorf("body %q", v)
	}
}

func TestSplitterSurvivesGarbage(t *testing.T) {
	good := stream(t)
	cases := map[string][]byte{
		"not amqp":         []byte("GET / HTTP/1.1\r\n\r\n"),
		"short":            []byte("AM"),
		"tls":              append([]byte("AMQP\x02\x01\x00\x00"), 0x16, 3, 1),
		"bad data offset":  append(append([]byte{}, good[:8]...), 0, 0, 0, 8, 1, 1, 0, 0),
		"huge frame":       append([]byte("AMQP\x00\x01\x00\x00"), 0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0),
		"undecodable body": append([]byte("AMQP\x00\x01\x00\x00"), 0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x99, 0x45),
		"truncated":        good[:len(good)-5],
		"unknown type":     append([]byte("AMQP\x00\x01\x00\x00"), 0, 0, 0, 8, 2, 9, 0, 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			for _, chunk := range []int{len(b) + 1, 1} {
				rs := split(b, chunk)
				_ = describe(rs)
				_ = normalize(describe(rs), nil)
			}
		})
	}
	if got := types(split(cases["tls"], 1)); got != "header undecoded" {
		t.Errorf("tls: %s", got)
	}
	if got := types(split(cases["not amqp"], 1)); got != "undecoded" {
		t.Errorf("not amqp: %s", got)
	}
}

func FuzzSplitter(f *testing.F) {
	f.Add(stream(f))
	f.Add([]byte("AMQP\x00\x01\x00\x00\x00\x00\x00\x08\x02\x00\x00\x00"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, chunk := range []int{len(b) + 1, 5} {
			ds := describe(split(b, chunk))
			fs := normalize(ds, []string{"x"})
			_ = diffTraces(fs, fs, true, false)
		}
	})
}

// echoServer accepts connections and echoes what it reads until the test ends.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// TestProxyForwardsGarbageUnchanged sends bytes that are not AMQP through the proxy:
// they come back unchanged, the proxy records why it stopped decoding, and it
// serves the next connection.
func TestProxyForwardsGarbageUnchanged(t *testing.T) {
	p, err := startProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for _, payload := range [][]byte{[]byte("\x00\x01garbage\xff"), stream(t)} {
		c, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("the proxy altered the bytes: %q, sent %q", got, payload)
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := p.await(ctx, 0, func(rs []record, i int) bool { return rs[i].conn == 2 && rs[i].dir == FromPeer && rs[i].body != nil }); err != nil {
		t.Fatal(err)
	}
	rs := p.snapshot()
	if rs[0].problem == "" || rs[0].conn != 1 {
		t.Errorf("garbage not recorded as such: %+v", rs[0])
	}
}

func TestTargetAddr(t *testing.T) {
	host, proxied, err := targetAddr("amqp://user:pw@localhost:5673/vhost", "127.0.0.1:9")
	if err != nil || host != "localhost:5673" || proxied != "amqp://user:pw@127.0.0.1:9/vhost" {
		t.Errorf("%q %q %v", host, proxied, err)
	}
	if host, _, _ := targetAddr("amqp://example", "x:1"); host != "example:5672" {
		t.Errorf("default port: %q", host)
	}
	for _, bad := range []string{"amqps://h:1", "http://h", "::"} {
		if _, _, err := targetAddr(bad, "x:1"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestShape(t *testing.T) {
	n := &normalizer{containers: newTokens("container"), names: newTokens("link"), dyns: newTokens("dyn"),
		ids: newTokens("id"), uniques: newTokens("u"), dynNames: map[string]bool{}}
	n.containers.get("amqp1kit-qdrouterd")
	n.collect(nil)
	n.shapeReplacer = newLongestFirstReplacer([]string{"amqp1kit-qdrouterd", "<container1>"})
	for in, want := range map[string]string{
		"amqp:/_topo/0/amqp1kit-qdrouterd/temp.cPLXvRp_Q+Ml2kz": "amqp:/_topo/0/<container1>/temp.<x>",
		"amqp:/_$temp.dJBTHDtxehoqmMc":                          "amqp:/_$temp.<x>",
		"2b0c3f3a-8f4e-4a8e-9a53-1f2b3c4d5e6f":                  "<uuid>",
		"TempQueue.reply":                                       "TempQueue.reply",
	} {
		if got := n.shape(in); got != want {
			t.Errorf("shape(%q) = %q, want %q", in, got, want)
		}
	}
}
