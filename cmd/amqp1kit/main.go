// Command amqp1kit serves amqp1kit's fake AMQP 1.0 intermediaries on loopback ports, as
// the oslo.messaging deployment guide deploys the real ones: a router for RPC and a
// broker for notifications; and it pokes at a bus (the fakes or real ones) the way an
// OpenStack service does, through the driver package.
//
//	amqp1kit serve                      # router on 127.0.0.1:5672, broker on 127.0.0.1:5673
//	amqp1kit serve --no-broker --router-config qdrouterd.conf --trace
//	amqp1kit serve --no-router --broker-config qpidd.conf --broker-dir /var/tmp/journal
//	amqp1kit serve --http 127.0.0.1:8672        # and a live status page, its JSON and /metrics
//
//	amqp1kit call compute echo '{"value": 1}'          # prints the JSON result
//	amqp1kit cast --fanout compute refresh
//	amqp1kit notify --priority error notifications compute.instance.delete.end '{"id": "i-1"}'
//	amqp1kit listen --count 1 notifications            # one JSON line per notification
//	amqp1kit stat                                      # product, version, addressing; a router's qdstat tables
//	amqp1kit stat --url amqp://127.0.0.1:5673          # a broker: its open frame only
//	amqp1kit bench --calls 1000 --concurrency 10       # calls/s, p50 and p99 latency
//
// serve runs until interrupted (SIGINT or SIGTERM) and then closes every client
// connection cleanly; so does listen without --count.
//
// The bus commands take --url (default amqp://127.0.0.1:5672 for RPC, stat and bench,
// amqp://127.0.0.1:5673 for notify and listen, as the guide puts notifications on the
// broker), or --config FILE, an oslo.messaging configuration file whose transport_url
// (for notifications its [oslo_messaging_notifications] transport_url) and
// [oslo_messaging_amqp] options are used; an explicit --url wins. --timeout (default
// 30s) bounds connecting and each send or call. call and cast take the target flags
// --exchange, --server, --namespace and --version, and cast --fanout.
//
// Exit codes: 0 on success, 1 when the operation fails (a remote exception, a timeout,
// an unreachable intermediary), 2 for bad input (unknown flag, bad JSON, unknown
// priority, a transport URL or option the driver refuses), naming it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

type cli struct {
	Serve  serveCmd  `cmd:"" help:"Serve the fake router (qdrouterd-like, for RPC) and the fake broker (qpidd-like, for notifications) until interrupted."`
	Call   callCmd   `cmd:"" help:"Call METHOD on a server of TOPIC and print the JSON result."`
	Cast   castCmd   `cmd:"" help:"Cast METHOD to a server of TOPIC (with --fanout, to every server) without waiting for a result."`
	Notify notifyCmd `cmd:"" help:"Send a notification on TOPIC (to TOPIC.PRIORITY)."`
	Listen listenCmd `cmd:"" help:"Print the notifications of TOPIC..., one JSON line each, until interrupted or --count received."`
	Stat   statCmd   `cmd:"" help:"Connect and print what the intermediary says about itself and the addressing mode the driver picks; for a router (the fake or qdrouterd), its statistics, connections, links and addresses as qdstat shows them, over its management protocol."`
	Bench  benchCmd  `cmd:"" help:"Serve an echo method on a topic of its own and measure RPC calls/s and latency through the intermediary."`
}

type serveCmd struct {
	RouterAddr     string `name:"router-addr" default:"127.0.0.1:5672" help:"Address the fake router listens on."`
	RouterConfig   string `name:"router-config" type:"existingfile" help:"A qdrouterd.conf whose address and linkRoute sections the router follows (its listener is used when --router-addr is not given)."`
	NoRouter       bool   `name:"no-router" help:"Do not serve the router."`
	MulticastDrops bool   `name:"multicast-drops" help:"Behave as the older qdrouterd the deployment guide describes: multicast senders have credit without a consumer and what nobody consumes is dropped (qdrouterd 1.10 and later, and the default here, give them no credit)."`
	BrokerAddr     string `name:"broker-addr" default:"127.0.0.1:5673" help:"Address the fake broker listens on."`
	BrokerConfig   string `name:"broker-config" type:"existingfile" help:"A qpidd.conf whose port, queue-patterns and topic-patterns the broker follows (its port is used when --broker-addr is not given)."`
	BrokerDir      string `name:"broker-dir" help:"A directory for the broker's journal: durable messages survive a restart."`
	NoBroker       bool   `name:"no-broker" help:"Do not serve the broker."`
	HTTP           string `name:"http" placeholder:"ADDR" help:"Serve a live status page of the fakes, their JSON and Prometheus /metrics on this loopback host:port (e.g. 127.0.0.1:8672); off by default."`
	Trace          bool   `help:"Print every frame the fakes send and receive."`
	Verbose        bool   `short:"v" help:"Log connection events."`
	CPUProfile     string `name:"cpu-profile" placeholder:"FILE" help:"Write a CPU profile of the fakes to FILE, from start to shutdown (go tool pprof FILE)."`
	brokerLimitFlags
}

func (s *serveCmd) Run(ctx context.Context, kctx *kong.Context) error {
	if s.NoRouter && s.NoBroker {
		return fmt.Errorf("--no-router and --no-broker leave nothing to serve")
	}
	if s.HTTP != "" {
		if err := loopbackAddr(s.HTTP); err != nil {
			return err
		}
	}
	level := slog.LevelWarn
	if s.Verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	out := kctx.Stdout
	var closers []func() error
	if s.CPUProfile != "" {
		stop, err := startCPUProfile(s.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var router *fakerouter.Router
	var broker *fakebroker.Broker
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()
	if !s.NoRouter {
		opts := &fakerouter.Options{ConfigFile: s.RouterConfig, Logger: logger, MulticastDropsWithoutConsumer: s.MulticastDrops}
		// An explicit flag wins over the config file's listener.
		if s.RouterConfig == "" || flagGiven(kctx, "router-addr") {
			opts.Addr = s.RouterAddr
		}
		if s.Trace {
			opts.Trace = func(f fakerouter.Frame) { fmt.Fprintln(os.Stderr, "router", f) }
		}
		r, err := fakerouter.Run(opts)
		if err != nil {
			return err
		}
		closers = append(closers, r.Close)
		router = r
		fmt.Fprintf(out, "fake router (qdrouterd-like, for RPC):          %s\n", r.URL())
	}
	if !s.NoBroker {
		opts := &fakebroker.Options{ConfigFile: s.BrokerConfig, Dir: s.BrokerDir, Logger: logger}
		if err := s.brokerLimitFlags.apply(kctx, opts); err != nil {
			return err
		}
		// An explicit flag wins; so does the default when the file names no port (the
		// guide's qpidd.conf has only patterns).
		if s.BrokerConfig == "" || flagGiven(kctx, "broker-addr") || !configHasPort(s.BrokerConfig) {
			opts.Addr = s.BrokerAddr
		}
		if s.Trace {
			opts.Trace = func(f fakebroker.Frame) { fmt.Fprintln(os.Stderr, "broker", f) }
		}
		b, err := fakebroker.Run(opts)
		if err != nil {
			return err
		}
		closers = append(closers, b.Close)
		broker = b
		fmt.Fprintf(out, "fake broker (qpidd-like, for notifications):    %s\n", b.URL())
	}
	if s.HTTP != "" {
		url, stop, err := serveStatus(s.HTTP, router, broker, logger)
		if err != nil {
			return err
		}
		closers = append(closers, stop)
		fmt.Fprintf(out, "%-48s%s\n", "status page (JSON under api/, /metrics):", url)
	}
	fmt.Fprintln(out, "press Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
}

// startCPUProfile writes a CPU profile to path until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// configHasPort reports whether a qpidd.conf sets port (an unreadable file is left
// for the broker to report).
func configHasPort(path string) bool {
	cfg, err := fakebroker.LoadConfig(path)
	return err != nil || cfg.Port != ""
}

func flagGiven(kctx *kong.Context, name string) bool {
	for _, a := range kctx.Args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode carries kong's requested exit (after --help) out of the parser.
type exitCode int

// run is the whole command; ctx ends a serve or a listen, and interrupts the others.
// Usage errors (kong's, and usageError) exit 2, failures 1.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if c, ok := r.(exitCode); ok {
				code = int(c)
				return
			}
			// A bug: say so in one line, with the stack under -v for the report.
			fmt.Fprintf(stderr, "amqp1kit: internal error (please report it): %v\n", r)
			if slices.Contains(args, "-v") || slices.Contains(args, "--verbose") {
				stderr.Write(debug.Stack())
			} else {
				fmt.Fprintln(stderr, "amqp1kit: run the same command with -v to print the stack")
			}
			code = 1
		}
	}()
	var c cli
	parser, err := kong.New(&c,
		kong.Name("amqp1kit"),
		kong.Description("Fake AMQP 1.0 intermediaries for oslo.messaging and any AMQP 1.0 client."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitCode(c)) }),
		kong.BindTo(ctx, (*context.Context)(nil)),
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "amqp1kit:", err)
		return 2
	}
	kctx.Stdout = stdout
	if err := kctx.Run(kctx); err != nil {
		fmt.Fprintln(stderr, "amqp1kit:", err)
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	return 0
}
