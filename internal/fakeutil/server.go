package fakeutil

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/engine"
)

// Server is the listening half both fakes share: one engine.Server served on one TCP
// listener, with one Start, Close and Restart. A fake differs from the other only in
// its policy (the engine.Handler and engine.Options behind Engine) and in the hooks
// it passes.
type Server struct {
	pkg    string // "fakerouter", in front of errors
	engine *engine.Server

	mu      sync.Mutex
	ln      net.Listener
	addr    string // bound by Start; kept across Restart
	started bool
	closed  bool
	served  chan struct{} // closed when the current listener's Serve returns
}

// NewServer returns a server for the engine server srv, not listening yet. pkg names
// the fake in errors.
func NewServer(pkg string, srv *engine.Server) *Server {
	return &Server{pkg: pkg, engine: srv}
}

// Engine returns the engine server (its connections, for inspection and faults).
func (s *Server) Engine() *engine.Server { return s.engine }

// Start runs before (when not nil), then listens on addr and serves in the
// background. The address is bound when Start returns; an error of before or of the
// listen is returned and leaves the server not started.
func (s *Server) Start(addr string, before func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: closed", s.pkg)
	}
	if s.started {
		return fmt.Errorf("%s: already started", s.pkg)
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	if err := s.listenLocked(addr); err != nil {
		return fmt.Errorf("%s: %w", s.pkg, err)
	}
	s.started = true
	return nil
}

// listenLocked listens on addr and serves it in the background.
func (s *Server) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln, s.addr = ln, ln.Addr().String()
	served := make(chan struct{})
	s.served = served
	go func() {
		defer close(served)
		_ = s.engine.Serve(ln)
	}()
	return nil
}

// Close stops listening and closes every client connection (close with
// amqp:connection:forced, then the socket), waiting for their goroutines; then it
// runs after (when not nil) and returns the first error. It does not wait for
// clients to answer. A second Close does nothing.
func (s *Server) Close(after func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.started {
		return nil
	}
	err := s.engine.Close()
	<-s.served
	if after != nil {
		if aerr := after(); err == nil {
			err = aerr
		}
	}
	return err
}

// restartWait bounds how long Restart waits for the old connections' goroutines.
const restartWait = 10 * time.Second

// Restart is what a client sees when the real program restarts: the listener goes,
// every client connection is cut (the socket closed, no close frame, as when a
// process dies) and, once each connection is gone (its handler has heard Closed),
// between runs (when not nil: a broker reloads its journal there); then the server
// listens on the same address again, retrying for up to a second while the port is
// still taken. It returns an error when the server is not running, when a
// connection is still not gone after 10 s (the server then does not listen again),
// or when between or the listen fails.
func (s *Server) Restart(between func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return fmt.Errorf("%s: restart of a server that is not running", s.pkg)
	}
	s.ln.Close()
	<-s.served
	conns := s.engine.Conns()
	for _, c := range conns {
		c.Drop()
	}
	deadline := time.NewTimer(restartWait)
	defer deadline.Stop()
	for i, c := range conns {
		select {
		case <-c.Done():
		case <-deadline.C:
			return fmt.Errorf("%s: restart: %d of %d connections still not gone after %v", s.pkg, len(conns)-i, len(conns), restartWait)
		}
	}
	if between != nil {
		if err := between(); err != nil {
			return err
		}
	}
	var err error
	for range 50 {
		if err = s.listenLocked(s.addr); err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: restart: %w", s.pkg, err)
}

// Addr returns the host:port the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Running reports whether the server was started and not closed.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started && !s.closed
}

// Started reports whether Start succeeded (the server may have been closed since).
func (s *Server) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}
