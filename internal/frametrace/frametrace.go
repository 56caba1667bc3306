// Package frametrace turns the engine's frame events into the Frame values the fakes
// hand to their Options.Trace: one readable line per frame sent or received.
package frametrace

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/amqp1kit/amqp1kit/internal/engine"
)

// Frame describes one frame a fake sent or received.
type Frame struct {
	// Conn identifies the client connection.
	Conn uint64
	// Incoming is true for a frame the fake received.
	Incoming bool
	// Channel is the frame's channel.
	Channel uint16
	// Performative names the frame body ("open", "transfer", "init" for sasl-init,
	// ...), or "empty" for a keep-alive frame.
	Performative string
	// Fields is the body's fields that are set, as "name=value" pairs; a nested
	// described value shows its type, e.g. "State=accepted{}".
	Fields string
	// PayloadSize is the number of message bytes a transfer carried.
	PayloadSize int
}

// String formats the frame as one log line, e.g. "conn 3 <- ch 0 attach Name=...".
func (f Frame) String() string {
	dir := "->"
	if f.Incoming {
		dir = "<-"
	}
	s := fmt.Sprintf("conn %d %s ch %d %s %s", f.Conn, dir, f.Channel, f.Performative, f.Fields)
	if f.PayloadSize > 0 {
		s += fmt.Sprintf(" (+%d bytes)", f.PayloadSize)
	}
	return strings.TrimSpace(s)
}

// New describes an engine trace event.
func New(ev engine.TraceEvent) Frame {
	f := Frame{Conn: ev.Conn.ID(), Incoming: ev.Incoming, Channel: ev.Channel, PayloadSize: ev.PayloadSize, Performative: "empty"}
	if ev.Body != nil {
		name := reflect.TypeOf(ev.Body).Elem().Name()
		f.Performative = strings.ToLower(strings.TrimPrefix(name, "SASL"))
		f.Fields = formatFields(reflect.ValueOf(ev.Body))
	}
	return f
}

// formatFields prints the non-zero fields of a struct (through pointers) compactly.
func formatFields(v reflect.Value) string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "<nil>"
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("%x", v.Bytes())
		}
		return fmt.Sprint(v.Interface())
	default:
		return fmt.Sprint(v.Interface())
	}
	var parts []string
	for i := range v.NumField() {
		fv := v.Field(i)
		if !v.Type().Field(i).IsExported() || fv.IsZero() {
			continue
		}
		s := formatFields(fv)
		if inner := structOf(fv); inner.IsValid() {
			s = strings.ToLower(inner.Type().Name()) + "{" + s + "}"
		}
		parts = append(parts, v.Type().Field(i).Name+"="+s)
	}
	return strings.Join(parts, " ")
}

// structOf returns the struct a pointer or interface value leads to, if any.
func structOf(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		return v
	}
	return reflect.Value{}
}
