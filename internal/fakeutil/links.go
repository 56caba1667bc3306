package fakeutil

import (
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// LinkInfo describes one attached link, from the client's point of view.
type LinkInfo struct {
	// Conn identifies the connection; Container is the client's container-id.
	Conn      uint64
	Container string
	Name      string
	// Role is the client's role: "sender" or "receiver".
	Role string
	// Address is the node the link is attached to ("" for an anonymous sender).
	Address string
	// Credit is the link's credit: granted to the client (sender) or by it
	// (receiver).
	Credit uint32
	// Unsettled counts deliveries sent to the client it has not settled.
	Unsettled int
}

// Links lists the links of conns, sorted by connection and name.
func Links(conns []*engine.Conn) []LinkInfo {
	var out []LinkInfo
	for _, c := range conns {
		for _, l := range c.Links() {
			role := "sender"
			if l.Role() == wire.RoleSender {
				role = "receiver"
			}
			out = append(out, LinkInfo{
				Conn: c.ID(), Container: c.ContainerID(), Name: l.Name(), Role: role,
				Address: l.Address(), Credit: l.Credit(), Unsettled: len(l.Unsettled()),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Conn != out[j].Conn {
			return out[i].Conn < out[j].Conn
		}
		return out[i].Name < out[j].Name
	})
	return out
}
