package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Retries returns a pointer to n, for the Retry fields of the option structs: nil
// means retry without limit, 0 means no retry.
func Retries(n int) *int { return &n }

// outgoing is one message for the send loop: where it goes, what it carries, how it
// is settled, and what to do when it cannot go. The loop builds the AMQP message
// again for every attempt, since the address depends on the connection's peer and a
// call gets a new message-id each time.
type outgoing struct {
	// target and service give the address, worked out on each connection by its
	// Addresser; to, if set, is a fixed address instead (a caller's reply address).
	target  Target
	service Service
	to      string

	body          any           // the amqp-value body (a JSON string); nil for none
	ttl           time.Duration // header ttl; 0 for none
	correlationID any           // properties.correlation-id (replies and heartbeats)

	// call: each attempt gets a new message-id and the connection's reply address,
	// and a pending call registered before it is written, for its reply.
	call bool
	// presettled: written settled, without waiting for an outcome.
	presettled bool
	// retry: how many failed attempts may be tried again; -1 means no limit.
	retry int
	// callerTimeout: the caller gave a timeout (a call), so running out of time is
	// ErrTimeout (oslo's MessagingTimeout); otherwise ErrDeliveryFailure.
	callerTimeout bool
}

// message builds the AMQP message of one attempt to addr, with its message-id for a
// call ("" otherwise).
func (m *outgoing) message(addr, replyTo string) (*amqp.Message, string) {
	// One allocation for the message and the parts it points to.
	a := &struct {
		msg           amqp.Message
		props         amqp.MessageProperties
		header        amqp.MessageHeader
		addr, replyTo string
	}{addr: addr, replyTo: replyTo}
	msg := &a.msg
	msg.Properties, msg.Value = &a.props, m.body
	a.props.To, a.props.CorrelationID = &a.addr, m.correlationID
	if m.ttl > 0 {
		a.header.TTL = m.ttl
		msg.Header = &a.header
	}
	var id string
	if m.call {
		id = newUUIDHex() // a new message-id for every attempt, as Python
		a.props.MessageID = id
		a.props.ReplyTo = &a.replyTo
	}
	return msg, id
}

// notSentInTime is the error of a send whose ctx ended before it went: ErrTimeout if
// the caller gave a timeout, else ErrDeliveryFailure (controller.py:
// SendTask._on_timeout), with why the last attempt failed.
func (m *outgoing) notSentInTime(last error) error {
	kind := ErrDeliveryFailure
	if m.callerTimeout {
		kind = ErrTimeout
	}
	return &driverError{kind: kind, msg: "not sent in time", err: last}
}

// errReleased is why an attempt failed when the intermediary gave the message back.
var errReleased = errors.New("the intermediary released the message")

// send delivers m as the Python driver's Controller does, one attempt per turn of
// its loop, until the intermediary accepts it (or it is written pre-settled), it
// fails for good, its retries run out or ctx ends. For a call it returns the pending
// call of the accepted attempt, whose reply the caller then waits for.
//
// An attempt: (1) get a connection, waiting while the transport (re)connects; (2)
// get the address's sender link, attaching it if needed; (3) write the message and,
// unless pre-settled, wait for its outcome; (4) classify what happened:
//
//   - accepted (or written pre-settled): done;
//   - released, or modified without delivery-failed or undeliverable-here: never
//     forwarded, so resend after link_retry_delay;
//   - rejected, modified as failed, no outcome: ErrDeliveryFailure;
//   - written, then the link or connection failed before the outcome: it may have
//     arrived, so ErrDeliveryFailure at once, without a retry;
//   - not written because the connection was lost, or a connection attempt failed
//     while waiting: again on the next connection, without link_retry_delay;
//   - not written because the link failed or its attach was refused: again after
//     link_retry_delay;
//   - ctx ended: ErrTimeout or ErrDeliveryFailure (see notSentInTime).
//
// Each failed attempt that may be tried again uses one retry, in one place, at the
// end of the loop; with none left the send fails with ErrDeliveryFailure "send
// retries exhausted" and the last attempt's error.
func (t *Transport) send(ctx context.Context, m *outgoing) (*pendingCall, error) {
	retries := m.retry
	var avoid *connection // a connection found lost, which the transport may still offer
	for {
		var failed error     // why this attempt failed, when another may follow
		var afterDelay bool  // wait link_retry_delay before the next attempt
		var ae *attemptError // a connection attempt failed while we waited
		var nc *notConnectedError

		// (1) A connection.
		c, err := t.awaitConnection(ctx, avoid, retries >= 0)
		switch {
		case errors.As(err, &ae):
			failed = ae
		case errors.As(err, &nc):
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, &driverError{kind: ctx.Err(), err: nc} // cancelled
			}
			return nil, m.notSentInTime(nc)
		case err != nil:
			return nil, err // closed, or refused in a way no retry fixes
		default:
			addr := m.to
			if addr == "" {
				addr = c.addresser.Resolve(m.target, m.service)
			}
			msg, id := m.message(addr, c.replyAddr)
			var pc *pendingCall
			if m.call {
				pc = c.register(id) // before writing: the reply may come quickly
			}

			// (2) and (3): the link, the transfer, the outcome.
			state, written, err := c.transfer(ctx, addr, msg, m.presettled)

			// (4) What happened.
			var end error // how the send ends, when no other attempt follows
			switch {
			case err == nil && m.presettled:
				return pc, nil
			case err == nil:
				resend, refused := outcome(state)
				switch {
				case refused != nil:
					end = refused
				case !resend:
					return pc, nil // accepted
				default:
					failed, afterDelay = errReleased, true
				}
			case ctx.Err() != nil:
				end = m.notSentInTime(err)
			case written:
				// In flight and unacknowledged when the link or connection failed:
				// Python fails these at once, without a retry.
				end = &driverError{kind: ErrDeliveryFailure, msg: "the message was written but no outcome came", err: err}
			case connLost(err):
				// Not written because the connection went: the next attempt waits for
				// the new connection, as Python's pending sends do.
				failed, avoid = err, c
			default:
				failed, afterDelay = err, true
			}
			if pc != nil {
				c.unregister(id) // this attempt is over: a late reply to it is refused
			}
			if end != nil {
				return nil, end
			}
		}

		// Another attempt, if a retry is left.
		if retries == 0 {
			return nil, &driverError{kind: ErrDeliveryFailure, msg: "send retries exhausted", err: failed}
		}
		if retries > 0 {
			retries--
		}
		if !afterDelay {
			t.log.Debug("sending again on the next connection", "err", failed)
			continue
		}
		t.log.Debug("resending", "err", failed, "after", t.opts.LinkRetryDelay)
		select {
		case <-ctx.Done():
			return nil, m.notSentInTime(failed)
		case <-t.stop:
			return nil, ErrClosed
		case <-time.After(t.opts.LinkRetryDelay):
		}
	}
}

// transfer sends msg on the cached sender link of addr (attaching it first if
// needed) and, unless pre-settled, waits for the intermediary's outcome. written
// tells whether a failure came after the message was written (it may have arrived,
// so it must not be sent again).
func (c *connection) transfer(ctx context.Context, addr string, msg *amqp.Message, presettled bool) (state amqp.DeliveryState, written bool, err error) {
	select {
	case <-c.conn.Done():
		return nil, false, errConnLost // found lost before the transport noticed
	default:
	}
	s, release, err := c.sender(ctx, addr)
	if err != nil {
		return nil, false, &driverError{msg: fmt.Sprintf("attach sender to %q", addr), err: err}
	}
	defer release()
	if presettled {
		if err := s.Send(ctx, msg, &amqp.SendOptions{Settled: true}); err != nil {
			c.forgetSenderOn(addr, s, err)
			return nil, false, noCredit(ctx, addr, err)
		}
		return nil, false, nil
	}
	receipt, err := s.SendWithReceipt(ctx, msg, nil)
	if err != nil {
		c.forgetSenderOn(addr, s, err)
		return nil, false, noCredit(ctx, addr, err)
	}
	state, err = receipt.Wait(ctx)
	if err != nil {
		c.forgetSenderOn(addr, s, err)
		return nil, true, err
	}
	return state, false, nil
}

// noCreditError explains go-amqp's error for a send whose ctx ended while it waited
// for credit (a local transfer-limit-exceeded, which says nothing about the peer):
// through a router, nobody consumes from the address.
type noCreditError struct {
	addr string
	err  error
}

func (e *noCreditError) Error() string {
	return fmt.Sprintf("the intermediary granted no credit to send to %q (no consumer?)", e.addr)
}
func (e *noCreditError) Unwrap() error { return e.err }

func noCredit(ctx context.Context, addr string, err error) error {
	var ae *amqp.Error
	if ctx.Err() != nil && errors.As(err, &ae) && ae.Condition == amqp.ErrCondTransferLimitExceeded {
		return &noCreditError{addr: addr, err: err}
	}
	return err
}

// outcome maps the intermediary's answer as the Python driver does (controller.py,
// Sender._send callback): accepted is success; released and a harmless modified mean
// "never forwarded", so resend; anything else is an ErrDeliveryFailure.
func outcome(state amqp.DeliveryState) (resend bool, refused error) {
	switch s := state.(type) {
	case *amqp.StateAccepted:
		return false, nil
	case *amqp.StateReleased:
		return true, nil
	case *amqp.StateModified:
		if s.DeliveryFailed || s.UndeliverableHere {
			return false, &driverError{kind: ErrDeliveryFailure,
				msg: fmt.Sprintf("the message was modified (delivery-failed=%v, undeliverable-here=%v)", s.DeliveryFailed, s.UndeliverableHere)}
		}
		return true, nil
	case *amqp.StateRejected:
		e := &driverError{kind: ErrDeliveryFailure, msg: "the message was rejected"}
		if s.Error != nil {
			e.err = s.Error
		}
		return false, e
	}
	return false, &driverError{kind: ErrDeliveryFailure, msg: fmt.Sprintf("the message was settled without an outcome (%T)", state)}
}

// connLost reports a send error due to the connection's loss (rather than the link's
// or the intermediary's refusal).
func connLost(err error) bool {
	var ce *amqp.ConnError
	return err != nil && (errors.Is(err, errConnLost) || errors.As(err, &ce))
}
