package fakerouter_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// rawLink opens a connection, a session and one link, by hand.
func rawLink(t *testing.T, addr string, a *wire.Attach) *frameclient.Conn {
	t.Helper()
	c, err := frameclient.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Open(&wire.Open{ContainerID: a.Name, MaxFrameSize: 65536})
	require.NoError(t, err)
	_, err = c.Begin(0, &wire.Begin{IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30})
	require.NoError(t, err)
	_, err = c.Attach(0, a)
	require.NoError(t, err)
	return c
}

// stuckConsumer attaches a consumer to addr that grants a million credit and then
// never reads its socket, and a sender to addr; both by hand.
func stuckConsumer(t *testing.T, r *fakerouter.Router, addr string) (consumer, producer *frameclient.Conn) {
	t.Helper()
	zero, credit, handle := uint32(0), uint32(1_000_000), uint32(0)
	consumer = rawLink(t, r.Addr(), &wire.Attach{Name: "stuck", Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	require.NoError(t, consumer.Write(0, &wire.Flow{IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30,
		Handle: &handle, DeliveryCount: &zero, LinkCredit: &credit}))
	producer = rawLink(t, r.Addr(), &wire.Attach{Name: "flood", Role: wire.RoleSender,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: addr},
		InitialDeliveryCount: &zero})
	return consumer, producer
}

// flood sends 1 KiB messages on producer's link 0, pre-settled or not, as its credit
// allows, until limit bytes went or no credit came for a second (the router holds the
// sender back); it returns how many it sent.
func flood(t *testing.T, producer *frameclient.Conn, settled bool, limit int) int {
	t.Helper()
	payload, err := (&wire.Message{Data: [][]byte{bytes.Repeat([]byte("x"), 1024)}}).AppendTo(nil)
	require.NoError(t, err)
	sent, have := 0, uint32(0)
	format := uint32(0)
	for sent*len(payload) < limit {
		if have == 0 {
			f, err := producer.Quiet(time.Second)
			require.NoError(t, err)
			if f.Body == nil {
				break
			}
			if fl, ok := f.Body.(*wire.Flow); ok && fl.LinkCredit != nil && fl.DeliveryCount != nil {
				have = *fl.DeliveryCount + *fl.LinkCredit - uint32(sent)
			}
			continue
		}
		id := uint32(sent)
		require.NoError(t, producer.WriteTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: &id,
			DeliveryTag:   []byte{byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)},
			MessageFormat: &format, Settled: settled}, payload))
		sent++
		have--
	}
	return sent
}

// A consumer that grants a lot of credit and then stops reading its socket costs the
// router a bounded amount, as in qdrouterd 1.19.0: the router stops writing to it
// once ConnOutputLimit is queued and keeps what it has for it on the consumer's
// undelivered list; a pre-settled sender keeps its credit (qdrouterd gives a
// pre-settled delivery's credit back as soon as it is routed), and whenever a
// pre-settled message finds that list at the link capacity (250) the router drops the
// pre-settled ones on it but the first. The consumer keeps its connection and, once
// it reads, gets every message that was not dropped.
func TestStuckConsumerPresettledFloodDropped(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	const addr = "unicast.stuck"
	consumer, producer := stuckConsumer(t, r, addr)
	const limit = 32 << 20
	sent := flood(t, producer, true, limit)
	t.Logf("the sender sent %d pre-settled messages", sent)
	require.Equal(t, limit/1032+1, sent, "a pre-settled sender keeps its credit")
	require.Equal(t, 2, r.Connections(), "the slow consumer keeps its connection")
	for _, c := range r.Conns() {
		if c.Container == "stuck" {
			// The default ConnOutputLimit (512 KiB), plus the message that took it over.
			require.LessOrEqual(t, c.Queued, 512<<10+2*1032, "the output queued for a consumer that does not read")
		}
	}
	info, _ := r.Address(addr)
	require.LessOrEqual(t, info.Waiting, 251, "the consumer's undelivered list stays at the link capacity")
	require.Positive(t, info.Counts.Dropped, "pre-settled messages beyond the link capacity are dropped")

	// The consumer reads: everything not dropped arrives.
	got := 0
	for {
		f, err := consumer.Quiet(time.Second)
		require.NoError(t, err)
		if f.Body == nil {
			break
		}
		if _, ok := f.Body.(*wire.Transfer); ok {
			got++
		}
	}
	info, _ = r.Address(addr)
	t.Logf("delivered %d, dropped %d", got, info.Counts.Dropped)
	require.Equal(t, sent, got+int(info.Counts.Dropped), "every message is delivered or counted dropped")
	require.Zero(t, info.Waiting)
}

// Unsettled, the same flood is held back: the sender's credit comes back only as the
// router settles its deliveries, so it stops at the link capacity (250) in flight, and
// nothing is dropped.
func TestStuckConsumerHoldsUnsettledSenderBack(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	const addr = "unicast.stuck-unsettled"
	consumer, producer := stuckConsumer(t, r, addr)
	sent := flood(t, producer, false, 32<<20)
	require.Equal(t, 250, sent, "the sender stops at the link capacity")
	info, _ := r.Address(addr)
	require.Zero(t, info.Counts.Dropped)

	// The consumer reads and settles: every message arrives, and the sender gets its
	// credit back.
	for got := 0; got < sent; {
		f, err := consumer.Next()
		require.NoError(t, err)
		if tr, ok := f.Body.(*wire.Transfer); ok {
			got++
			require.NoError(t, consumer.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID,
				Settled: true, State: &wire.Accepted{}}))
		}
	}
	for {
		f, err := producer.Next()
		require.NoError(t, err)
		if fl, ok := f.Body.(*wire.Flow); ok && *fl.DeliveryCount+*fl.LinkCredit > uint32(sent) {
			break
		}
	}
}

// A go-amqp sender whose only consumer leaves in the middle of a pre-settled flood keeps
// its link: the router never takes its credit back (it asks it to drain once a message
// finds no path), and the sender goes on once a consumer is back.
func TestConsumerLeavesMidFloodSenderKeepsLink(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	const addr = "unicast.mid-flood"
	first := connect(t, r.URL())
	rcv := first.receiver(addr, 100)
	waitConsumers(t, r, addr, 1)
	snd := connect(t, r.URL()).presettledSender(addr)
	stop := make(chan struct{})
	flood := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flood <- nil
				return
			default:
			}
			sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := snd.Send(sctx, amqp.NewMessage([]byte("flood")), nil)
			cancel()
			var ae *amqp.Error
			waiting := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ae) && ae.Condition == amqp.ErrCondTransferLimitExceeded
			if err != nil && !waiting {
				flood <- err // anything but waiting for credit (or a slow machine)
				return
			}
		}
	}()
	for range 50 {
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(ctx, m))
	}
	require.NoError(t, first.conn.Close()) // the only consumer leaves mid-flood
	time.Sleep(100 * time.Millisecond)
	again := connect(t, r.URL()).receiver(addr, 100)
	m, err := again.Receive(ctx, nil)
	require.NoError(t, err, "the sender's messages reach the consumer that came back")
	require.Equal(t, "flood", string(m.GetData()))
	close(stop)
	require.NoError(t, <-flood, "the sender kept its link")
}
