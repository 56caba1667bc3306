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

// deliverError tells how a send failed: before the message was written (it may be
// tried again without a duplicate) or after.
type deliverError struct {
	err     error
	written bool
}

func (e *deliverError) Error() string { return e.err.Error() }
func (e *deliverError) Unwrap() error { return e.err }

// deliver sends msg on the cached sender of addr and, unless pre-settled, waits for
// the intermediary's outcome.
func (c *connection) deliver(ctx context.Context, addr string, msg *amqp.Message, presettled bool) (amqp.DeliveryState, error) {
	select {
	case <-c.conn.Done():
		// Lost before anything was written: safe to try again on the next one.
		return nil, &deliverError{err: errConnLost}
	default:
	}
	s, release, err := c.sender(ctx, addr)
	if err != nil {
		return nil, &deliverError{err: fmt.Errorf("attach sender to %q: %w", addr, err)}
	}
	defer release()
	if presettled {
		if err := s.Send(ctx, msg, &amqp.SendOptions{Settled: true}); err != nil {
			c.forgetSenderOn(addr, s, err)
			return nil, &deliverError{err: noCredit(ctx, addr, err)}
		}
		return nil, nil
	}
	receipt, err := s.SendWithReceipt(ctx, msg, nil)
	if err != nil {
		c.forgetSenderOn(addr, s, err)
		return nil, &deliverError{err: noCredit(ctx, addr, err)}
	}
	state, err := receipt.Wait(ctx)
	if err != nil {
		c.forgetSenderOn(addr, s, err)
		return nil, &deliverError{err: err, written: true}
	}
	return state, nil
}

// noCredit explains go-amqp's error for a send whose ctx ended while it waited for
// credit (a local transfer-limit-exceeded): through a router, nobody consumes from
// the address.
func noCredit(ctx context.Context, addr string, err error) error {
	var ae *amqp.Error
	if ctx.Err() != nil && errors.As(err, &ae) && ae.Condition == amqp.ErrCondTransferLimitExceeded {
		return fmt.Errorf("the intermediary granted no credit to send to %q (no consumer?)", addr)
	}
	return err
}

// outcome maps the intermediary's answer as the Python driver does (controller.py,
// Sender._send callback): accepted is success; released and a harmless modified mean
// "never forwarded", so resend; anything else fails the send.
func outcome(state amqp.DeliveryState) (resend bool, err error) {
	switch s := state.(type) {
	case *amqp.StateAccepted:
		return false, nil
	case *amqp.StateReleased:
		return true, nil
	case *amqp.StateModified:
		if s.DeliveryFailed || s.UndeliverableHere {
			return false, fmt.Errorf("%w: the message was modified (delivery-failed=%v, undeliverable-here=%v)", ErrDeliveryFailure, s.DeliveryFailed, s.UndeliverableHere)
		}
		return true, nil
	case *amqp.StateRejected:
		if s.Error != nil {
			return false, fmt.Errorf("%w: the message was rejected: %s: %s", ErrDeliveryFailure, s.Error.Condition, s.Error.Description)
		}
		return false, fmt.Errorf("%w: the message was rejected", ErrDeliveryFailure)
	}
	return false, fmt.Errorf("%w: the message was settled without an outcome (%T)", ErrDeliveryFailure, state)
}

// sendSpec describes one logical send with its retry policy.
type sendSpec struct {
	presettled bool
	retry      int  // -1: no limit
	hasTTL     bool // a timeout was given: running out is ErrTimeout, else ErrDeliveryFailure
	// build makes the address and message for a connection (addresses depend on the
	// peer) and attempt (a call gets a new message-id each time).
	build func(c *connection) (addr string, msg *amqp.Message, err error)
	// sent is called after an accepted (or pre-settled) send.
	sent func(c *connection) error
	// abandon is called when an attempt is given up (to forget a pending call).
	abandon func(c *connection)
}

// send runs spec until it succeeds, fails, runs out of retries or ctx ends.
func (t *Transport) send(ctx context.Context, spec sendSpec) error {
	retries := spec.retry
	timedOut := func(last error) error {
		kind := ErrDeliveryFailure
		if spec.hasTTL {
			kind = ErrTimeout
		}
		if last != nil {
			return fmt.Errorf("%w: not sent in time: %v", kind, last)
		}
		return fmt.Errorf("%w: not sent in time", kind)
	}
	var last error
	var avoid *connection // a connection found lost, which the transport may still offer
	for {
		var budget *int
		if retries >= 0 {
			budget = &retries
		}
		c, err := t.connectionAfter(ctx, budget, avoid)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				return timedOut(err)
			}
			return err
		}
		addr, msg, err := spec.build(c)
		if err != nil {
			return err
		}
		state, err := c.deliver(ctx, addr, msg, spec.presettled)
		resend := false
		if err == nil && !spec.presettled {
			resend, err = outcome(state)
			if err != nil {
				if spec.abandon != nil {
					spec.abandon(c)
				}
				return err
			}
		}
		if err == nil && !resend {
			if spec.sent != nil {
				return spec.sent(c)
			}
			return nil
		}
		if spec.abandon != nil {
			spec.abandon(c)
		}
		if err != nil {
			if ctx.Err() != nil {
				return timedOut(err)
			}
			var de *deliverError
			if errors.As(err, &de) && de.written {
				// In flight and unacknowledged when the link or connection failed:
				// Python fails these at once, without a retry.
				return fmt.Errorf("%w: %v", ErrDeliveryFailure, err)
			}
			last = err
		} else {
			last = errors.New("the intermediary released the message")
		}
		if retries == 0 {
			if resend {
				return fmt.Errorf("%w: send retries exhausted (the intermediary released the message)", ErrDeliveryFailure)
			}
			return fmt.Errorf("%w: send retries exhausted: %v", ErrDeliveryFailure, last)
		}
		if retries > 0 {
			retries--
		}
		if connLost(err) {
			// Not written because the connection went: no link_retry_delay, the next
			// attempt waits for the new connection (as Python's pending sends do).
			t.log.Debug("resending on the next connection", "err", last)
			avoid = c
			continue
		}
		t.log.Debug("resending", "err", last, "after", t.opts.LinkRetryDelay)
		select {
		case <-ctx.Done():
			return timedOut(last)
		case <-t.stop:
			return ErrClosed
		case <-time.After(t.opts.LinkRetryDelay):
		}
	}
}

// connLost reports a send error due to the connection's loss (rather than the link's
// or the intermediary's refusal).
func connLost(err error) bool {
	var ce *amqp.ConnError
	return err != nil && (errors.Is(err, errConnLost) || errors.As(err, &ce))
}
