package fakeutil

import "github.com/amqp1kit/amqp1kit/internal/engine"

// Stalled remembers, per client connection that reads too slowly (engine.Conn.Writable
// said no), the nodes whose messages a fake held back from it, so that the
// connection's Writable can send them on. Its zero value is ready; it is not safe for
// concurrent use (the fakes hold their own lock).
type Stalled[N comparable] struct {
	m map[*engine.Conn]map[N]struct{}
}

// Writable reports whether conn takes more now; when it does not, n is remembered
// for it.
func (s *Stalled[N]) Writable(conn *engine.Conn, n N) bool {
	if conn.Writable() {
		return true
	}
	if s.m == nil {
		s.m = map[*engine.Conn]map[N]struct{}{}
	}
	nodes := s.m[conn]
	if nodes == nil {
		nodes = map[N]struct{}{}
		s.m[conn] = nodes
	}
	nodes[n] = struct{}{}
	return false
}

// Take returns and forgets the nodes held back from conn (engine's Writable).
func (s *Stalled[N]) Take(conn *engine.Conn) []N {
	nodes := s.m[conn]
	delete(s.m, conn)
	out := make([]N, 0, len(nodes))
	for n := range nodes {
		out = append(out, n)
	}
	return out
}

// Forget drops what is remembered for conn (a connection that is gone).
func (s *Stalled[N]) Forget(conn *engine.Conn) { delete(s.m, conn) }
