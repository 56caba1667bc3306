package driver_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/driver"
)

// Benchmarks against an intermediary in another process, as cmd/benchmatrix runs its
// go-calls and roundtrip workloads (1 KiB payloads, echo server in this process), so
// that a CPU or memory profile covers the client's process only:
//
//	amqp1kit serve --no-broker --router-addr 127.0.0.1:25672 &
//	AMQP1KIT_BENCH_URL=amqp://127.0.0.1:25672 go test ./driver -run NONE \
//	    -bench External -benchmem -benchtime 10000x -cpuprofile cpu.out
//
// Besides ns/op they report this process's CPU time (user and system) and voluntary
// context switches per operation. Skipped without AMQP1KIT_BENCH_URL.

func externalURL(b *testing.B) string {
	url := os.Getenv("AMQP1KIT_BENCH_URL")
	if url == "" {
		b.Skip("AMQP1KIT_BENCH_URL is not set")
	}
	return url
}

// processUsage is this process's CPU time and voluntary context switches so far.
func processUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw
}

// measureExternal runs op b.N times after 200 warm-up runs and reports the process's
// CPU µs and voluntary context switches per op.
func measureExternal(b *testing.B, op func() error) {
	for range 200 {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, csw0 := processUsage()
	for range b.N {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	cpu, csw := processUsage()
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(csw-csw0)/float64(b.N), "vcsw/op")
}

// BenchmarkExternalCall is benchmatrix's go-calls: sequential calls of echo with a
// 1 KiB argument to an RPC server on its own transport in this process.
func BenchmarkExternalCall(b *testing.B) {
	url := externalURL(b)
	topic := "bench-external-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"echo": func(ctx context.Context, req *driver.Request) (any, error) { return req.Args["payload"], nil },
	}}
	srv, err := driver.NewRPCServer(benchTransport(b, url), driver.Target{Topic: topic, Server: "bench"}, []driver.Endpoint{ep}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop(context.Background()) })
	<-srv.Ready()
	client := driver.NewRPCClient(benchTransport(b, url), driver.Target{Topic: topic}, &driver.ClientOptions{Timeout: time.Minute})
	args := map[string]any{"payload": strings.Repeat("x", 1024)}
	measureExternal(b, func() error {
		_, err := client.Call(context.Background(), nil, "echo", args)
		return err
	})
}

// BenchmarkExternalRoundTrip is benchmatrix's roundtrip, go-amqp alone: a 1 KiB
// request, unsettled, that a consumer on another connection accepts and answers
// pre-settled on a second address.
func BenchmarkExternalRoundTrip(b *testing.B) {
	url := externalURL(b)
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	reqAddr, repAddr := "unicast.bench-"+id+"-req", "unicast.bench-"+id+"-rep"
	session := func() *amqp.Session {
		c, err := amqp.Dial(ctx, url, nil)
		must(err)
		b.Cleanup(func() { c.Close() })
		s, err := c.NewSession(ctx, nil)
		must(err)
		return s
	}
	csess, ssess := session(), session()
	replies, err := csess.NewReceiver(ctx, repAddr, &amqp.ReceiverOptions{Credit: 100})
	must(err)
	requests, err := ssess.NewReceiver(ctx, reqAddr, &amqp.ReceiverOptions{Credit: 100})
	must(err)
	answer, err := ssess.NewSender(ctx, repAddr, nil)
	must(err)
	ask, err := csess.NewSender(ctx, reqAddr, nil)
	must(err)
	go func() {
		for {
			m, err := requests.Receive(ctx, nil)
			if err == nil {
				err = requests.AcceptMessage(ctx, m)
			}
			if err == nil {
				err = answer.Send(ctx, &amqp.Message{
					Properties: &amqp.MessageProperties{CorrelationID: m.Properties.MessageID},
					Data:       [][]byte{m.GetData()},
				}, &amqp.SendOptions{Settled: true})
			}
			if err != nil {
				return // the connection closed at the end
			}
		}
	}()
	body := make([]byte, 1024)
	var n uint64
	measureExternal(b, func() error {
		n++
		r, err := ask.SendWithReceipt(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: n}, Data: [][]byte{body}}, nil)
		if err != nil {
			return err
		}
		if _, err := r.Wait(ctx); err != nil {
			return err
		}
		m, err := replies.Receive(ctx, nil)
		if err != nil {
			return err
		}
		return replies.AcceptMessage(ctx, m)
	})
}
