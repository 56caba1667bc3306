// Command amqp1kit serves amqp1kit's fake AMQP 1.0 intermediaries on loopback ports, as
// the oslo.messaging deployment guide deploys the real ones: a router for RPC and a
// broker for notifications.
//
//	amqp1kit serve                      # router on 127.0.0.1:5672, broker on 127.0.0.1:5673
//	amqp1kit serve --no-broker --router-config qdrouterd.conf --trace
//	amqp1kit serve --no-router --broker-config qpidd.conf --broker-dir /var/tmp/journal
//
// It runs until interrupted (SIGINT or SIGTERM) and then closes every client
// connection cleanly.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

type cli struct {
	Serve serveCmd `cmd:"" help:"Serve the fake router (qdrouterd-like, for RPC) and the fake broker (qpidd-like, for notifications) until interrupted."`
}

type serveCmd struct {
	RouterAddr   string `name:"router-addr" default:"127.0.0.1:5672" help:"Address the fake router listens on."`
	RouterConfig string `name:"router-config" type:"existingfile" help:"A qdrouterd.conf whose address and linkRoute sections the router follows (its listener is used when --router-addr is not given)."`
	NoRouter     bool   `name:"no-router" help:"Do not serve the router."`
	BrokerAddr   string `name:"broker-addr" default:"127.0.0.1:5673" help:"Address the fake broker listens on."`
	BrokerConfig string `name:"broker-config" type:"existingfile" help:"A qpidd.conf whose port, queue-patterns and topic-patterns the broker follows (its port is used when --broker-addr is not given)."`
	BrokerDir    string `name:"broker-dir" help:"A directory for the broker's journal: durable messages survive a restart."`
	NoBroker     bool   `name:"no-broker" help:"Do not serve the broker."`
	Trace        bool   `help:"Print every frame the fakes send and receive."`
	Verbose      bool   `short:"v" help:"Log connection events."`
}

func (s *serveCmd) Run(ctx context.Context, kctx *kong.Context) error {
	if s.NoRouter && s.NoBroker {
		return fmt.Errorf("--no-router and --no-broker leave nothing to serve")
	}
	level := slog.LevelWarn
	if s.Verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	out := kctx.Stdout
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()
	if !s.NoRouter {
		opts := &fakerouter.Options{ConfigFile: s.RouterConfig, Logger: logger}
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
		fmt.Fprintf(out, "fake router (qdrouterd-like, for RPC):          %s\n", r.URL())
	}
	if !s.NoBroker {
		opts := &fakebroker.Options{ConfigFile: s.BrokerConfig, Dir: s.BrokerDir, Logger: logger}
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
		fmt.Fprintf(out, "fake broker (qpidd-like, for notifications):    %s\n", b.URL())
	}
	fmt.Fprintln(out, "press Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
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

// run is the whole command; ctx ends a serve.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if c, ok := r.(exitCode); ok {
				code = int(c)
				return
			}
			panic(r)
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
		return 1
	}
	return 0
}
