// Command reliability probes the fake intermediaries under the loads and faults that
// hurt a real deployment, side by side with the real qdrouterd 1.19.0 and qpidd 1.39.0
// where they apply, and prints figures (never verdicts) for RELIABILITY.md:
//
//	stuck     router: a consumer grants 100 000 credit and never reads its socket while
//	          a go-amqp sender floods pre-settled 1 KiB messages; the router's RSS over
//	          time, and whether the consumer's connection is kept
//	leave     router: the only consumer leaves mid pre-settled flood; whether the go-amqp
//	          sender's link is detached (several runs)
//	killed    router and broker: a consumer holding unsettled deliveries is killed (its
//	          socket closed, no close frame); the outcomes the sender gets (router) or
//	          what a second consumer receives, redelivered, lost (broker)
//	conns     thousands of idle connections: RSS per connection; a fresh client still served
//	badinput  ~20 kinds of malformed input, each on a connection of its own, beside a good
//	          client doing round trips: good round trips completed/attempted, how each bad
//	          connection ends
//	journal   fake broker only: kill -9 of `amqp1kit serve --broker-dir` mid-stream of
//	          durable sends, restart, count lost and duplicated (several runs)
//	memory    fake broker and qpidd: a sender floods unsettled 1 KiB messages into a queue
//	          whose one consumer accepts a message every 10 ms; the broker's RSS over
//	          time, what was sent, accepted and consumed, how often and why the sender
//	          was detached
//	fuzz      the engine's and codec's fuzz targets run with go test -fuzz (from the
//	          repository's checkout), corpus kept in the module's fuzz cache
//
// Each intermediary runs in a process of its own: the fakes through `amqp1kit serve`
// (--amqp1kit, or built into a temporary directory from this workspace), the real ones
// through internal/testenv/realpeer with the deployment guide's configuration ($AMQP1KIT_QDROUTERD,
// $AMQP1KIT_QPIDD, see scripts/real-peers.sh); clients run in this process. A real program
// that is not built is reported as such and skipped.
//
//	go run ./reliability                              # every probe, fakes and real programs
//	go run ./reliability --probes stuck,conns --no-real
//	go run ./reliability --markdown > /tmp/tables.md  # the tables of RELIABILITY.md
//
// Progress goes to stderr, results to stdout. The probes are slow (about 16 minutes
// with the defaults and fuzzing); the test runs each once with tiny sizes, fakes only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	probes      []string
	real        bool
	markdown    bool
	verbose     bool
	amqp1kit    string
	sample      time.Duration // RSS sampling interval
	quiet       time.Duration // a peer silent this long has nothing more to send
	flood       time.Duration // stuck: how long the sender floods
	credit      uint32        // stuck: the credit the stuck consumer grants
	leaveRuns   int
	leaveAt     time.Duration // leave: flood before the consumer leaves
	leaveFor    time.Duration // leave: flood after it left
	inflight    int           // killed: deliveries the consumer holds unsettled
	conns       int
	badWait     time.Duration // badinput: how long to wait for a bad connection's end
	badGood     time.Duration // badinput: the good client's time after the last bad kind
	jSends      int
	jRuns       int
	memoryFor   time.Duration // memory: how long the sender floods
	memoryDelay time.Duration // memory: the slow consumer's time per message
	fuzzTime    time.Duration
	fuzzRoot    string
}

var allProbes = []string{"stuck", "leave", "killed", "conns", "badinput", "journal", "memory", "fuzz"}

// probeTargets names the intermediaries each probe runs against.
var probeTargets = map[string][]string{
	"stuck":    {fakeRouter, qdrouterd},
	"leave":    {fakeRouter, qdrouterd},
	"killed":   {fakeRouter, qdrouterd, fakeBroker, qpidd},
	"conns":    {fakeRouter, qdrouterd, fakeBroker, qpidd},
	"badinput": {fakeRouter, qdrouterd, fakeBroker, qpidd},
	"journal":  {fakeBroker},
	"memory":   {fakeBroker, qpidd},
}

// env is what a probe gets.
type env struct {
	cfg      *config
	starter  *starter
	progress io.Writer
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

type probeFunc func(ctx context.Context, e *env, target string) *result

var probeFuncs = map[string]probeFunc{
	"stuck":    started(probeStuck),
	"leave":    probeLeave,
	"killed":   started(probeKilled),
	"conns":    probeConns,
	"badinput": started(probeBadInput),
	"journal":  probeJournal,
	"memory":   started(probeMemory),
}

// started makes a probe of one that runs on one intermediary started with its default
// configuration: it starts the intermediary, gives it to the probe, and stops it
// after; a failure to start is the probe's result.
func started(probe func(ctx context.Context, e *env, t *target, r *result)) probeFunc {
	return func(ctx context.Context, e *env, name string) *result {
		r := &result{}
		t, err := e.starter.start(name, "")
		if err != nil {
			r.err = err
			return r
		}
		defer t.stop()
		probe(ctx, e, t, r)
		return r
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("reliability", flag.ContinueOnError)
	fs.SetOutput(stderr)
	probes := fs.String("probes", strings.Join(allProbes, ","), "probes to run, comma-separated: "+strings.Join(allProbes, ", "))
	noReal := fs.Bool("no-real", false, "run against the fakes only")
	fs.BoolVar(&c.verbose, "v", false, "show the fakes' log (a line for each bad connection they close)")
	fs.BoolVar(&c.markdown, "markdown", false, "print the results as the Markdown tables of RELIABILITY.md")
	fs.StringVar(&c.amqp1kit, "amqp1kit", "", "the amqp1kit binary that serves the fakes (empty: go build it into a temporary directory)")
	fs.DurationVar(&c.sample, "sample", time.Second, "RSS sampling interval")
	fs.DurationVar(&c.quiet, "quiet", 5*time.Second, "how long a consumer waits for more before it takes the peer to have sent everything")
	fs.DurationVar(&c.flood, "flood", 20*time.Second, "stuck: how long the sender floods")
	credit := fs.Uint("credit", 100000, "stuck: the credit the stuck consumer grants")
	fs.IntVar(&c.leaveRuns, "leave-runs", 3, "leave: runs against each router")
	fs.DurationVar(&c.leaveAt, "leave-at", 2*time.Second, "leave: flood time before the consumer leaves")
	fs.DurationVar(&c.leaveFor, "leave-for", 3*time.Second, "leave: flood time after the consumer left")
	fs.IntVar(&c.inflight, "inflight", 50, "killed: unsettled deliveries the consumer holds when it is killed")
	fs.IntVar(&c.conns, "conns", 5000, "conns: idle connections")
	fs.DurationVar(&c.badWait, "bad-wait", 10*time.Second, "badinput: how long to wait for each bad connection to end")
	fs.DurationVar(&c.badGood, "bad-good", 2*time.Second, "badinput: how long the good client goes on after the bad inputs")
	fs.IntVar(&c.jSends, "journal-sends", 20000, "journal: durable sends per run")
	fs.IntVar(&c.jRuns, "journal-runs", 3, "journal: runs")
	fs.DurationVar(&c.memoryFor, "memory-for", 20*time.Second, "memory: how long the sender floods")
	fs.DurationVar(&c.memoryDelay, "memory-delay", 10*time.Millisecond, "memory: the slow consumer's time per message")
	fs.DurationVar(&c.fuzzTime, "fuzztime", 2*time.Minute, "fuzz: time per fuzz target")
	fs.StringVar(&c.fuzzRoot, "repo", "", "fuzz: the repository's root (empty: found from the working directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c.real = !*noReal
	c.credit = uint32(*credit)
	for p := range strings.SplitSeq(*probes, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allProbes, p) {
			return nil, fmt.Errorf("unknown probe %q (known: %s)", p, strings.Join(allProbes, ", "))
		}
		c.probes = append(c.probes, p)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "reliability:", err)
		return 2
	}
	raiseFileLimit()
	e := &env{cfg: cfg, progress: stderr, starter: &starter{amqp1kit: cfg.amqp1kit, log: io.Discard}}
	if cfg.verbose {
		e.starter.log = stderr
	}
	if cfg.amqp1kit == "" && slices.ContainsFunc(cfg.probes, func(p string) bool { return p != "fuzz" }) {
		dir, err := os.MkdirTemp("", "reliability-")
		if err != nil {
			fmt.Fprintln(stderr, "reliability:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "amqp1kit")
		e.logf("building amqp1kit into %s", bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/amqp1kit/amqp1kit/cmd/amqp1kit")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, "reliability: building amqp1kit (run from the repository, or give --amqp1kit):", err)
			return 1
		}
		e.starter.amqp1kit = bin
	}
	e.logf("machine: %s", machine())
	results := runProbes(ctx, e)
	e.logf("done; load average %s", loadavg())
	if cfg.markdown {
		writeMarkdown(stdout, results)
	} else {
		writeText(stdout, results)
	}
	for _, r := range results {
		if r.err != nil {
			return 1
		}
	}
	return 0
}

// runProbes runs each probe against each of its intermediaries in turn.
func runProbes(ctx context.Context, e *env) []*result {
	var results []*result
	for _, p := range e.cfg.probes {
		if p == "fuzz" {
			results = append(results, probeFuzz(ctx, e)...)
			continue
		}
		for _, t := range probeTargets[p] {
			if ctx.Err() != nil {
				return results
			}
			if _, fake := realOf[t]; !fake && !e.cfg.real {
				continue
			}
			if err := e.starter.available(t); err != nil {
				e.logf("%s on %s: skipped: %v", p, t, err)
				results = append(results, &result{probe: p, target: t, measures: []measure{txt("skipped", "not built: "+err.Error())}})
				continue
			}
			e.logf("%s on %s: start (load average %s)", p, t, loadavg())
			r := probeFuncs[p](ctx, e, t)
			r.probe, r.target = p, t
			if r.err != nil {
				e.logf("%s on %s: error: %v", p, t, r.err)
			}
			e.logf("%s on %s: done", p, t)
			results = append(results, r)
		}
	}
	return results
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machine describes the CPU, its cores and memory, from /proc.
func machine() string {
	model, cores := "?", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				model = strings.TrimSpace(v)
			case "processor":
				cores++
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			mem = f[1] + " kB"
		}
	}
	return fmt.Sprintf("%s, %d cores, %s memory, load average %s", model, cores, mem, loadavg())
}
