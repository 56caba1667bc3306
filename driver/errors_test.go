package driver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// requireSaidOnce checks that err's text has the package's prefix once, at the
// front, and names each sentinel at most once.
func requireSaidOnce(t *testing.T, err error) {
	t.Helper()
	text := err.Error()
	require.True(t, strings.HasPrefix(text, "amqp1kit driver: "), "prefix at the front: %q", text)
	require.Equal(t, 1, strings.Count(text, "amqp1kit driver:"), "prefix once: %q", text)
	for _, s := range []string{"messaging timeout", "message delivery failure", "not connected", "not sent in time"} {
		require.LessOrEqual(t, strings.Count(text, s), 1, "%q said more than once: %q", s, text)
	}
}

func TestRefusedConnectionErrorCarriesTheDialError(t *testing.T) {
	// Nothing listens: every connection attempt is refused. The call's error is the
	// sentinel (a timeout: the call has a ttl) with the last attempt's error, which
	// stays reachable, and says each thing once.
	dead := deadAddrs(t, 1)[0]
	refused := "dial tcp " + dead + ": connect: connection refused"
	o := fastOptions()
	o.DefaultNotifyTimeout = time.Second
	tr := newTransport(t, "amqp://"+dead, o)

	// With a retry budget, the failed attempts use it up.
	cli := driver.NewRPCClient(tr, driver.Target{Topic: "x"}, &driver.ClientOptions{Timeout: 30 * time.Second, Retry: driver.Retries(1)})
	_, err := cli.Call(testCtx(t), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.False(t, errors.Is(err, driver.ErrTimeout))
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "dial", op.Op)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.EqualError(t, err, "amqp1kit driver: call echo: message delivery failure: send retries exhausted: not connected: "+refused)
	requireSaidOnce(t, err)

	// Without one, the call runs out of time (a timeout: the call has a ttl).
	cli = driver.NewRPCClient(tr, driver.Target{Topic: "x"}, &driver.ClientOptions{Timeout: time.Second})
	_, err = cli.Call(context.Background(), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrTimeout)
	require.False(t, errors.Is(err, driver.ErrDeliveryFailure))
	require.ErrorAs(t, err, &op)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.EqualError(t, err, "amqp1kit driver: call echo: messaging timeout: not sent in time: not connected: "+refused)
	requireSaidOnce(t, err)

	// A notification has no ttl: running out of time is a delivery failure.
	n := driver.NewNotifier(tr, &driver.NotifierOptions{Topics: []string{"t"}})
	err = n.Info(context.Background(), nil, "ev", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.False(t, errors.Is(err, driver.ErrTimeout))
	require.ErrorAs(t, err, &op)
	require.EqualError(t, err, "amqp1kit driver: notify ev on t.info: message delivery failure: not sent in time: not connected: "+refused)
	requireSaidOnce(t, err)

	// The same through Transport.Addresser, which has no send of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = tr.Addresser(ctx)
	require.ErrorIs(t, err, driver.ErrTimeout)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.EqualError(t, err, "amqp1kit driver: messaging timeout: not connected: "+refused)
}

// detachingPeer is an AMQP 1.0 peer that accepts the driver's connection and links
// (naming the dynamic reply link) and, when a message arrives on a link, detaches
// that link with amqp:link:detach-forced without settling the message.
type detachingPeer struct{ engine.NopHandler }

func (detachingPeer) Attach(l *engine.Link) error {
	if l.Role() == wire.RoleSender {
		if src := l.Source(); src != nil && src.Dynamic {
			l.SetSourceAddress("reply-1")
		}
		return nil
	}
	return l.SetCredit(10)
}

func (detachingPeer) Delivery(l *engine.Link, d *engine.Delivery) {
	l.Close(&wire.Error{Condition: wire.ErrCondDetachForced, Description: "link stolen"})
}

func TestRemoteDetachErrorKeepsItsCondition(t *testing.T) {
	// The peer detaches the link of a message in flight: a delivery failure at once
	// (it may have arrived, so it is not resent), with go-amqp's *LinkError and the
	// peer's condition reachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := engine.NewServer(detachingPeer{}, nil)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	n := driver.NewNotifier(newTransport(t, "amqp://"+ln.Addr().String(), nil), &driver.NotifierOptions{Topics: []string{"t"}})
	err = n.Info(testCtx(t), nil, "ev", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	var le *amqp.LinkError
	require.ErrorAs(t, err, &le)
	require.NotNil(t, le.RemoteErr)
	require.Equal(t, amqp.ErrCondDetachForced, le.RemoteErr.Condition)
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "link stolen", ae.Description)
	require.EqualError(t, err, "amqp1kit driver: notify ev on t.info: message delivery failure: the message was written but no outcome came: the peer detached the link: amqp:link:detach-forced: link stolen")
	requireSaidOnce(t, err)
}

func TestRefusedAttachAndRejectionKeepTheirConditions(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{
		LinkRoutes: []fakerouter.LinkRoute{{Prefix: "openstack.org/om/notify/anycast/openstack/routed.", Direction: "in", Connection: "broker"}},
	})
	ctx := testCtx(t)

	// The router refuses the sender link's attach (a link route whose container is
	// not connected): the peer's error, with its condition, is the cause.
	n := driver.NewNotifier(newTransport(t, r.URL(), nil), &driver.NotifierOptions{Topics: []string{"routed"}, Retry: driver.Retries(0)})
	err := n.Info(ctx, nil, "ev", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCond("qd:no-route-to-dest"), ae.Condition)
	require.True(t, strings.HasPrefix(err.Error(), `amqp1kit driver: notify ev on routed.info: message delivery failure: send retries exhausted: attach sender to "openstack.org/om/notify/anycast/openstack/routed.info": qd:no-route-to-dest: `), err.Error())
	requireSaidOnce(t, err)

	// The router rejects the request: the rejection's error is the cause.
	startServer(t, r, newTransport(t, r.URL(), nil), "rej", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	require.NoError(t, r.SetOutcome(fakerouter.OutcomeRejected))
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "rej"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	_, err = cli.Call(ctx, nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCondNotAllowed, ae.Condition)
	require.EqualError(t, err, "amqp1kit driver: call echo: message delivery failure: the message was rejected: amqp:not-allowed: rejected by fakerouter.SetOutcome")
	requireSaidOnce(t, err)
}

func TestConnectionClosedInFlightKeepsItsCondition(t *testing.T) {
	// The router closes the connection (amqp:connection:forced) while the request
	// waits for its outcome: a delivery failure with go-amqp's *ConnError.
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	es := startServer(t, r, newTransport(t, r.URL(), nil), "cut", "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/", 3))
	r.HoldSettlements()
	cli := driver.NewRPCClient(newTransport(t, r.URL(), nil), driver.Target{Topic: "cut"}, &driver.ClientOptions{Timeout: 20 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, nil, "record", nil)
		done <- err
	}()
	// The server has the request; its acceptance is held at the router.
	require.Eventually(t, func() bool { return es.records() == 1 }, 10*time.Second, 5*time.Millisecond)
	r.CloseConnections()
	err := <-done
	r.ReleaseSettlements()
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	var ce *amqp.ConnError
	require.ErrorAs(t, err, &ce)
	require.NotNil(t, ce.RemoteErr)
	require.Equal(t, amqp.ErrCondConnectionForced, ce.RemoteErr.Condition)
	require.True(t, strings.HasPrefix(err.Error(), "amqp1kit driver: call record: message delivery failure: the message was written but no outcome came: the peer closed the connection: amqp:connection:forced"), err.Error())
	requireSaidOnce(t, err)
}
