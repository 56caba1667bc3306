package driver

import (
	"errors"
	"fmt"
	amqp "github.com/Azure/go-amqp"
	"strings"
)

// Errors of sends and calls, usable with errors.Is. They mirror oslo.messaging's
// exceptions of the same meaning.
var (
	// ErrTimeout is oslo's MessagingTimeout: a call got no reply (or a send with a
	// timeout got no outcome) in time.
	ErrTimeout = errors.New("amqp1kit driver: messaging timeout")
	// ErrDeliveryFailure is oslo's MessageDeliveryFailure: the intermediary refused
	// the message (rejected, modified as failed, released with no retry left), the
	// link or connection failed while it was in flight, or it could not be sent
	// before its deadline without a timeout having been given.
	ErrDeliveryFailure = errors.New("amqp1kit driver: message delivery failure")
	// ErrClosed reports an operation on a closed transport, client or server.
	ErrClosed = errors.New("amqp1kit driver: closed")
)

// RemoteError is an exception raised by the RPC server's method, as serialised by
// oslo.messaging (common.serialize_remote_exception). A Go caller gets it from Call;
// a Go server returns one to control what a Python caller re-raises.
type RemoteError struct {
	// Module and Class name the exception type ("builtins", "ValueError").
	Module, Class string
	// Message is str() of the exception.
	Message string
	// Traceback holds the formatted traceback lines of the server.
	Traceback []string
	// Args and Kwargs rebuild the exception on a Python caller.
	Args   []any
	Kwargs map[string]any
}

// Error returns "Module.Class: Message".
func (e *RemoteError) Error() string {
	name := e.Class
	if e.Module != "" && e.Module != "builtins" && e.Module != "exceptions" {
		name = e.Module + "." + e.Class
	}
	return fmt.Sprintf("remote error: %s: %s", name, e.Message)
}

// PeerError reports that the intermediary refused what the driver needs (for example
// a dynamic reply link), with the peer's product and reason, so that a client fails
// fast instead of retrying forever.
type PeerError struct {
	// Host is the intermediary's address.
	Host string
	// Product and Version are what the peer said about itself in its open frame.
	Product, Version string
	// Op is what was refused ("attach the dynamic reply link").
	Op string
	// Err is the peer's error.
	Err error
}

// Error describes the refusal.
func (e *PeerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "amqp1kit driver: %s refused to %s", e.Host, e.Op)
	if e.Product != "" {
		fmt.Fprintf(&b, " (peer %s %s)", e.Product, e.Version)
	}
	var ae *amqp.Error
	switch {
	case errors.As(e.Err, &ae):
		fmt.Fprintf(&b, ": %s", ae.Condition)
		if ae.Description != "" {
			fmt.Fprintf(&b, ": %s", ae.Description)
		}
	case e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the peer's error.
func (e *PeerError) Unwrap() error { return e.Err }
