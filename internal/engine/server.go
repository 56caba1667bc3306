package engine

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Server accepts AMQP 1.0 connections and serves them with a Handler.
type Server struct {
	opts    Options
	handler Handler

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	closed    bool
	nextID    uint64
	wg        sync.WaitGroup
}

// NewServer returns a server that serves connections with h.
func NewServer(h Handler, opts *Options) *Server {
	return &Server{
		opts:      opts.withDefaults(),
		handler:   h,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*Conn]struct{}{},
	}
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("amqp1kit engine: server closed")

// Serve accepts connections on l until l fails or the server is closed. It always
// returns a non-nil error; after Close, ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.ServeConn(nc)
	}
}

// ServeConn serves one connection in the background; it works with any net.Conn,
// net.Pipe included.
func (s *Server) ServeConn(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if limit := s.opts.MaxConnections; limit > 0 && len(s.conns) >= limit {
		s.mu.Unlock()
		s.opts.Logger.Info("connection refused: max-connections reached", "remote", nc.RemoteAddr(), "max", limit)
		nc.Close()
		return
	}
	s.nextID++
	c := newConn(s, nc, s.nextID)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
}

// forget removes c from the connections being served.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Conns returns the connections being served.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// CloseConns closes every connection with amqp:connection:forced and the given
// description, leaving the listeners open (a fault to inject).
func (s *Server) CloseConns(description string) {
	for _, c := range s.Conns() {
		c.Close(&wire.Error{Condition: wire.ErrCondConnectionForced, Description: description})
	}
}

// Close stops the listeners, closes every connection (close with
// amqp:connection:forced, then the socket after a short grace) and waits for the
// connections' goroutines to finish.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.CloseConns("server shutting down")
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		for _, c := range s.Conns() {
			s.opts.Logger.Warn("connection still open at server close; dropping it", "conn", c.ID(), "remote", c.RemoteAddr())
			c.drop(errors.New("server closed"))
		}
		<-done
	}
	return nil
}
