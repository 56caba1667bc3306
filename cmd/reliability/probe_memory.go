package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// memoryAddress is the queue of the memory probe: the guide's unicast pattern makes it
// on both brokers.
const memoryAddress = "unicast.reliability.memory"

// probeMemory measures a broker's memory ceiling (RELIABILITY.md, "Broker memory
// ceiling"): one slow consumer (go-amqp, credit 10, accepting a message every
// --memory-delay) and one sender flooding unsettled 1 KiB messages into the same queue
// for --memory-for, written frame by frame as fast as the broker grants credit; a
// link the broker detaches (at a queue limit) is attached again at once, as a client
// that retries would. It reports the broker's RSS (peak, at the end, over time), what
// the sender sent and got accepted, how often and why its link was detached, and what
// the consumer took.
func probeMemory(ctx context.Context, e *env, t *target, r *result) {
	rss0, _ := t.rssKiB()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.memoryFor)
	defer cancel()

	conn, err := amqp.Dial(ctx, t.url(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		r.err = fmt.Errorf("consumer: %w", err)
		return
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		r.err = fmt.Errorf("consumer: %w", err)
		return
	}
	rcv, err := sess.NewReceiver(ctx, memoryAddress, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		r.err = fmt.Errorf("consumer: %w", err)
		return
	}
	var consumed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil { // Receive returns prefetched messages whatever ctx says
			m, err := rcv.Receive(ctx, nil)
			if err != nil {
				return
			}
			time.Sleep(e.cfg.memoryDelay)
			if rcv.AcceptMessage(context.Background(), m) == nil {
				consumed.Add(1)
			}
		}
	})

	s := sampleRSS(t.pid, e.cfg.sample)
	f, ferr := floodUnsettled(ctx, t.addr, memoryAddress, e.cfg.memoryFor+10*time.Second)
	wg.Wait()
	samples := s.finish()
	if ferr != nil && ctx.Err() == nil {
		r.err = fmt.Errorf("sender: %w", ferr)
		return
	}
	end, _ := t.rssKiB()
	peak := end
	for _, k := range samples {
		peak = max(peak, k)
	}
	r.add(
		num("RSS before", mib(rss0), "MiB"),
		cmp(num("RSS peak", mib(peak), "MiB")),
		cmp(num("RSS at the end", mib(end), "MiB")),
		txt("RSS over time", series(samples, e.cfg.sample)),
		num("sent (unsettled)", float64(f.sent), ""),
		num("sent", float64(f.sent*int64(f.encoded))/(1<<20), "MiB"),
		num("accepted", float64(f.accepted), ""),
		num("consumed", float64(consumed.Load()), ""),
		num("sender detached", float64(f.detaches), "times"),
	)
	if f.firstDetach != "" {
		r.add(txt("first detach", f.firstDetach))
	}
}

// floodCount is what floodUnsettled did.
type floodCount struct {
	sent, accepted, detaches int64
	encoded                  int // bytes of each message, encoded
	firstDetach              string
}

// floodUnsettled sends unsettled 1 KiB messages to address as fast as credit allows
// until ctx ends, attaching again whenever the broker detaches the link. The broker's
// frames name the link by its own handle, learnt from its attach. timeout bounds each
// read of the broker's frames.
func floodUnsettled(ctx context.Context, addr, address string, timeout time.Duration) (*floodCount, error) {
	r := &floodCount{}
	fc, err := frameclient.Dial(addr)
	if err != nil {
		return r, err
	}
	defer fc.Close()
	fc.Timeout = timeout
	if _, err := fc.Open(&wire.Open{ContainerID: "reliability-memory", MaxFrameSize: 65536, ChannelMax: 15}); err != nil {
		return r, err
	}
	if _, err := fc.Begin(0, &wire.Begin{IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, HandleMax: 1023}); err != nil {
		return r, err
	}
	stopRead := context.AfterFunc(ctx, func() { _ = fc.NetConn().SetReadDeadline(time.Now()) })
	defer stopRead()
	payload, err := (&wire.Message{Data: [][]byte{body1KiB}}).AppendTo(nil)
	if err != nil {
		return r, err
	}
	r.encoded = len(payload)

	// The reader keeps the credit of the current link (limit: the delivery-count up to
	// which the broker allows transfers) and says when the link is detached.
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		handle   uint32             // the current link's, ours
		peer     uint32 = 1<<32 - 1 // the broker's for it, once it answered the attach
		limit    uint32             // for the current handle
		sentOn   uint32             // transfers on the current handle
		detached bool
		readErr  error
	)
	linkName := func(h uint32) string { return "flood-" + strconv.FormatUint(uint64(h), 10) }
	readerDone := make(chan struct{})
	defer func() {
		fc.Close() // ends the reader's Next
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		for {
			f, err := fc.Next()
			mu.Lock()
			if err != nil {
				readErr = err
				cond.Broadcast()
				mu.Unlock()
				return
			}
			switch b := f.Body.(type) {
			case *wire.Attach:
				if b.Name == linkName(handle) {
					peer = b.Handle
				}
			case *wire.Flow:
				if b.Handle != nil && *b.Handle == peer && b.LinkCredit != nil && b.DeliveryCount != nil {
					limit = *b.DeliveryCount + *b.LinkCredit
					cond.Broadcast()
				}
			case *wire.Disposition:
				if _, ok := b.State.(*wire.Accepted); ok {
					last := b.First
					if b.Last != nil {
						last = *b.Last
					}
					r.accepted += int64(last - b.First + 1)
				}
			case *wire.Detach:
				if b.Handle == peer {
					detached = true
					r.detaches++
					if r.firstDetach == "" && b.Error != nil {
						r.firstDetach = fmt.Sprintf("%s %q", b.Error.Condition, b.Error.Description)
					}
					cond.Broadcast()
				}
			}
			mu.Unlock()
		}
	}()
	// Wake the sender when ctx ends, whatever it waits for.
	stopWake := context.AfterFunc(ctx, func() {
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	})
	defer stopWake()

	attach := func(h uint32) error {
		zero := uint32(0)
		return fc.Write(0, &wire.Attach{Name: linkName(h), Handle: h, Role: wire.RoleSender,
			SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: address},
			InitialDeliveryCount: &zero})
	}
	if err := attach(0); err != nil {
		return r, err
	}
	var outID uint32
	format := uint32(0)
	for ctx.Err() == nil {
		mu.Lock()
		for !detached && readErr == nil && int32(limit-sentOn) <= 0 && ctx.Err() == nil {
			cond.Wait()
		}
		if readErr != nil {
			mu.Unlock()
			if ctx.Err() != nil {
				return r, nil
			}
			return r, readErr
		}
		if detached {
			// Answer the detach and attach again under the next handle.
			old := handle
			handle, peer, limit, sentOn, detached = (handle+1)%1024, 1<<32-1, 0, 0, false
			h := handle
			mu.Unlock()
			if err := fc.Write(0, &wire.Detach{Handle: old, Closed: true}); err != nil {
				return r, err
			}
			if err := attach(h); err != nil {
				return r, err
			}
			continue
		}
		h := handle
		sentOn++
		mu.Unlock()
		id := outID
		outID++
		if err := fc.WriteTransfer(0, &wire.Transfer{Handle: h, DeliveryID: &id,
			DeliveryTag: []byte(strconv.FormatUint(uint64(id), 10)), MessageFormat: &format}, payload); err != nil {
			if ctx.Err() != nil {
				return r, nil
			}
			return r, err
		}
		r.sent++
	}
	return r, nil
}
