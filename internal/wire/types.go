// Package wire is the AMQP 1.0 codec of amqp1kit: the type system of part 1 of the
// specification (every primitive with every encoding, described types, lists, maps and
// arrays), the composite types of parts 2 to 5 (performatives, SASL frames, delivery
// states, termini, errors, message sections) and the frame layout of part 2.3.
//
// The package does no I/O. Encoders append to a caller's byte slice (Append… functions
// and methods) so that a connection can reuse one buffer per write batch; the Decoder
// reads from a byte slice and never panics: hostile lengths, counts and nesting are
// checked against the bytes that remain before anything is allocated.
//
// Go representation of AMQP values, as returned by Decoder.ReadAny and accepted by
// AppendAny:
//
//	null       nil             boolean   bool
//	ubyte      uint8           byte      int8
//	ushort     uint16          short     int16
//	uint       uint32          int       int32
//	ulong      uint64          long      int64
//	float      float32         double    float64
//	decimal32  Decimal32       decimal64 Decimal64    decimal128 Decimal128
//	char       Char            timestamp time.Time (millisecond precision, UTC)
//	uuid       UUID            binary    []byte
//	string     string          symbol    Symbol
//	list       []any           map       *Map (ordered pairs; keys of any type)
//	array      *Array          described *Described
//
// The composite types in spec_gen.go are generated from the specification's XML by
// ./gen (go generate); message.go holds the bare message and its sections.
package wire

import (
	"fmt"
	"time"
)

// Symbol is an AMQP symbol: an ASCII name from a constrained domain.
type Symbol string

// Char is an AMQP char: a single UTF-32BE code point.
type Char rune

// UUID is an AMQP uuid (RFC 4122 section 4.1.2 byte order).
type UUID [16]byte

// String returns the canonical 8-4-4-4-12 hexadecimal form.
func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Decimal32 is an IEEE 754-2008 decimal32 kept as its raw big-endian bytes.
type Decimal32 [4]byte

// Decimal64 is an IEEE 754-2008 decimal64 kept as its raw big-endian bytes.
type Decimal64 [8]byte

// Decimal128 is an IEEE 754-2008 decimal128 kept as its raw big-endian bytes.
type Decimal128 [16]byte

// Described is a described value whose descriptor is not one of the composite types
// this package knows (for example a filter such as apache.org:selector-filter:string).
type Described struct {
	// Descriptor is a Symbol or a uint64 in the usual case; any value is legal.
	Descriptor any
	// Value is the described value.
	Value any
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key   any
	Value any
}

// Map is an AMQP map kept as ordered pairs, so that keys of any AMQP type (including
// binary and lists, which Go maps cannot hold) survive a round trip with their order.
type Map struct {
	Entries []MapEntry
}

// Get returns the value stored under key, comparing keys with ==. Keys that are slices
// are never found by Get.
func (m *Map) Get(key any) (any, bool) {
	if m == nil {
		return nil, false
	}
	for _, e := range m.Entries {
		if comparableEqual(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

// Set replaces the value under key or appends a new pair.
func (m *Map) Set(key, value any) {
	for i, e := range m.Entries {
		if comparableEqual(e.Key, key) {
			m.Entries[i].Value = value
			return
		}
	}
	m.Entries = append(m.Entries, MapEntry{Key: key, Value: value})
}

// Len returns the number of pairs.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.Entries)
}

func comparableEqual(a, b any) (eq bool) {
	defer func() {
		if recover() != nil {
			eq = false
		}
	}()
	return a == b
}

// Array is an AMQP array: a sequence of values that share one constructor.
type Array struct {
	// Code is the format code of the element constructor, one of the Type… constants
	// (for example TypeSym8 or TypeSym32 for symbols). AppendArray picks the widest code
	// of the same type family that the elements need, so Code only needs the family.
	Code byte
	// Descriptor is non-nil for an array of described values: every element is
	// described by it and Values hold the bare values.
	Descriptor any
	// Values are the elements in the Go representation of Code's type.
	Values []any
}

// Fields is the AMQP "fields" type: a map with symbol keys, used for properties,
// info and node properties.
type Fields map[Symbol]any

// Annotations is the map of the message-annotations, delivery-annotations and footer
// sections: keys are Symbol or uint64.
type Annotations map[any]any

// Milliseconds converts an AMQP timestamp to time.Time.
func Milliseconds(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
