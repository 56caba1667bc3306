package wire

//go:generate go run ./gen -out spec_gen.go

import (
	"fmt"
	"strconv"
)

// composite is implemented by every generated composite type.
type composite interface {
	Marshaler
	Descriptor() uint64
	decodeValue(d *Decoder) error
}

// Performative is one of the nine frame bodies of part 2.7 (Open, Begin, Attach, Flow,
// Transfer, Disposition, Detach, End, Close).
type Performative interface {
	Marshaler
	Descriptor() uint64
	performative()
}

// SASLFrame is one of the five SASL frame bodies of part 5.3 (SASLMechanisms, SASLInit,
// SASLChallenge, SASLResponse, SASLOutcome).
type SASLFrame interface {
	Marshaler
	Descriptor() uint64
	saslFrame()
}

// DeliveryState is a delivery state (Received, TransactionalState) or an outcome.
type DeliveryState interface {
	Marshaler
	Descriptor() uint64
	deliveryState()
}

// Outcome is a terminal delivery state: Accepted, Rejected, Released, Modified or
// Declared.
type Outcome interface {
	DeliveryState
	outcome()
}

// Error implements the error interface: "condition: description".
func (x *Error) Error() string {
	if x == nil {
		return "<nil>"
	}
	if x.Description == "" {
		return string(x.Condition)
	}
	return string(x.Condition) + ": " + x.Description
}

func fieldError(typ, field string, err error) error {
	return fmt.Errorf("%s.%s: %w", typ, field, err)
}

func missingField(typ, field string) error {
	return malformed("%s: mandatory field %s is null or absent", typ, field)
}

func wrongDescriptor(want string, got uint64) error {
	if n := DescriptorName(got); n != "" {
		return malformed("expected %s, found %s", want, n)
	}
	return malformed("expected %s, found descriptor 0x%x", want, got)
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// skipRest skips list elements beyond the ones a type knows (later versions of the
// specification may add fields) and checks the list ends where its size says.
func (d *Decoder) skipRest(n, known, end int) error {
	for i := known; i < n; i++ {
		if err := d.Skip(); err != nil {
			return err
		}
	}
	return d.expectEnd(end)
}

// decodeComposite reads a described value that must be the composite T (or null, which
// gives T's zero value, a nil pointer).
func decodeComposite[T composite](d *Decoder, want uint64) (T, error) {
	var zero T
	c, err := d.PeekCode()
	if err != nil {
		return zero, err
	}
	if c == TypeNull {
		d.off++
		return zero, nil
	}
	code, err := d.ReadDescriptor()
	if err != nil {
		return zero, err
	}
	if code != want {
		return zero, wrongDescriptor(DescriptorName(want), code)
	}
	v := compositeByCode[want]().(T)
	if err := d.enterComposite(v); err != nil {
		return zero, err
	}
	return v, nil
}

func (d *Decoder) enterComposite(v composite) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	return v.decodeValue(d)
}

// decodeDeliveryState reads a delivery state or null.
func decodeDeliveryState(d *Decoder) (DeliveryState, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	if c == TypeNull {
		d.off++
		return nil, nil
	}
	code, err := d.ReadDescriptor()
	if err != nil {
		return nil, err
	}
	switch code {
	case DescriptorAccepted:
		// The common case: no allocation.
		n, end, err := d.ReadListHeader()
		if err != nil {
			return nil, err
		}
		if err := d.skipRest(n, 0, end); err != nil {
			return nil, err
		}
		return accepted, nil
	case DescriptorReceived, DescriptorRejected, DescriptorReleased, DescriptorModified,
		DescriptorDeclared, DescriptorTransactionalState:
		v := compositeByCode[code]()
		if err := d.enterComposite(v); err != nil {
			return nil, err
		}
		return v.(DeliveryState), nil
	}
	return nil, malformed("descriptor 0x%x is not a delivery state", code)
}

// accepted is shared by every decoded Accepted state; it has no fields to change.
var accepted = &Accepted{}

// decodeOutcome reads an outcome or null.
func decodeOutcome(d *Decoder) (Outcome, error) {
	s, err := decodeDeliveryState(d)
	if err != nil || s == nil {
		return nil, err
	}
	o, ok := s.(Outcome)
	if !ok {
		return nil, malformed("delivery state %T is not an outcome", s)
	}
	return o, nil
}

// decodeTarget reads an attach's target: a Target, a transaction Coordinator, or null.
func decodeTarget(d *Decoder) (*Target, *Coordinator, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, nil, err
	}
	if c == TypeNull {
		d.off++
		return nil, nil, nil
	}
	code, err := d.ReadDescriptor()
	if err != nil {
		return nil, nil, err
	}
	switch code {
	case DescriptorTarget:
		t := &Target{}
		return t, nil, d.enterComposite(t)
	case DescriptorCoordinator:
		co := &Coordinator{}
		return nil, co, d.enterComposite(co)
	}
	return nil, nil, malformed("descriptor 0x%x is not a target", code)
}

// readMessageID reads a message-id or correlation-id: ulong, uuid, binary or string
// (null gives nil).
func readMessageID(d *Decoder) (any, error) {
	v, err := d.ReadAny()
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case nil, uint64, UUID, []byte, string:
		return v, nil
	}
	return nil, malformed("message-id of type %T", v)
}

func appendMessageID(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case uint64:
		return AppendUlong(b, v), nil
	case UUID:
		return AppendUUID(b, v), nil
	case []byte:
		return AppendBinary(b, v), nil
	case string:
		return appendUTF8(b, v)
	}
	return b, fmt.Errorf("amqp encode: message-id of Go type %T (want uint64, UUID, []byte or string)", v)
}

// readMap reads a map or null into *Map.
func readMap(d *Decoder) (*Map, error) {
	v, err := d.ReadAny()
	if err != nil {
		return nil, err
	}
	switch m := v.(type) {
	case nil:
		return nil, nil
	case *Map:
		return m, nil
	}
	return nil, malformed("expected a map, found %T", v)
}

// nonNilSymbols makes a mandatory multiple-symbol field that the caller left nil encode
// as an empty array rather than as null.
func nonNilSymbols(v []Symbol) []Symbol {
	if v == nil {
		return []Symbol{}
	}
	return v
}
