package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/driver"
)

type benchCmd struct {
	connFlags   `embed:"" set:"default_url=amqp://127.0.0.1:5672"`
	Calls       int    `default:"1000" placeholder:"N" help:"Number of calls."`
	Concurrency int    `short:"c" default:"10" placeholder:"C" help:"Calls in flight at once."`
	Size        int    `default:"0" placeholder:"BYTES" help:"Size of the string argument each call sends and gets back."`
	Topic       string `placeholder:"TOPIC" help:"Topic of the echo server (default: amqp1kit-bench-<random>)."`
}

func (c *benchCmd) Validate() error {
	switch {
	case c.Calls < 1:
		return fmt.Errorf("--calls must be at least 1 (got %d)", c.Calls)
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1 (got %d)", c.Concurrency)
	case c.Size < 0:
		return fmt.Errorf("--size must not be negative (got %d)", c.Size)
	}
	return c.resolve(false)
}

// Run serves an echo method on a topic of its own over one connection and calls it
// over another, both to --url, so that every call crosses the intermediary twice
// (request and reply). --timeout bounds each call and the setup.
func (c *benchCmd) Run(ctx context.Context, kctx *kong.Context) error {
	topic := c.Topic
	if topic == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		topic = "amqp1kit-bench-" + hex.EncodeToString(b[:])
	}
	st, err := c.transport(kctx.Stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ct, err := c.transport(kctx.Stderr)
	if err != nil {
		return err
	}
	defer ct.Close()
	a, err := connect(ctx, ct, c.Timeout)
	if err != nil {
		return err
	}
	if _, err := connect(ctx, st, c.Timeout); err != nil {
		return err
	}
	srv, err := driver.NewRPCServer(st, driver.Target{Topic: topic, Server: "bench"}, []driver.Endpoint{{
		Methods: map[string]driver.Method{
			"echo": func(_ context.Context, req *driver.Request) (any, error) {
				return req.Args["payload"], nil
			},
		},
	}}, nil)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(sctx)
	}()
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		return errors.New("interrupted")
	case <-time.After(c.Timeout):
		return fmt.Errorf("the echo server's links were not attached within %s", c.Timeout)
	}

	client := driver.NewRPCClient(ct, driver.Target{Topic: topic}, &driver.ClientOptions{Timeout: c.Timeout})
	args := map[string]any{"payload": strings.Repeat("x", c.Size)}
	// One call first, not counted: the intermediary may need a moment to route to the
	// server's new links, and the client's links are attached on first use.
	if _, err := client.Call(ctx, nil, "echo", args); err != nil {
		return fmt.Errorf("the echo server did not answer: %w", err)
	}
	product, version, _ := ct.PeerProduct()
	mode := "routable"
	if a.Legacy() {
		mode = "legacy"
	}
	fmt.Fprintf(kctx.Stderr, "bench: %d calls, concurrency %d, %d-byte argument, through %s (%s %s, %s addresses)\n",
		c.Calls, c.Concurrency, c.Size, ct.URL().Redacted(), orNone(product), version, mode)

	latencies := make([]time.Duration, c.Calls)
	var (
		next     atomic.Int64
		failures atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	want, _ := json.Marshal(args["payload"])
	start := time.Now()
	for range min(c.Concurrency, c.Calls) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= c.Calls || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				res, err := client.Call(ctx, nil, "echo", args)
				latencies[i] = time.Since(t0)
				if err == nil && !jsonEqual(res, want) {
					err = fmt.Errorf("echo returned %.40s, not what was sent", res)
				}
				if err != nil {
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	slices.Sort(latencies)
	fmt.Fprintf(kctx.Stdout, "%d calls in %s: %.1f calls/s, latency p50 %s, p99 %s\n",
		c.Calls, elapsed.Round(time.Millisecond), float64(c.Calls)/elapsed.Seconds(),
		percentile(latencies, 50).Round(time.Microsecond), percentile(latencies, 99).Round(time.Microsecond))
	if n := failures.Load(); n > 0 {
		return fmt.Errorf("%d of %d calls failed, the first with: %w", n, c.Calls, firstErr)
	}
	return nil
}

// percentile returns the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// jsonEqual compares two JSON texts as values (the server writes Python's spacing).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
