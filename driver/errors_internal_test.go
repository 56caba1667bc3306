package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	amqp "github.com/Azure/go-amqp"
)

func TestDriverErrorText(t *testing.T) {
	remote := &amqp.Error{Condition: amqp.ErrCondNotFound, Description: "no such node"}
	cases := []struct {
		err  error
		want string
	}{
		{&driverError{kind: ErrTimeout}, "amqp1kit driver: messaging timeout"},
		{&driverError{op: "call m", kind: ErrTimeout, msg: "no reply in time"}, "amqp1kit driver: call m: messaging timeout: no reply in time"},
		// The inner error's prefix is left out, whatever its type.
		{opError("call m", &driverError{kind: ErrDeliveryFailure, msg: "send retries exhausted", err: io.EOF}),
			"amqp1kit driver: call m: message delivery failure: send retries exhausted: EOF"},
		{opError("cast m", ErrClosed), "amqp1kit driver: cast m: closed"},
		{opError("call m", &ConfigError{Field: "sasl_mechanisms", Reason: "bad"}), `amqp1kit driver: call m: sasl_mechanisms: bad (value "")`},
		{opError("call m", &fatalError{&PeerError{Host: "h:1", Op: "attach", Err: remote}}), "amqp1kit driver: call m: h:1 refused to attach: amqp:not-found: no such node"},
		// A peer's AMQP error reads "condition: description", saying who sent it.
		{&driverError{msg: "attach", err: remote}, "amqp1kit driver: attach: amqp:not-found: no such node"},
		{&driverError{msg: "x", err: &amqp.Error{Condition: amqp.ErrCondNotAllowed}}, "amqp1kit driver: x: amqp:not-allowed"},
		{&driverError{msg: "x", err: &amqp.LinkError{RemoteErr: remote}}, "amqp1kit driver: x: the peer detached the link: amqp:not-found: no such node"},
		{&driverError{msg: "x", err: &amqp.ConnError{RemoteErr: remote}}, "amqp1kit driver: x: the peer closed the connection: amqp:not-found: no such node"},
		{&driverError{msg: "x", err: &amqp.SessionError{RemoteErr: remote}}, "amqp1kit driver: x: the peer ended the session: amqp:not-found: no such node"},
		// go-amqp's own errors (no remote error) as they are.
		{&driverError{msg: "x", err: &amqp.LinkError{}}, "amqp1kit driver: x: amqp: link closed"},
		{&driverError{kind: ErrTimeout, err: &notConnectedError{}}, "amqp1kit driver: messaging timeout: not connected"},
		{&driverError{kind: context.Canceled, err: &notConnectedError{last: errConnLost}}, "amqp1kit driver: context canceled: not connected: connection lost"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestDriverErrorUnwrapsToSentinelAndCause(t *testing.T) {
	remote := &amqp.Error{Condition: amqp.ErrCondNotFound}
	link := &amqp.LinkError{RemoteErr: remote}
	err := opError("notify e on t", &driverError{kind: ErrDeliveryFailure, msg: "send retries exhausted",
		err: &driverError{msg: `attach sender to "a"`, err: link}})
	if !errors.Is(err, ErrDeliveryFailure) || errors.Is(err, ErrTimeout) {
		t.Errorf("errors.Is: %v", err)
	}
	var le *amqp.LinkError
	var ae *amqp.Error
	if !errors.As(err, &le) || le != link || !errors.As(err, &ae) || ae != remote {
		t.Errorf("errors.As does not reach the go-amqp errors: %v", err)
	}
	// Wrapped again by a caller, everything stays reachable.
	outer := fmt.Errorf("booting: %w", err)
	if !errors.Is(outer, ErrDeliveryFailure) || !errors.As(outer, &ae) {
		t.Errorf("through fmt.Errorf: %v", outer)
	}
}

func TestOutcomeKeepsTheRejection(t *testing.T) {
	remote := &amqp.Error{Condition: amqp.ErrCondNotAllowed, Description: "no"}
	resend, err := outcome(&amqp.StateRejected{Error: remote})
	var ae *amqp.Error
	if resend || !errors.Is(err, ErrDeliveryFailure) || !errors.As(err, &ae) || ae != remote {
		t.Errorf("rejected: resend=%v err=%v", resend, err)
	}
	// No error in the rejection: no (typed nil) cause either.
	_, err = outcome(&amqp.StateRejected{})
	if errors.As(err, &ae) || err.Error() != "amqp1kit driver: message delivery failure: the message was rejected" {
		t.Errorf("rejected without an error: %v", err)
	}
	for _, s := range []amqp.DeliveryState{&amqp.StateReleased{}, &amqp.StateModified{}} {
		if resend, err := outcome(s); !resend || err != nil {
			t.Errorf("%T: resend=%v err=%v", s, resend, err)
		}
	}
	if resend, err := outcome(&amqp.StateModified{UndeliverableHere: true}); resend || !errors.Is(err, ErrDeliveryFailure) {
		t.Errorf("modified undeliverable-here: resend=%v err=%v", resend, err)
	}
}
