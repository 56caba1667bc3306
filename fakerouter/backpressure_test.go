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

// A consumer that grants a lot of credit and then stops reading its socket costs the
// router a bounded amount: the router holds back what it would send it, its sender runs
// out of credit (pre-settled messages give their credit back only once written), the
// consumer keeps its connection, and everything flows again once it reads.
func TestStuckConsumerHoldsSendersBack(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	const addr = "unicast.stuck"
	zero, credit, handle := uint32(0), uint32(1_000_000), uint32(0)
	consumer := rawLink(t, r.Addr(), &wire.Attach{Name: "stuck", Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	require.NoError(t, consumer.Write(0, &wire.Flow{IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30,
		Handle: &handle, DeliveryCount: &zero, LinkCredit: &credit}))

	producer := rawLink(t, r.Addr(), &wire.Attach{Name: "flood", Role: wire.RoleSender,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: addr},
		InitialDeliveryCount: &zero})
	payload, err := (&wire.Message{Data: [][]byte{bytes.Repeat([]byte("x"), 1024)}}).AppendTo(nil)
	require.NoError(t, err)
	const limit = 64 << 20 // what an unbounded router would take without blinking
	sent, have := 0, uint32(0)
	format := uint32(0)
	for sent*len(payload) < limit {
		if have == 0 {
			// Wait for credit; none for a second means the router holds the sender back.
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
			MessageFormat: &format, Settled: true}, payload))
		sent++
		have--
	}
	t.Logf("the sender got %d messages (%d KiB) out before the router held it back", sent, sent*len(payload)>>10)
	require.Less(t, sent*len(payload), limit, "the router kept granting credit to a sender whose consumer does not read")
	require.Equal(t, 2, r.Connections(), "the slow consumer keeps its connection")
	for _, c := range r.Conns() {
		if c.Container == "stuck" {
			// The default ConnOutputLimit (512 KiB), plus the message that took it over.
			require.LessOrEqual(t, c.Queued, 512<<10+2*len(payload), "the output queued for a consumer that does not read")
		}
	}

	// The consumer reads: every message arrives, and the sender gets credit again.
	got := 0
	for got < sent {
		f, err := consumer.Next()
		require.NoError(t, err)
		if _, ok := f.Body.(*wire.Transfer); ok {
			got++
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
			if err != nil && !(errors.As(err, &ae) && ae.Condition == amqp.ErrCondTransferLimitExceeded) {
				flood <- err // anything but waiting for credit
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
