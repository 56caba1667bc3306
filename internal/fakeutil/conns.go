package fakeutil

import (
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
)

// ConnInfo describes one client connection.
type ConnInfo struct {
	// ID identifies the connection (LinkInfo.Conn names it).
	ID uint64
	// Container is the client's container-id ("" before its open arrived).
	Container string
	// Remote is the client's network address.
	Remote string
	// User is the authenticated SASL user and Mechanism the SASL mechanism; both ""
	// when the client skipped SASL.
	User, Mechanism string
	// TLS is true for a TLS connection.
	TLS bool
	// Links counts the connection's attached links.
	Links int
	// Queued is the bytes queued for the client and not yet written to its socket
	// (at most about the fake's ConnOutputLimit when the client does not read).
	Queued int
}

// Conns describes conns, sorted by id. A connection still in its handshake shows
// its id and remote address only.
func Conns(conns []*engine.Conn) []ConnInfo {
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		in := ConnInfo{ID: c.ID(), Queued: c.Buffered()}
		if a := c.RemoteAddr(); a != nil {
			in.Remote = a.String()
		}
		if c.OpenExchanged() {
			in.Container, in.User, in.Mechanism = c.ContainerID(), c.User(), c.Mechanism()
			in.TLS = c.TLS() != nil
			in.Links = len(c.Links())
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
