package wire

import "fmt"

// Message is an AMQP 1.0 annotated message (part 3.2): the bare message and its
// annotations, each section optional. The body is one of: one or more Data sections,
// one or more AMQPSequence sections, or a single AMQPValue (HasValue set, since the
// value itself may be null).
type Message struct {
	Header                *Header
	DeliveryAnnotations   Annotations
	MessageAnnotations    Annotations
	Properties            *Properties
	ApplicationProperties map[string]any
	Data                  [][]byte
	Sequence              [][]any
	Value                 any
	HasValue              bool
	Footer                Annotations
}

// AppendTo appends the message's sections in the order of part 3.2. It reports an error
// when the body mixes kinds.
func (m *Message) AppendTo(b []byte) ([]byte, error) {
	kinds := 0
	for _, set := range []bool{len(m.Data) > 0, len(m.Sequence) > 0, m.HasValue} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return b, fmt.Errorf("amqp encode: message body mixes data, amqp-sequence and amqp-value sections")
	}
	var err error
	if m.Header != nil {
		if b, err = m.Header.AppendTo(b); err != nil {
			return b, err
		}
	}
	if m.DeliveryAnnotations != nil {
		b = AppendDescriptor(b, DescriptorDeliveryAnnotations)
		if b, err = appendAnnotations(b, m.DeliveryAnnotations, 1); err != nil {
			return b, err
		}
	}
	if m.MessageAnnotations != nil {
		b = AppendDescriptor(b, DescriptorMessageAnnotations)
		if b, err = appendAnnotations(b, m.MessageAnnotations, 1); err != nil {
			return b, err
		}
	}
	if m.Properties != nil {
		if b, err = m.Properties.AppendTo(b); err != nil {
			return b, err
		}
	}
	if m.ApplicationProperties != nil {
		b = AppendDescriptor(b, DescriptorApplicationProperties)
		if b, err = AppendAny(b, m.ApplicationProperties); err != nil {
			return b, err
		}
	}
	for _, d := range m.Data {
		b = AppendBinary(AppendDescriptor(b, DescriptorData), d)
	}
	for _, s := range m.Sequence {
		b = AppendDescriptor(b, DescriptorAMQPSequence)
		if s == nil {
			s = []any{}
		}
		if b, err = AppendAny(b, s); err != nil {
			return b, err
		}
	}
	if m.HasValue {
		b = AppendDescriptor(b, DescriptorAMQPValue)
		if b, err = AppendAny(b, m.Value); err != nil {
			return b, err
		}
	}
	if m.Footer != nil {
		b = AppendDescriptor(b, DescriptorFooter)
		if b, err = appendAnnotations(b, m.Footer, 1); err != nil {
			return b, err
		}
	}
	return b, nil
}

// section order ranks: each section must come after those of a lower rank.
func sectionRank(code uint64) int {
	switch code {
	case DescriptorHeader:
		return 0
	case DescriptorDeliveryAnnotations:
		return 1
	case DescriptorMessageAnnotations:
		return 2
	case DescriptorProperties:
		return 3
	case DescriptorApplicationProperties:
		return 4
	case DescriptorData, DescriptorAMQPSequence, DescriptorAMQPValue:
		return 5
	case DescriptorFooter:
		return 6
	}
	return -1
}

// Unmarshal decodes the sections of an encoded message into m, replacing its contents.
// Sections out of order, repeated, unknown, or a body that mixes kinds are errors.
func (m *Message) Unmarshal(b []byte) error {
	*m = Message{}
	d := getDecoder(b)
	defer putDecoder(d)
	rank := -1
	var bodyKind uint64
	for d.Len() > 0 {
		start := d.off
		code, err := d.ReadDescriptor()
		if err != nil {
			return fmt.Errorf("message section at byte %d: %w", start, err)
		}
		r := sectionRank(code)
		if r < 0 {
			return malformed("descriptor 0x%x is not a message section", code)
		}
		if r < rank || (r == rank && r != 5) {
			return malformed("message section %s out of order", DescriptorName(code))
		}
		rank = r
		if r == 5 {
			if bodyKind != 0 && (bodyKind != code || code == DescriptorAMQPValue) {
				return malformed("message body mixes %s and %s", DescriptorName(bodyKind), DescriptorName(code))
			}
			bodyKind = code
		}
		switch code {
		case DescriptorHeader:
			m.Header = &Header{}
			err = d.enterComposite(m.Header)
		case DescriptorDeliveryAnnotations:
			m.DeliveryAnnotations, err = d.ReadAnnotations()
		case DescriptorMessageAnnotations:
			m.MessageAnnotations, err = d.ReadAnnotations()
		case DescriptorProperties:
			m.Properties = &Properties{}
			err = d.enterComposite(m.Properties)
		case DescriptorApplicationProperties:
			m.ApplicationProperties, err = d.ReadStringMap()
		case DescriptorData:
			var data []byte
			data, _, err = d.ReadBinary()
			if data == nil && err == nil {
				data = []byte{}
			}
			m.Data = append(m.Data, data)
		case DescriptorAMQPSequence:
			var v any
			v, err = d.ReadAny()
			if err == nil {
				l, ok := v.([]any)
				switch {
				case v == nil:
					// A null sequence is read as an empty one, which is how AppendTo
					// writes a nil element of Sequence.
					l = []any{}
				case !ok:
					err = malformed("amqp-sequence holds %T, not a list", v)
				}
				m.Sequence = append(m.Sequence, l)
			}
		case DescriptorAMQPValue:
			m.Value, err = d.ReadAny()
			m.HasValue = true
		case DescriptorFooter:
			m.Footer, err = d.ReadAnnotations()
		}
		if err != nil {
			return fmt.Errorf("message section %s: %w", DescriptorName(code), err)
		}
	}
	return nil
}

// ScanMessage reads only the header and properties sections of an encoded message,
// skipping the rest without building it: what an intermediary needs to route (to) and
// to store (durable, ttl). Either result may be nil.
func ScanMessage(b []byte) (*Header, *Properties, error) {
	d := getDecoder(b)
	defer putDecoder(d)
	var h *Header
	var p *Properties
	for d.Len() > 0 {
		code, err := d.ReadDescriptor()
		if err != nil {
			return h, p, err
		}
		switch code {
		case DescriptorHeader:
			h = &Header{}
			if err := d.enterComposite(h); err != nil {
				return h, p, err
			}
		case DescriptorProperties:
			p = &Properties{}
			if err := d.enterComposite(p); err != nil {
				return h, p, err
			}
			return h, p, nil
		case DescriptorDeliveryAnnotations, DescriptorMessageAnnotations:
			if err := d.Skip(); err != nil {
				return h, p, err
			}
		default:
			return h, p, nil // properties come before any later section
		}
	}
	return h, p, nil
}
