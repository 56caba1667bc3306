package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sortedCodes() []uint64 {
	codes := make([]uint64, 0, len(compositeByCode))
	for c := range compositeByCode {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// zeroFieldsAllowed lists fixture fields that are left zero on purpose.
var zeroFieldsAllowed = map[string]bool{
	"Attach.Coordinator": true, // exclusive with Target; covered by TestAttachCoordinator
}

// TestCompositeFixturesComplete makes sure a composite added to the specification
// tables (or a field added to one) cannot escape the round-trip tests.
func TestCompositeFixturesComplete(t *testing.T) {
	fx := compositeFixtures()
	for _, code := range sortedCodes() {
		v, ok := fx[code]
		if !ok {
			t.Errorf("no fixture for %s (0x%x)", DescriptorName(code), code)
			continue
		}
		if v.Descriptor() != code {
			t.Errorf("fixture for 0x%x has descriptor 0x%x", code, v.Descriptor())
		}
		if reflect.TypeOf(v) != reflect.TypeOf(compositeByCode[code]()) {
			t.Errorf("fixture for 0x%x is %T", code, v)
		}
		rv := reflect.ValueOf(v).Elem()
		for i := range rv.NumField() {
			name := rv.Type().Name() + "." + rv.Type().Field(i).Name
			if rv.Field(i).IsZero() && !zeroFieldsAllowed[name] {
				t.Errorf("fixture field %s is zero", name)
			}
		}
	}
	if len(fx) != len(compositeByCode) {
		t.Errorf("%d fixtures for %d composite types", len(fx), len(compositeByCode))
	}
}

// zeroDecoded is what the zero value of a type with a mandatory binary or symbol-array
// field decodes as: the encoder writes the nil slice as an empty one, because null is
// not allowed there.
var zeroDecoded = map[uint64]composite{
	DescriptorDischarge:          &Discharge{TxnID: []byte{}},
	DescriptorDeclared:           &Declared{TxnID: []byte{}},
	DescriptorTransactionalState: &TransactionalState{TxnID: []byte{}},
	DescriptorSASLMechanisms:     &SASLMechanisms{SASLServerMechanisms: []Symbol{}},
	DescriptorSASLChallenge:      &SASLChallenge{Challenge: []byte{}},
	DescriptorSASLResponse:       &SASLResponse{Response: []byte{}},
}

type unmarshaler interface {
	Unmarshal(b []byte) (int, error)
}

// TestCompositeRoundTrip encodes every composite type, filled and zero, and decodes it
// back through ReadAny, the type's own Unmarshal and Skip.
func TestCompositeRoundTrip(t *testing.T) {
	fx := compositeFixtures()
	for _, code := range sortedCodes() {
		for _, v := range []composite{fx[code], compositeByCode[code]()} {
			name := reflect.TypeOf(v).Elem().Name()
			if reflect.ValueOf(v).Elem().IsZero() {
				name += "/zero"
			}
			t.Run(name, func(t *testing.T) {
				if v == nil {
					t.Skip("no fixture (reported by TestCompositeFixturesComplete)")
				}
				enc, err := v.AppendTo([]byte{0xee})
				if err != nil {
					t.Fatalf("AppendTo: %v", err)
				}
				if enc[0] != 0xee {
					t.Fatal("AppendTo overwrote the buffer's bytes")
				}
				enc = enc[1:]
				if got, err := PeekDescriptor(enc); err != nil || got != code {
					t.Fatalf("PeekDescriptor = 0x%x %v, want 0x%x", got, err, code)
				}
				d := NewDecoder(enc)
				back, err := d.ReadAny()
				if err != nil {
					t.Fatalf("ReadAny(% x): %v", enc, err)
				}
				want := v
				if z, ok := zeroDecoded[code]; ok && reflect.ValueOf(v).Elem().IsZero() {
					want = z
				}
				if !equalStrict(back, want) {
					t.Fatalf("ReadAny\n got %#v\nwant %#v", back, want)
				}
				if d.Len() != 0 {
					t.Fatalf("ReadAny left %d bytes", d.Len())
				}
				fresh := compositeByCode[code]()
				n, err := fresh.(unmarshaler).Unmarshal(append(slices.Clip(enc), 0x40))
				if err != nil || n != len(enc) || !equalStrict(fresh, want) {
					t.Fatalf("Unmarshal = %d %v, %#v", n, err, fresh)
				}
				// Unmarshal replaces every field, whatever the value held before.
				reused := fx[code]
				if _, err := reused.(unmarshaler).Unmarshal(enc); err != nil || !equalStrict(reused, want) {
					t.Fatalf("Unmarshal into a filled value: %v, %#v", err, reused)
				}
				d.Reset(enc)
				if err := d.Skip(); err != nil || d.Len() != 0 {
					t.Fatalf("Skip: %v, %d bytes left", err, d.Len())
				}
				// Every strict prefix is refused.
				for i := range enc {
					if _, err := NewDecoder(enc[:i]).ReadAny(); !errors.Is(err, ErrMalformed) {
						t.Fatalf("prefix of %d bytes: %v", i, err)
					}
				}
				// Unmarshal refuses another type's descriptor.
				other := &Accepted{}
				if code == DescriptorAccepted {
					other = nil
				}
				if other != nil {
					ob, _ := other.AppendTo(nil)
					if _, err := fresh.(unmarshaler).Unmarshal(ob); !errors.Is(err, ErrMalformed) {
						t.Fatalf("Unmarshal of an accepted: %v", err)
					}
				}
			})
		}
	}
}

func frameParts(t *testing.T, frame []byte) (FrameHeader, []byte) {
	t.Helper()
	h, err := ParseFrameHeader(frame, 0)
	if err != nil {
		t.Fatalf("ParseFrameHeader(% x): %v", frame[:min(8, len(frame))], err)
	}
	if int(h.Size) != len(frame) {
		t.Fatalf("frame size %d, frame has %d bytes", h.Size, len(frame))
	}
	return h, frame[int(h.DataOff)*4:]
}

func TestPerformativeFrames(t *testing.T) {
	fx := compositeFixtures()
	payload := []byte("\x00\x53\x75\xa0\x03abc")
	n := 0
	for _, code := range sortedCodes() {
		p, ok := fx[code].(Performative)
		if !ok {
			continue
		}
		n++
		t.Run(DescriptorName(code), func(t *testing.T) {
			var pl []byte
			if code == DescriptorTransfer {
				pl = payload
			}
			frame, err := AppendFrame([]byte("pre"), FrameAMQP, 0x1234, p, pl)
			if err != nil {
				t.Fatal(err)
			}
			if string(frame[:3]) != "pre" {
				t.Fatal("AppendFrame overwrote the buffer")
			}
			frame = frame[3:]
			if got := binary.BigEndian.Uint32(frame); int(got) != len(frame) {
				t.Fatalf("size field %d, frame of %d bytes", got, len(frame))
			}
			if !bytes.Equal(frame[4:8], []byte{2, FrameAMQP, 0x12, 0x34}) {
				t.Fatalf("header % x", frame[:8])
			}
			h, body := frameParts(t, frame)
			if h.Type != FrameAMQP || h.Channel != 0x1234 || h.DataOff != 2 {
				t.Fatalf("header %+v", h)
			}
			got, rest, err := DecodePerformative(body)
			if err != nil {
				t.Fatalf("DecodePerformative: %v", err)
			}
			if !equalStrict(got, p) {
				t.Fatalf("DecodePerformative\n got %#v\nwant %#v", got, p)
			}
			if !bytes.Equal(rest, pl) {
				t.Fatalf("rest % x, want % x", rest, pl)
			}
			if got.Descriptor() != code {
				t.Fatalf("Descriptor() = 0x%x", got.Descriptor())
			}
			if _, err := DecodeSASLFrame(body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeSASLFrame of a performative: %v", err)
			}
			// Truncation anywhere inside the performative is an error.
			plen := len(body) - len(pl)
			for i := range plen {
				if _, _, err := DecodePerformative(body[:i]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("performative cut at %d of %d: %v", i, plen, err)
				}
			}
		})
	}
	if n != 9 {
		t.Errorf("%d performatives, want 9", n)
	}
}

func TestSASLFrames(t *testing.T) {
	fx := compositeFixtures()
	n := 0
	for _, code := range sortedCodes() {
		s, ok := fx[code].(SASLFrame)
		if !ok {
			continue
		}
		n++
		t.Run(DescriptorName(code), func(t *testing.T) {
			frame, err := AppendFrame(nil, FrameSASL, 0, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			h, body := frameParts(t, frame)
			if h.Type != FrameSASL {
				t.Fatalf("frame type %d", h.Type)
			}
			got, err := DecodeSASLFrame(body)
			if err != nil || !equalStrict(got, s) {
				t.Fatalf("DecodeSASLFrame = %#v, %v", got, err)
			}
			if _, _, err := DecodePerformative(body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodePerformative of a SASL frame: %v", err)
			}
			if _, err := DecodeSASLFrame(append(slices.Clip(body), 0x40)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeSASLFrame with a trailing byte: %v", err)
			}
			for i := range body {
				if _, err := DecodeSASLFrame(body[:i]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("cut at %d: %v", i, err)
				}
			}
		})
	}
	if n != 5 {
		t.Errorf("%d SASL frames, want 5", n)
	}
	// Neither decoder takes a type that is not a frame body.
	for _, v := range []Marshaler{&Source{}, &Accepted{}, &Header{}} {
		b, _ := v.AppendTo(nil)
		if _, err := DecodeSASLFrame(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeSASLFrame(%T): %v", v, err)
		}
		if _, _, err := DecodePerformative(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodePerformative(%T): %v", v, err)
		}
	}
	for _, h := range []string{"00 53 75 a0 00", "00 a3 03 783a79 45", "45", ""} {
		if _, _, err := DecodePerformative(hx(h)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodePerformative(%s): %v", h, err)
		}
	}
}

// TestFrameGoldenBytes pins the exact encoding of common frames.
func TestFrameGoldenBytes(t *testing.T) {
	cases := []struct {
		name string
		body Marshaler
		typ  byte
		ch   uint16
		pl   []byte
		hex  string
	}{
		{"heartbeat", nil, FrameAMQP, 0, nil, "00000008 02 00 0000"},
		{"open", &Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 65535}, FrameAMQP, 0, nil,
			"00000011 02 00 0000 00 53 10 c0 04 01 a1 01 63"},
		{"open with limits", &Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 1, IdleTimeOut: 30000}, FrameAMQP, 0, nil,
			"0000001f 02 00 0000 00 53 10 c0 12 05 a10163 40 70 00000200 60 0001 70 00007530"},
		{"begin", &Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 4294967295}, FrameAMQP, 1, nil,
			"00000014 02 00 0001 00 53 11 c0 07 04 40 43 5264 5264"},
		{"transfer", &Transfer{Handle: 0, DeliveryID: ptr(uint32(0)), DeliveryTag: []byte{1}, MessageFormat: ptr(uint32(0))},
			FrameAMQP, 0, []byte{0xaa}, "00000015 02 00 0000 00 53 14 c0 07 04 43 43 a00101 43 aa"},
		{"settled transfer", &Transfer{Handle: 1, Settled: true}, FrameAMQP, 0, nil,
			"00000014 02 00 0000 00 53 14 c0 07 05 5201 40 40 40 41"},
		{"flow", &Flow{IncomingWindow: 2048, NextOutgoingID: 1, OutgoingWindow: 2048, Handle: ptr(uint32(0)),
			DeliveryCount: ptr(uint32(0)), LinkCredit: ptr(uint32(100)), Drain: true}, FrameAMQP, 0, nil,
			"00000021 02 00 0000 00 53 13 c0 14 09 40 70 00000800 5201 70 00000800 43 43 5264 40 41"},
		{"disposition accepted", &Disposition{Role: RoleReceiver, First: 3, Settled: true, State: &Accepted{}}, FrameAMQP, 0, nil,
			"00000017 02 00 0000 00 53 15 c0 0a 05 41 5203 40 41 00 53 24 45"},
		{"detach closed", &Detach{Handle: 0, Closed: true}, FrameAMQP, 0, nil, "00000010 02 00 0000 00 53 16 c0 03 02 43 41"},
		{"end", &End{}, FrameAMQP, 0, nil, "0000000c 02 00 0000 00 53 17 45"},
		{"close with error", &Close{Error: &Error{Condition: ErrCondDecodeError}}, FrameAMQP, 0, nil,
			"00000027 02 00 0000 00 53 18 c0 1a 01 00 53 1d c0 14 01 a3 11 616d71703a6465636f64652d6572726f72"},
		{"sasl-mechanisms", &SASLMechanisms{SASLServerMechanisms: []Symbol{"ANONYMOUS"}}, FrameSASL, 0, nil,
			"0000001c 02 01 0000 00 53 40 c0 0f 01 e0 0c 01 a3 09 414e4f4e594d4f5553"},
		{"sasl-outcome", &SASLOutcome{Code: SASLCodeOK}, FrameSASL, 0, nil, "00000010 02 01 0000 00 53 44 c0 03 01 50 00"},
	}
	for _, c := range cases {
		got, err := AppendFrame(nil, c.typ, c.ch, c.body, c.pl)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := hx(c.hex); !bytes.Equal(got, want) {
			t.Errorf("%s\n got % x\nwant % x", c.name, got, want)
		}
	}
}

func decodeBodyHex(t *testing.T, h string) any {
	t.Helper()
	v, err := NewDecoder(hx(h)).ReadAny()
	if err != nil {
		t.Fatalf("ReadAny(%s): %v", h, err)
	}
	return v
}

// TestDefaultsOnDecode: a null or absent field takes the specification's default.
func TestDefaultsOnDecode(t *testing.T) {
	cases := []struct {
		name, hex string
		want      any
	}{
		{"open: max-frame-size and channel-max null", "00 53 10 c0 07 04 a10163 40 40 40",
			&Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 65535}},
		{"open: only container-id", "00 53 10 c0 04 01 a10163",
			&Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 65535}},
		{"begin: handle-max null", "00 53 11 c0 06 05 40 43 43 43 40",
			&Begin{HandleMax: 4294967295}},
		{"attach: settle modes null", "00 53 12 c0 08 05 a1016c 43 41 40 40",
			&Attach{Name: "l", Role: RoleReceiver, SndSettleMode: SenderSettleModeMixed, RcvSettleMode: ReceiverSettleModeFirst}},
		{"attach: settle modes absent", "00 53 12 c0 06 03 a1016c 43 42",
			&Attach{Name: "l", SndSettleMode: SenderSettleModeMixed}},
		{"source: durable and expiry-policy null", "00 53 28 c0 06 03 a10161 40 40",
			&Source{Address: "a", Durable: TerminusDurabilityNone, ExpiryPolicy: TerminusExpiryPolicySessionEnd}},
		{"source: empty list", "00 53 28 45", &Source{ExpiryPolicy: TerminusExpiryPolicySessionEnd}},
		{"source: null list", "00 53 28 40", &Source{ExpiryPolicy: TerminusExpiryPolicySessionEnd}},
		{"target: empty list", "00 53 29 45", &Target{ExpiryPolicy: TerminusExpiryPolicySessionEnd}},
		{"transfer: booleans null", "00 53 14 c0 0c 0b 43 40 40 40 40 40 40 40 40 40 40", &Transfer{}},
		{"header: all null", "00 53 70 c0 06 05 40 40 40 40 40", &Header{}},
	}
	for _, c := range cases {
		if got := decodeBodyHex(t, c.hex); !equalStrict(got, c.want) {
			t.Errorf("%s\n got %#v\nwant %#v", c.name, got, c.want)
		}
	}
	// And the encoder leaves defaults out.
	enc, _ := (&Attach{Name: "l", SndSettleMode: SenderSettleModeMixed}).AppendTo(nil)
	if want := hx("00 53 12 c0 06 03 a1016c 43 42"); !bytes.Equal(enc, want) {
		t.Errorf("attach with default settle modes\n got % x\nwant % x", enc, want)
	}
	enc, _ = (&Source{Address: "a", ExpiryPolicy: TerminusExpiryPolicySessionEnd}).AppendTo(nil)
	if want := hx("00 53 28 c0 04 01 a10161"); !bytes.Equal(enc, want) {
		t.Errorf("source with default expiry policy\n got % x\nwant % x", enc, want)
	}
}

// TestMandatoryFields: a mandatory field that is null or absent is an error that wraps
// ErrMalformed; an empty value is not absent.
func TestMandatoryFields(t *testing.T) {
	bad := []struct{ name, hex string }{
		{"open: empty list", "00 53 10 45"},
		{"open: null container-id", "00 53 10 c0 02 01 40"},
		{"begin: next-outgoing-id null", "00 53 11 c0 05 04 40 40 43 43"},
		{"begin: outgoing-window absent", "00 53 11 c0 04 03 40 43 43"},
		{"attach: name null", "00 53 12 c0 04 03 40 43 41"},
		{"attach: handle null", "00 53 12 c0 06 03 a1016c 40 41"},
		{"attach: role absent", "00 53 12 c0 05 02 a1016c 43"},
		{"flow: incoming-window null", "00 53 13 c0 05 04 40 40 43 43"},
		{"flow: next-outgoing-id null", "00 53 13 c0 05 04 40 43 40 43"},
		{"flow: outgoing-window absent", "00 53 13 c0 04 03 40 43 43"},
		{"transfer: empty list", "00 53 14 45"},
		{"transfer: handle null", "00 53 14 c0 02 01 40"},
		{"disposition: first absent", "00 53 15 c0 02 01 41"},
		{"disposition: role null", "00 53 15 c0 03 02 40 43"},
		{"detach: empty list", "00 53 16 45"},
		{"error: condition null", "00 53 1d c0 02 01 40"},
		{"error: empty list", "00 53 1d 45"},
		{"received: section-offset absent", "00 53 23 c0 02 01 43"},
		{"sasl-mechanisms: null", "00 53 40 c0 02 01 40"},
		{"sasl-init: mechanism absent", "00 53 41 45"},
		{"sasl-challenge: null", "00 53 42 c0 02 01 40"},
		{"sasl-response: absent", "00 53 43 45"},
		{"sasl-outcome: code null", "00 53 44 c0 02 01 40"},
		{"discharge: txn-id null", "00 53 32 c0 02 01 40"},
		{"declared: absent", "00 53 33 45"},
		{"transactional-state: txn-id null", "00 53 34 c0 02 01 40"},
		{"nested: detach with an error missing its condition", "00 53 16 c0 07 03 43 41 00 53 1d 45"},
	}
	for _, c := range bad {
		_, err := NewDecoder(hx(c.hex)).ReadAny()
		requireMalformed(t, err, c.name)
		if err != nil && !strings.Contains(err.Error(), "mandatory") {
			t.Errorf("%s: %v does not name the mandatory field", c.name, err)
		}
	}
	// Empty values of mandatory fields are values, and the encoder writes them.
	empty := []any{
		&Open{},
		&Attach{},
		&Error{},
		&SASLInit{},
		&SASLMechanisms{SASLServerMechanisms: []Symbol{}},
		&SASLChallenge{Challenge: []byte{}},
		&Declared{TxnID: []byte{}},
	}
	for _, v := range empty {
		b, err := AppendAny(nil, v)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		back, err := NewDecoder(b).ReadAny()
		if err != nil {
			t.Errorf("%T with empty mandatory fields encodes as % x, which does not decode: %v", v, b, err)
			continue
		}
		if !equalStrict(back, v) {
			t.Errorf("%T: got back %#v", v, back)
		}
	}
	// A nil mandatory binary or symbol list is written as an empty one.
	for v, want := range map[Marshaler]string{
		&SASLMechanisms{}: "00 53 40 c0 05 01 e0 02 00 a3",
		&SASLResponse{}:   "00 53 43 c0 03 01 a0 00",
		&Discharge{}:      "00 53 32 c0 03 01 a0 00",
		&Error{}:          "00 53 1d c0 03 01 a3 00",
	} {
		b, _ := v.AppendTo(nil)
		if !bytes.Equal(b, hx(want)) {
			t.Errorf("%T\n got % x\nwant %s", v, b, want)
		}
	}
}

func TestExtraFieldsSkipped(t *testing.T) {
	cases := []struct {
		name, hex string
		want      any
	}{
		{"end with two extra fields", "00 53 17 c0 06 03 40 a10178 45", &End{}},
		{"accepted with fields", "00 53 24 c0 03 02 40 40", &Accepted{}},
		{"released with a list32 of extras", "00 53 26 d0 0000000c 00000002 c0 02 01 40 00 53 99 40", &Released{}},
		{"detach with an extra described field", "00 53 16 c0 0a 04 43 41 40 00 53 99 a10178", &Detach{Closed: true}},
		{"received with an extra field", "00 53 23 c0 05 03 43 44 a000", &Received{}},
	}
	for _, c := range cases {
		if got := decodeBodyHex(t, c.hex); !equalStrict(got, c.want) {
			t.Errorf("%s\n got %#v\nwant %#v", c.name, got, c.want)
		}
	}
	// A malformed extra field is still an error.
	for _, h := range []string{"00 53 17 c0 03 02 40 ff", "00 53 17 c0 04 02 40 a1 05"} {
		_, err := NewDecoder(hx(h)).ReadAny()
		requireMalformed(t, err, h)
	}
}

func TestSymbolicDescriptors(t *testing.T) {
	open := "00 a3 0e 616d71703a6f70656e3a6c697374 c0 04 01 a10163"
	p, rest, err := DecodePerformative(hx(open))
	if err != nil || len(rest) != 0 {
		t.Fatalf("DecodePerformative(symbolic open): %v", err)
	}
	if !equalStrict(p, &Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 65535}) {
		t.Fatalf("got %#v", p)
	}
	// transfer with state amqp:accepted:list
	tr := "00 a3 12 616d71703a7472616e736665723a6c697374 c0 1f 08 43 43 a000 43 40 40 40 00 a3 12 616d71703a61636365707465643a6c697374 45"
	p, _, err = DecodePerformative(hx(tr))
	if err != nil {
		t.Fatalf("symbolic transfer: %v", err)
	}
	if s := p.(*Transfer).State; !equalStrict(s, &Accepted{}) {
		t.Fatalf("state %#v", s)
	}
	// Every descriptor of the tables, numeric or symbolic, names the same type.
	for sym, code := range codeBySymbol {
		if DescriptorName(code) != string(sym) {
			t.Errorf("DescriptorName(0x%x) = %q, want %q", code, DescriptorName(code), sym)
		}
		if f := compositeByCode[code]; f != nil {
			b := append(AppendSymbol([]byte{TypeDescribed}, sym), TypeList0)
			v, err := NewDecoder(b).ReadAny()
			if err == nil && reflect.TypeOf(v) != reflect.TypeOf(f()) {
				t.Errorf("%s decodes as %T", sym, v)
			}
			if got, err := PeekDescriptor(b); err != nil || got != code {
				t.Errorf("PeekDescriptor(%s) = 0x%x %v", sym, got, err)
			}
		}
	}
	if DescriptorName(0xdead) != "" {
		t.Error("DescriptorName of an unknown code is not empty")
	}
	// An unknown symbolic descriptor is kept as a Described value.
	if v := decodeBodyHex(t, "00 a3 09 616d71703a6e6f7065 45"); !equalStrict(v, &Described{Descriptor: Symbol("amqp:nope"), Value: []any{}}) {
		t.Errorf("unknown symbolic descriptor: %#v", v)
	}
}

func TestSingleSymbolForArray(t *testing.T) {
	cases := []struct {
		name, hex string
		want      any
	}{
		{"open offered-capabilities", "00 53 10 c0 0f 08 a10163 40 40 40 40 40 40 a303616263",
			&Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 65535, OfferedCapabilities: []Symbol{"abc"}}},
		{"sasl-mechanisms", "00 53 40 c0 08 01 a305 504c41494e", &SASLMechanisms{SASLServerMechanisms: []Symbol{"PLAIN"}}},
		{"source capabilities and outcomes", "00 53 28 c0 13 0b 40 40 40 40 40 40 40 40 40 a30178 b300000001 79",
			&Source{ExpiryPolicy: TerminusExpiryPolicySessionEnd, Outcomes: []Symbol{"x"}, Capabilities: []Symbol{"y"}}},
	}
	for _, c := range cases {
		if got := decodeBodyHex(t, c.hex); !equalStrict(got, c.want) {
			t.Errorf("%s\n got %#v\nwant %#v", c.name, got, c.want)
		}
	}
}

func TestAttachCoordinator(t *testing.T) {
	a := &Attach{Name: "txn", Handle: 0, Role: RoleSender, SndSettleMode: SenderSettleModeMixed,
		Source:      &Source{Outcomes: []Symbol{"amqp:accepted:list"}, ExpiryPolicy: TerminusExpiryPolicySessionEnd},
		Coordinator: &Coordinator{Capabilities: []Symbol{Symbol(TxnCapabilityLocalTransactions)}}}
	frame, err := AppendFrame(nil, FrameAMQP, 0, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, body := frameParts(t, frame)
	if !bytes.Contains(body, hx("00 53 30")) {
		t.Fatalf("no coordinator descriptor in % x", body)
	}
	p, _, err := DecodePerformative(body)
	if err != nil || !equalStrict(p, a) {
		t.Fatalf("got %#v, %v", p, err)
	}
	got := p.(*Attach)
	if got.Target != nil || got.Coordinator == nil {
		t.Fatalf("Target %v Coordinator %v", got.Target, got.Coordinator)
	}
	// With both set, the coordinator is what goes on the wire.
	both := *a
	both.Target = &Target{Address: "ignored"}
	b, _ := both.AppendTo(nil)
	back := decodeBodyHex(t, string(hexOf(b))).(*Attach)
	if back.Target != nil || back.Coordinator == nil {
		t.Fatalf("both set: Target %v Coordinator %v", back.Target, back.Coordinator)
	}
	// A target field holding anything else is an error.
	for _, h := range []string{
		"00 53 12 c0 0d 07 a1016c 43 41 40 40 40 00 53 28 45",
		"00 53 12 c0 0c 07 a1016c 43 41 40 40 40 a10178",
	} {
		_, err := NewDecoder(hx(h)).ReadAny()
		requireMalformed(t, err, "attach target "+h)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestSourceFilterAndDynamicNodeProperties(t *testing.T) {
	src := fixtureSource()
	b, err := src.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	// the selector filter is on the wire as a described value with a symbolic descriptor
	if !bytes.Contains(b, cat([]byte{0x00, TypeSym8, 33}, []byte("apache.org:selector-filter:string"), hx("a1 0e"), []byte("colour = 'red'"))) {
		t.Fatalf("selector filter not found in % x", b)
	}
	back := decodeBodyHex(t, string(hexOf(b))).(*Source)
	f, ok := back.Filter["apache.org:selector-filter:string"].(*Described)
	if !ok || f.Descriptor != Symbol("apache.org:selector-filter:string") || f.Value != "colour = 'red'" {
		t.Fatalf("filter %#v", back.Filter)
	}
	if !back.Dynamic {
		t.Fatal("dynamic lost")
	}
	if _, ok := back.DynamicNodeProperties["lifetime-policy"].(*DeleteOnClose); !ok {
		t.Fatalf("lifetime-policy %#v", back.DynamicNodeProperties["lifetime-policy"])
	}
	if mo, ok := back.DefaultOutcome.(*Modified); !ok || !mo.DeliveryFailed {
		t.Fatalf("default outcome %#v", back.DefaultOutcome)
	}
	// A dynamic receiver's source as the Python driver sends it: address null,
	// dynamic true, no node properties.
	v := decodeBodyHex(t, "00 53 28 c0 06 05 40 40 40 40 41")
	if s := v.(*Source); !s.Dynamic || s.Address != "" || s.ExpiryPolicy != TerminusExpiryPolicySessionEnd {
		t.Fatalf("dynamic source %#v", s)
	}
}

// TestFieldTypes: wrong types are refused, narrower encodings of the right type taken.
func TestFieldTypes(t *testing.T) {
	ok := []struct {
		name, hex string
		want      any
	}{
		{"max-frame-size as ushort", "00 53 10 c0 08 03 a10163 40 60 0200",
			&Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 65535}},
		{"channel-max as ubyte", "00 53 10 c0 08 04 a10163 40 40 50 07",
			&Open{ContainerID: "c", MaxFrameSize: 4294967295, ChannelMax: 7}},
		{"handle as ulong", "00 53 16 c0 0a 01 80 0000000000000005", &Detach{Handle: 5}},
		{"target address as symbol", "00 53 29 c0 04 01 a3 01 61", &Target{Address: "a", ExpiryPolicy: TerminusExpiryPolicySessionEnd}},
		{"settled as boolean 0x56", "00 53 15 c0 06 04 41 43 40 56 01", &Disposition{Role: RoleReceiver, Settled: true}},
		{"delivery state accepted", "00 53 15 c0 09 05 41 43 40 41 00 53 24 45", &Disposition{Role: RoleReceiver, Settled: true, State: &Accepted{}}},
		{"delivery state received", "00 53 15 c0 0d 05 41 43 40 41 00 53 23 c0 03 02 43 44",
			&Disposition{Role: RoleReceiver, Settled: true, State: &Received{}}},
	}
	for _, c := range ok {
		if got := decodeBodyHex(t, c.hex); !equalStrict(got, c.want) {
			t.Errorf("%s\n got %#v\nwant %#v", c.name, got, c.want)
		}
	}
	bad := []struct{ name, hex string }{
		{"container-id as symbol", "00 53 10 c0 04 01 a3 01 63"},
		{"container-id as uint", "00 53 10 c0 03 01 52 01"},
		{"max-frame-size as string", "00 53 10 c0 07 03 a10163 40 a1 01 31"},
		{"max-frame-size as int", "00 53 10 c0 06 03 a10163 40 54 01"},
		{"channel-max beyond ushort", "00 53 10 c0 0a 04 a10163 40 40 70 00010000"},
		{"handle beyond uint", "00 53 16 c0 0a 01 80 0000000100000000"},
		{"role as ubyte", "00 53 12 c0 07 03 a1016c 43 50 01"},
		{"attach source holding a target", "00 53 12 c0 0b 06 a1016c 43 41 40 40 00 53 29 45"},
		{"transfer state holding an open", "00 53 14 c0 11 08 43 40 40 40 40 40 40 00 53 10 c0 04 01 a10163"},
		{"transfer state unknown descriptor", "00 53 14 c0 0b 08 43 40 40 40 40 40 40 00 53 99 45"},
		{"default-outcome holding received", "00 53 28 c0 11 09 40 40 40 40 40 40 40 40 00 53 23 c0 03 02 43 44"},
		{"error info not a map", "00 53 1d c0 06 03 a3 01 78 40 45"},
		{"fields with a numeric key", "00 53 10 c0 11 0a a10163 40 40 40 40 40 40 40 40 c1 04 02 5301 40"},
		{"message-id as a list", "00 53 73 c0 02 01 45"},
		{"message-id as a symbol", "00 53 73 c0 04 01 a3 01 61"},
		{"unsettled not a map", "00 53 12 c0 0b 08 a1016c 43 41 40 40 40 40 45"},
		{"field list is a map", "00 53 10 c1 01 00"},
		{"declare global-id truncated", "00 53 31 c0 02 01 a1"},
	}
	for _, c := range bad {
		_, err := NewDecoder(hx(c.hex)).ReadAny()
		requireMalformed(t, err, c.name)
	}
}

func TestEnumsAndErrors(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		RoleSender:                              "sender",
		RoleReceiver:                            "receiver",
		SenderSettleModeMixed:                   "mixed",
		SenderSettleMode(7):                     "sender-settle-mode(7)",
		ReceiverSettleModeSecond:                "second",
		SASLCodeSysTemp:                         "sys-temp",
		TerminusDurabilityUnsettledState:        "unsettled-state",
		uuidFixture:                             "12345678-9abc-def0-0123-456789abcdef",
		ProtocolHeader{ID: ProtoSASL, Major: 1}: "AMQP 3 1.0.0",
	} {
		if got := v.String(); got != want {
			t.Errorf("%T String() = %q, want %q", v, got, want)
		}
	}
	var err error = &Error{Condition: ErrCondNotFound, Description: "no node"}
	if err.Error() != "amqp:not-found: no node" {
		t.Errorf("Error() = %q", err.Error())
	}
	if (&Error{Condition: ErrCondStolen}).Error() != "amqp:link:stolen" {
		t.Error("Error() without a description")
	}
	if (*Error)(nil).Error() != "<nil>" {
		t.Error("nil *Error")
	}
}

// TestAcceptedIsShared documents that decoded Accepted states in frames may share one
// value: it has no fields to change.
func TestAcceptedIsShared(t *testing.T) {
	b, _ := (&Disposition{Role: RoleReceiver, State: &Accepted{}}).AppendTo(nil)
	p1, _, _ := DecodePerformative(b)
	p2, _, _ := DecodePerformative(b)
	s1, ok1 := p1.(*Disposition).State.(*Accepted)
	s2, ok2 := p2.(*Disposition).State.(*Accepted)
	if !ok1 || !ok2 || s1 != s2 {
		t.Fatalf("accepted states %p %p", s1, s2)
	}
}
