package fakeutil

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/engine"
)

// openAMQP connects to addr and exchanges protocol headers, so the server has a
// connection whose handler heard Opened.
func openAMQP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write([]byte("AMQP\x00\x01\x00\x00")); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestServerLifecycle(t *testing.T) {
	s := NewServer("fakex", engine.NewServer(engine.NopHandler{}, &engine.Options{ContainerID: "x"}))
	if err := s.Restart(nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("restart before start: %v", err)
	}
	if s.Addr() != "" || s.Started() || s.Running() {
		t.Fatal("a server not started has an address or says it runs")
	}
	beforeErr := errors.New("journal unreadable")
	if err := s.Start("127.0.0.1:0", func() error { return beforeErr }); !errors.Is(err, beforeErr) || s.Started() {
		t.Fatalf("start whose before fails: %v, started %v", err, s.Started())
	}
	if err := s.Start("127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0", nil); err == nil || !strings.Contains(err.Error(), "fakex: already started") {
		t.Fatalf("second start: %v", err)
	}
	addr := s.Addr()

	// Restart cuts the connection (no close frame: the client reads EOF) and runs
	// between once it is gone; the address stays.
	nc := openAMQP(t, addr)
	if n := len(s.Engine().Conns()); n != 1 {
		t.Fatalf("%d connections served, want 1", n)
	}
	left := -1
	if err := s.Restart(func() error { left = len(s.Engine().Conns()); return nil }); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("between ran while %d connections were left, want 0", left)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := nc.Read(make([]byte, 64)); err == nil {
		t.Fatalf("the cut connection read %d bytes, want EOF or a reset", n)
	}
	if s.Addr() != addr {
		t.Fatalf("address %s after restart, want %s", s.Addr(), addr)
	}
	openAMQP(t, addr) // served again

	// A failing between is returned.
	if err := s.Restart(func() error { return beforeErr }); !errors.Is(err, beforeErr) {
		t.Fatalf("restart whose between fails: %v", err)
	}

	afterRan := false
	if err := s.Close(func() error { afterRan = true; return nil }); err != nil || !afterRan {
		t.Fatalf("close: %v, after ran %v", err, afterRan)
	}
	if err := s.Close(func() error { t.Fatal("after ran twice"); return nil }); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.Restart(nil); err == nil {
		t.Fatal("restart after close did not fail")
	}
	if err := s.Start("127.0.0.1:0", nil); err == nil || !strings.Contains(err.Error(), "fakex: closed") {
		t.Fatalf("start after close: %v", err)
	}
}
