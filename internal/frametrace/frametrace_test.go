package frametrace

import (
	"reflect"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

func TestFormatFieldsNamesNestedStates(t *testing.T) {
	id := uint32(7)
	got := formatFields(reflect.ValueOf(&wire.Disposition{Role: wire.RoleReceiver, First: 3, Last: &id, Settled: true, State: &wire.Accepted{}}))
	want := "Role=receiver First=3 Last=7 Settled=true State=accepted{}"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = formatFields(reflect.ValueOf(&wire.Transfer{Handle: 1, DeliveryTag: []byte{0xab}, State: &wire.Rejected{Error: &wire.Error{Condition: "amqp:not-found"}}}))
	want = "Handle=1 DeliveryTag=ab State=rejected{Error=error{Condition=amqp:not-found}}"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if s := (Frame{Conn: 2, Incoming: true, Performative: "flow", Fields: "Echo=true", PayloadSize: 0}).String(); s != "conn 2 <- ch 0 flow Echo=true" {
		t.Fatalf("String() = %q", s)
	}
}
