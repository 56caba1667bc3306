// Command amqp1kit serves amqp1kit's fake AMQP 1.0 intermediaries on loopback ports.
//
//	amqp1kit serve                      # the fake router on 127.0.0.1:5672
//	amqp1kit serve --router-config qdrouterd.conf --trace
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

	"github.com/amqp1kit/amqp1kit/fakerouter"
)

type cli struct {
	Serve serveCmd `cmd:"" help:"Serve the fake router (qdrouterd-like) until interrupted."`
}

type serveCmd struct {
	RouterAddr   string `name:"router-addr" default:"127.0.0.1:5672" help:"Address the fake router listens on."`
	RouterConfig string `name:"router-config" type:"existingfile" help:"A qdrouterd.conf whose address and linkRoute sections the router follows (its listener is used when --router-addr is not given)."`
	Trace        bool   `help:"Print every frame the fakes send and receive."`
	Verbose      bool   `short:"v" help:"Log connection events."`
}

func (s *serveCmd) Run(ctx context.Context, kctx *kong.Context) error {
	level := slog.LevelWarn
	if s.Verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
	out := kctx.Stdout
	fmt.Fprintf(out, "fake router (qdrouterd-like, for RPC): %s\n", r.URL())
	fmt.Fprintln(out, "fake broker: not built yet (issue 5); only the router is served")
	fmt.Fprintln(out, "press Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return r.Close()
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
