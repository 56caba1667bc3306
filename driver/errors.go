package driver

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"
)

// errPrefix starts the text of every error of the package, once: an error that
// wraps another of the package's errors leaves the inner one's prefix out.
const errPrefix = "amqp1kit driver: "

// Errors of sends and calls, usable with errors.Is. They mirror oslo.messaging's
// exceptions of the same meaning.
var (
	// ErrTimeout is oslo's MessagingTimeout: a call got no reply (or a send with a
	// timeout got no outcome) in time.
	ErrTimeout = errors.New(errPrefix + "messaging timeout")
	// ErrDeliveryFailure is oslo's MessageDeliveryFailure: the intermediary refused
	// the message (rejected, modified as failed, released with no retry left), the
	// link or connection failed while it was in flight, or it could not be sent
	// before its deadline without a timeout having been given.
	ErrDeliveryFailure = errors.New(errPrefix + "message delivery failure")
	// ErrClosed reports an operation on a closed transport, client or server.
	ErrClosed = errors.New(errPrefix + "closed")
)

// driverError is how the driver puts an error together, as net.OpError does: the
// operation that failed, the sentinel saying what kind of failure it is, what
// happened, and the underlying error. Every part is optional. Its text names each
// once, with the package's prefix once at the front:
//
//	amqp1kit driver: call echo: messaging timeout: not sent in time: not connected: dial tcp 127.0.0.1:5672: connect: connection refused
//	\_ prefix        \_ op      \_ kind            \_ msg            \_ err (a *notConnectedError, itself wrapping the *net.OpError)
//
// Unwrap returns the sentinel and the underlying error, so that errors.Is reaches
// the sentinel and errors.As the go-amqp, net or TLS error underneath.
type driverError struct {
	op   string // the caller's operation ("call echo"), set at the outside only
	kind error  // ErrTimeout, ErrDeliveryFailure, ErrClosed, a context error, or nil
	msg  string // what happened ("not sent in time")
	err  error  // the cause, or nil
}

func (e *driverError) Error() string {
	parts := make([]string, 0, 4)
	if e.op != "" {
		parts = append(parts, e.op)
	}
	if e.kind != nil {
		parts = append(parts, strings.TrimPrefix(e.kind.Error(), errPrefix))
	}
	if e.msg != "" {
		parts = append(parts, e.msg)
	}
	if e.err != nil {
		parts = append(parts, describe(e.err))
	}
	return errPrefix + strings.Join(parts, ": ")
}

func (e *driverError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

// opError returns err as the error of the caller's operation op ("call echo",
// "notify compute.start on notifications.info").
func opError(op string, err error) error {
	return &driverError{op: op, err: err}
}

// describe returns err's text for use inside another error: without the package's
// prefix, and with the AMQP error a peer sent as "condition: description" rather
// than go-amqp's "*Error{Condition: ..., Description: ..., Info: ...}".
func describe(err error) string {
	var remote *amqp.Error
	var what string
	switch e := err.(type) {
	case *amqp.Error:
		remote = e
	case *amqp.LinkError:
		remote, what = e.RemoteErr, "the peer detached the link"
	case *amqp.SessionError:
		remote, what = e.RemoteErr, "the peer ended the session"
	case *amqp.ConnError:
		remote, what = e.RemoteErr, "the peer closed the connection"
	}
	if remote == nil || remote.Condition == "" {
		return strings.TrimPrefix(err.Error(), errPrefix)
	}
	text := string(remote.Condition)
	if remote.Description != "" {
		text += ": " + remote.Description
	}
	if what != "" {
		text = what + ": " + text
	}
	return text
}

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
