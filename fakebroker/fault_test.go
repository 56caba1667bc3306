package fakebroker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// dialRetry connects until it works or ctx ends (the broker may be restarting).
func dialRetry(ctx context.Context, url, container string) (*amqp.Conn, *amqp.Session, error) {
	for {
		conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{ContainerID: container})
		if err == nil {
			sess, err := conn.NewSession(ctx, nil)
			if err == nil {
				return conn, sess, nil
			}
			conn.Close()
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(10 * time.Millisecond): // reconnect back-off
		}
	}
}

// TestFaultCampaign sends N durable messages while consumers are killed at random
// points (their connection cut by the broker or closed by the client, with messages
// held unsettled or just accepted) and the broker is restarted once from its
// journal. Every message the producer was told was stored must be delivered at least
// once; duplicates are counted and reported.
func TestFaultCampaign(t *testing.T) {
	const (
		n         = 400
		consumers = 3
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	b := fakebroker.RunT(t, &fakebroker.Options{Dir: t.TempDir()})
	url, addr := b.URL(), "unicast.openstack.notifications.info"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	receipts := map[int]int{} // message id → times a consumer received it
	var kills, resends atomic.Int64

	// The producer resends a message until it is told accepted, reconnecting as
	// needed: a message whose outcome was lost may be stored twice.
	produced := make(chan error, 1)
	go func() {
		var conn *amqp.Conn
		var snd *amqp.Sender
		defer func() {
			if conn != nil {
				conn.Close()
			}
		}()
		for i := 0; i < n; {
			if snd == nil {
				c, sess, err := dialRetry(ctx, url, "producer")
				if err != nil {
					produced <- err
					return
				}
				conn = c
				if snd, err = sess.NewSender(ctx, addr, nil); err != nil {
					conn.Close()
					conn, snd = nil, nil
					continue
				}
			}
			m := amqp.NewMessage(fmt.Appendf(nil, "m%d", i))
			m.Header = &amqp.MessageHeader{Durable: true}
			m.ApplicationProperties = map[string]any{"id": int64(i)}
			if err := snd.Send(ctx, m, nil); err != nil {
				if ctx.Err() != nil {
					produced <- err
					return
				}
				resends.Add(1)
				conn.Close()
				conn, snd = nil, nil
				continue
			}
			i++
		}
		produced <- nil
	}()

	// Consumers: accept, and now and then die with or without settling.
	var wg sync.WaitGroup
	for k := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(k)))
			for gen := 0; ctx.Err() == nil; gen++ {
				container := fmt.Sprintf("consumer-%d-%d", k, gen)
				conn, sess, err := dialRetry(ctx, url, container)
				if err != nil {
					return
				}
				rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: int32(1 + rng.IntN(20))})
				if err != nil {
					conn.Close()
					continue
				}
				for {
					m, err := rcv.Receive(ctx, nil)
					if err != nil {
						break
					}
					id := int(m.ApplicationProperties["id"].(int64))
					mu.Lock()
					receipts[id]++
					mu.Unlock()
					if rng.IntN(25) == 0 { // killed before settling
						kills.Add(1)
						if rng.IntN(2) == 0 {
							killServerSide(b, container)
						}
						break
					}
					if rcv.AcceptMessage(ctx, m) != nil {
						break
					}
					if rng.IntN(60) == 0 { // killed right after settling
						kills.Add(1)
						killServerSide(b, container)
						break
					}
				}
				conn.Close()
			}
		}()
	}

	// One broker restart, part-way through.
	restarted := make(chan error, 1)
	go func() {
		err := b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Acked >= n/3 })
		if err == nil {
			err = b.Restart()
		}
		restarted <- err
	}()

	require.NoError(t, <-produced)
	require.NoError(t, <-restarted)
	// Everything stored has been acknowledged once the queue is empty.
	require.NoError(t, b.WaitForDepth(ctx, addr, 0), b.Dump())
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	dups, twice := 0, 0
	for i := range n {
		require.GreaterOrEqual(t, receipts[i], 1, "message %d never delivered", i)
		if receipts[i] > 1 {
			twice++
			dups += receipts[i] - 1
		}
	}
	st := b.Stats()
	t.Logf("fault campaign: %d messages, %d consumer kills, 1 broker restart, %d producer resends; "+
		"%d deliveries seen by consumers, %d duplicates over %d messages; broker: delivered %d, redelivered %d, acked %d",
		n, kills.Load(), resends.Load(), n+dups, dups, twice, st.Delivered, st.Redelivered, st.Acked)
	require.GreaterOrEqual(t, st.Acked, uint64(n))
	require.Greater(t, kills.Load(), int64(0))
}

// killServerSide cuts the connection of the client with that container-id, as a
// crash of the consumer would.
func killServerSide(b *fakebroker.Broker, container string) {
	for _, l := range b.Links() {
		if l.Container == container {
			b.DropConnection(l.Conn)
			return
		}
	}
}
