// Command benchmatrix measures amqp1kit's fakes as users deploy them, beside the real
// programs they imitate, in one run: each intermediary in a process of its own, the
// clients in another, and the figures that go into BENCHMARKS.md as ratios.
//
//	go run ./cmd/benchmatrix                                  # everything, 3 rounds of 5 s cells
//	go run ./cmd/benchmatrix --rounds 5 --markdown /tmp/matrix.md
//	go run ./cmd/benchmatrix --only passthrough,roundtrip --only fakerouter,qdrouterd
//	go run ./cmd/benchmatrix --list                           # the workloads and intermediaries
//
// The intermediaries, each its own process on a port of 127.0.0.1, started once before
// the first round and stopped at the end (also on Ctrl-C):
//
//   - fakerouter: `amqp1kit serve --no-broker` (built from this checkout with go build,
//     or --amqp1kit PATH);
//   - fakebroker: `amqp1kit serve --no-router`;
//   - qdrouterd: the real qdrouterd 1.19.0 with the deployment guide's configuration
//     (internal/testenv/realpeer; built by scripts/real-peers.sh);
//   - qpidd: the real qpidd 1.39.0, the guide's configuration, nothing on disk;
//   - rabbitmq: a private RabbitMQ 3.10 node with rabbitmq_amqp1_0 (internal/testenv/rabbitmq);
//   - floor: a plain TCP relay (the floor's intermediary, see below).
//
// The workloads (1 KiB payloads unless --size says otherwise), each run by a client
// process started for the cell (this program re-executed, or the Python script):
//
//   - passthrough: one go-amqp sender → intermediary → one go-amqp receiver on one
//     address, unsettled (the receiver accepts each message), up to 250 awaiting their
//     outcome and at most 1000 sent but not yet received; msgs/s until the receiver has
//     them all. Not on RabbitMQ: with a pipelining sender, RabbitMQ 3.10 stops delivering
//     to the receiver for good after a few thousand messages, credit outstanding.
//   - roundtrip: a go-amqp client sends a request (unsettled) to one address; a consumer
//     (another connection of the same client process) accepts it and answers pre-settled
//     on a second address the client receives from; one at a time; round trips/s, p50.
//   - go-calls, go-calls16: the Go driver (driver/): an echo RPC server and a client, each
//     on its own transport (connection) in the same client process, as `amqp1kit bench`
//     does; sequential calls, and 16 goroutines calling at once; calls/s, p50.
//   - go-casts: casts to the same server, timed until the server has them all.
//   - go-notify: a Notifier and a Listener (own transports), one notification at a time,
//     each acknowledged; timed until the listener has them all.
//   - py-calls, py-calls16: the Python oslo.messaging driver (testdata/peers/oslo_bench.py,
//     /usr/bin/python3 or $AMQP1KIT_PYTHON), echo server and client in one Python process,
//     sequential calls and 16 threads calling at once.
//   - floor: this machine's floor for a request and reply through an intermediary, three
//     processes and plain TCP: client → relay → server → relay → client, 1 KiB each way,
//     one at a time; round trips/s, p50.
//
// A round runs every selected cell once, workload by workload, the intermediaries of a
// workload one after the other (A B A B ... over the rounds, so that drift of the machine
// hits each alike); each cell warms up (--warmup) and then measures for --duration. For
// each cell the program also samples, from /proc, the CPU time and context switches of
// the intermediary's process and the client's over the measured window, per operation;
// with --strace it attaches strace -f -c to the intermediary for the window and reports its
// system calls per operation (strace slows the intermediary: the rates of such a run are
// not figures to quote).
//
// --only takes workload and intermediary names (repeatable, comma-separated): a cell runs
// when its workload is among those named (or none is) and its intermediary too. An
// intermediary that cannot run here (a real program not built, RabbitMQ or the Python
// modules not installed) is reported and its cells are skipped.
//
// The result: a table on stdout (medians over the rounds, with the range), the ratios the
// design's targets speak of (each the median of the ratios of the same round), and with
// --markdown FILE the same as Markdown for BENCHMARKS.md (- for stdout); --json FILE writes
// every cell's figures. Progress goes to stderr. Exit status 0 when every cell that ran
// succeeded, 1 otherwise, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// roleEnv, when set, makes the program one of the processes of a cell instead of the
// harness (see runRole).
const roleEnv = "AMQP1KIT_BENCHMATRIX_ROLE"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	size        int
	concurrency int
	only        []string
	markdown    string
	jsonOut     string
	amqp1kit    string
	strace      bool
	list        bool
	args        []string // as given, for the report
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("benchmatrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.rounds, "rounds", 3, "rounds: every selected cell runs once per round")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time of each cell")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "warm-up of each cell before it is measured")
	fs.IntVar(&c.size, "size", 1024, "payload bytes (messages, call arguments, notifications, the floor's requests)")
	fs.IntVar(&c.concurrency, "concurrency", 16, "concurrent callers of go-calls16 and py-calls16")
	only := listFlag{}
	fs.Var(&only, "only", "workloads and intermediaries to run (comma-separated, repeatable; see --list)")
	fs.StringVar(&c.markdown, "markdown", "", "write the Markdown report to `FILE` (- for stdout)")
	fs.StringVar(&c.jsonOut, "json", "", "write every cell's figures to `FILE` as JSON")
	fs.StringVar(&c.amqp1kit, "amqp1kit", "", "the amqp1kit binary that serves the fakes (default: go build ./cmd/amqp1kit from this checkout)")
	fs.BoolVar(&c.strace, "strace", false, "attach strace -f -c to the intermediary for each measured window (slows it: rates not comparable)")
	fs.BoolVar(&c.list, "list", false, "list the workloads and intermediaries and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchmatrix [flags]   (go run ./cmd/benchmatrix; see the package doc)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.rounds < 1:
		return nil, fmt.Errorf("--rounds must be at least 1 (got %d)", c.rounds)
	case c.duration <= 0:
		return nil, fmt.Errorf("--duration must be positive (got %s)", c.duration)
	case c.warmup < 0:
		return nil, fmt.Errorf("--warmup must not be negative (got %s)", c.warmup)
	case c.size < 1:
		return nil, fmt.Errorf("--size must be at least 1 (got %d)", c.size)
	case c.concurrency < 1:
		return nil, fmt.Errorf("--concurrency must be at least 1 (got %d)", c.concurrency)
	}
	for _, o := range only {
		if workloadByName(o) == nil && targetByName(o) == nil {
			return nil, fmt.Errorf("--only: %q is neither a workload (%s) nor an intermediary (%s)",
				o, strings.Join(workloadNames(), ", "), strings.Join(targetNames(), ", "))
		}
	}
	c.only = only
	return c, nil
}

// run is the harness; ctx ends it early (Ctrl-C), stopping everything it started.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchmatrix:", err)
		return 2
	}
	if cfg.list {
		printList(stdout)
		return 0
	}
	h := &harness{cfg: cfg, out: stdout, log: stderr}
	defer h.stopAll()
	rep, err := h.run(ctx)
	if rep != nil {
		if werr := h.writeReports(rep); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchmatrix:", err)
		return 1
	}
	if rep.failures > 0 {
		fmt.Fprintf(stderr, "benchmatrix: %d cell(s) failed (see above)\n", rep.failures)
		return 1
	}
	return 0
}

func printList(w io.Writer) {
	fmt.Fprintln(w, "workloads:")
	for _, wl := range workloads {
		fmt.Fprintf(w, "  %-12s %s (on %s)\n", wl.name, wl.title, strings.Join(wl.targets, ", "))
	}
	fmt.Fprintln(w, "intermediaries:")
	for _, t := range targetSpecs {
		fmt.Fprintf(w, "  %-12s %s\n", t.name, t.title)
	}
}
