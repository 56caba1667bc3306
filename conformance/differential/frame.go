package differential

import (
	"fmt"
	"strconv"
	"strings"
)

// Direction says which side of a connection sent a frame.
type Direction int

const (
	// FromClient marks what the scenario's client sent to the intermediary.
	FromClient Direction = iota + 1
	// FromPeer marks what the intermediary sent to the client.
	FromPeer
)

// String returns "client" or "intermediary".
func (d Direction) String() string {
	switch d {
	case FromClient:
		return "client"
	case FromPeer:
		return "intermediary"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Arrow returns "->" for a frame the client sent and "<-" for one the intermediary
// sent.
func (d Direction) Arrow() string {
	if d == FromPeer {
		return "<-"
	}
	return "->"
}

func (d Direction) other() Direction {
	if d == FromPeer {
		return FromClient
	}
	return FromPeer
}

// Frame is one protocol header or frame the proxy saw, described field by field.
// Frames of a Trace carry the values as sent; frames of a Report are normalized (ids,
// tags and generated names masked, see the package doc).
type Frame struct {
	// Conn numbers the connection, from 1, in the order the proxy accepted them.
	Conn int
	// Dir says who sent the frame.
	Dir Direction
	// Channel is the frame header's channel (0 for headers and SASL frames). In a
	// Report it is left as sent; the "channel" field holds the masked one.
	Channel uint16
	// Type names what was sent: "header", a performative ("open", "begin", "attach",
	// "flow", "transfer", "disposition", "detach", "end", "close"), a SASL frame
	// ("sasl-mechanisms", "sasl-init", "sasl-challenge", "sasl-response",
	// "sasl-outcome"), "empty" (a keep-alive), or "undecoded" when the proxy could not
	// decode what followed (Problem says why).
	Type string
	// Fields are the frame's fields in the specification's order, flattened:
	// "source.address", "state.error.condition", "message.header.ttl". Fields at
	// their specification default are left out, except those a difference is often
	// about (settle modes, roles, terminus presence).
	Fields []Field
	// Lane is the part of the connection the frame belongs to: "connection",
	// "session <channel>" or "link <name>". Frames are aligned lane by lane.
	Lane string
	// Problem says why the proxy stopped decoding (garbage, TLS, a malformed frame).
	Problem string
}

// Field is one field of a Frame.
type Field struct {
	// Name is the specification's field name, with dots for nested values.
	Name string
	// Value is the field's value as text.
	Value string
	// Loose marks a field that is shown but not compared (an error's description:
	// its condition is compared).
	Loose bool

	role  role
	rel   string // the normalized form of a value relative to a base (roleRel)
	num   int64  // numeric value of roleApprox fields
	owner Direction
}

// Get returns the value of the field named name and whether the frame has it.
func (f Frame) Get(name string) (string, bool) {
	for _, x := range f.Fields {
		if x.Name == name {
			return x.Value, true
		}
	}
	return "", false
}

// String formats the frame on one line: "conn 1 <- attach name=... handle=...".
func (f Frame) String() string {
	return fmt.Sprintf("conn %d %s %s", f.Conn, f.Dir.Arrow(), f.body())
}

// body is the frame without its connection and direction.
func (f Frame) body() string {
	var b strings.Builder
	b.WriteString(f.Type)
	for _, x := range f.Fields {
		b.WriteByte(' ')
		b.WriteString(x.Name)
		b.WriteByte('=')
		b.WriteString(quote(x.Value))
	}
	if f.Problem != "" {
		b.WriteString(" (" + f.Problem + ")")
	}
	return b.String()
}

// quote quotes a value that would not read as one word.
func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		return strconv.Quote(v)
	}
	return v
}

// role says how normalization treats a field.
type role uint8

const (
	roleLiteral   role = iota // compared as is (after masking generated tokens)
	roleLoose                 // shown, not compared
	roleApprox                // numeric, compared within a tolerance (remaining ttl)
	roleContainer             // a container-id
	roleName                  // a link name
	roleHandle                // a handle of owner
	roleChannel               // a channel of owner
	roleRel                   // a number relative to a base (rel holds it)
	roleBase                  // an arbitrary starting number: masked
	roleTag                   // a delivery tag
	roleAddress               // a node address: dynamic ones masked
	roleMsgID                 // a message-id or correlation-id
	roleTime                  // a timestamp
	roleVolatile              // a value that changes from run to run (qd.conn-id)
	roleShape                 // the shape of a dynamic address: generated parts masked
)
