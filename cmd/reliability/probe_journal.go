package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"
)

// probeJournal kills `amqp1kit serve --broker-dir` with SIGKILL in the middle of a
// stream of durable sends, restarts it on the same directory, resends what was not
// acknowledged (an at-least-once publisher) and counts what a consumer then gets.
func probeJournal(ctx context.Context, e *env, name string) *result {
	r := &result{}
	var lost, dupAcked, dupDoubt, acked, doubt []float64
	for run := 1; run <= e.cfg.jRuns && ctx.Err() == nil; run++ {
		j, err := journalOnce(ctx, e, name)
		if err != nil {
			r.err = fmt.Errorf("run %d: %w", run, err)
			break
		}
		e.logf("  run %d: %d accepted before the kill, %d in doubt; after restart and resend: %d lost, %d duplicated of the accepted, %d of those in doubt",
			run, j.acked, j.doubt, j.lost, j.dupAcked, j.dupDoubt)
		acked = append(acked, float64(j.acked))
		doubt = append(doubt, float64(j.doubt))
		lost = append(lost, float64(j.lost))
		dupAcked = append(dupAcked, float64(j.dupAcked))
		dupDoubt = append(dupDoubt, float64(j.dupDoubt))
	}
	r.add(
		num("runs", float64(len(lost)), ""),
		num("durable sends per run", float64(e.cfg.jSends), ""),
		txt("accepted before the kill, each run", joinNums(acked)),
		txt("sent but unanswered at the kill (in doubt), each run", joinNums(doubt)),
		num("lost, all runs", sum(lost), ""),
		num("duplicated among those accepted before the kill, all runs", sum(dupAcked), ""),
		num("duplicated among those in doubt (resent), all runs", sum(dupDoubt), ""),
	)
	return r
}

type journalRun struct{ acked, doubt, lost, dupAcked, dupDoubt int }

func journalOnce(ctx context.Context, e *env, name string) (*journalRun, error) {
	dir, err := os.MkdirTemp("", "reliability-journal-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t, err := e.starter.start(name, dir)
	if err != nil {
		return nil, err
	}
	address := "unicast.reliability-journal"
	n := e.cfg.jSends
	// Kill somewhere between 30 % and 70 % of the stream.
	killAt := int64(n*3/10 + rand.IntN(max(1, n*4/10)))
	state := make([]atomic.Int32, n) // 0 not sent, 1 sent, 2 accepted
	var accepted atomic.Int64
	killed := make(chan struct{})
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			_ = t.kill()
			close(killed)
		})
	}
	const senders = 8
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			f, err := newFlooder(ctx, t.url(), address, false)
			if err != nil {
				return
			}
			defer f.conn.Close()
			for i := w; i < n; i += senders {
				select {
				case <-killed:
					return
				default:
				}
				state[i].Store(1)
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := f.sender.Send(sctx, &amqp.Message{Header: &amqp.MessageHeader{Durable: true}, Data: [][]byte{body1KiB},
					ApplicationProperties: map[string]any{"seq": int64(i)}}, nil)
				cancel()
				if err != nil {
					return
				}
				state[i].Store(2)
				if accepted.Add(1) == killAt {
					e.logf("  kill -9 after %d accepted", killAt)
					kill()
				}
			}
		})
	}
	wg.Wait()
	kill() // in case the stream ended first (tiny runs)
	res := &journalRun{}
	var resend []int
	for i := range state {
		switch state[i].Load() {
		case 2:
			res.acked++
		case 1:
			res.doubt++
			resend = append(resend, i)
		default:
			resend = append(resend, i)
		}
	}
	t2, err := e.starter.start(name, dir)
	if err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	defer t2.stop()
	f, err := newFlooder(ctx, t2.url(), address, false)
	if err != nil {
		return nil, fmt.Errorf("resending: %w", err)
	}
	for _, i := range resend {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f.sender.Send(sctx, &amqp.Message{Header: &amqp.MessageHeader{Durable: true}, Data: [][]byte{body1KiB},
			ApplicationProperties: map[string]any{"seq": int64(i)}}, nil)
		cancel()
		if err != nil {
			f.conn.Close()
			return nil, fmt.Errorf("resending %d: %w", i, err)
		}
	}
	f.conn.Close()
	got, _, _, err := drainQueue(ctx, t2.url(), address, e.cfg.quiet)
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("draining: %w", err)
	}
	for i := range n {
		c := got[int64(i)]
		switch {
		case c == 0:
			res.lost++
		case c > 1 && state[i].Load() == 2:
			res.dupAcked += c - 1
		case c > 1:
			res.dupDoubt += c - 1
		}
	}
	return res, nil
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func joinNums(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.0f", x)
	}
	return s
}
