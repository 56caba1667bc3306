package differential

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Kind says what an intermediary is, so that scenarios about one kind only (a
// broker's redelivery) are not run against the other.
type Kind int

const (
	// AnyKind: a Target of unknown kind runs every scenario; a Scenario for AnyKind
	// runs against every target.
	AnyKind Kind = iota
	// Router: an intermediary that routes without storing, as qdrouterd.
	Router
	// Broker: an intermediary that stores and forwards, as qpidd.
	Broker
)

// String returns "any", "router" or "broker".
func (k Kind) String() string {
	switch k {
	case AnyKind:
		return "any"
	case Router:
		return "router"
	case Broker:
		return "broker"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Target is one intermediary to compare.
type Target struct {
	// Name names it in reports ("fakerouter", "qdrouterd 1.19.0").
	Name string
	// URL is where it listens: amqp://[user:pass@]host:port. Plain TCP only: the
	// proxy records frames, so it cannot sit in front of TLS.
	URL string
	// Kind is Router, Broker, or AnyKind (every scenario runs).
	Kind Kind
}

// Scenario is a script of client actions, run the same way against each
// intermediary. It must be deterministic: each step waits for its effect (an attach
// answered, a message received, Env.Quiet) before the next, so that the frames it
// causes do not depend on timing.
type Scenario struct {
	// Name is short and unique ("credit-closest").
	Name string
	// Doc says what the scenario shows, in a sentence or two.
	Doc string
	// For is the kind of intermediary it is about (AnyKind: every kind).
	For Kind
	// Run drives the intermediary through env.URL() (go-amqp or frames written by
	// hand) and returns what went wrong from the client's point of view, if
	// anything. It must return once ctx ends.
	Run func(ctx context.Context, env *Env) error
}

// applies reports whether s runs against t.
func (s Scenario) applies(t Target) bool {
	return s.For == AnyKind || t.Kind == AnyKind || s.For == t.Kind
}

// Options tune recording and comparison. The zero value (or nil) means defaults.
type Options struct {
	// Quiet is how long nothing must pass the proxy for Env.Quiet to return.
	// Default: 300ms.
	Quiet time.Duration
	// Step bounds a step that may never complete on some intermediary (Env.Step).
	// Default: 5s.
	Step time.Duration
	// Timeout bounds one run of a scenario against one intermediary. Default: 2m.
	Timeout time.Duration
	// StrictOrder compares the frames of each lane exactly as sent: a frame sent at
	// another place in its lane (moved) counts as a difference, and runs of flows and
	// dispositions are neither sorted nor merged (see the package doc). Default:
	// false; the order across lanes is never compared.
	StrictOrder bool
	// KeepEmpty keeps empty frames (keep-alives, which depend on timing) in the
	// comparison. Default: false.
	KeepEmpty bool
}

func (o *Options) get() Options {
	if o == nil {
		return Options{}
	}
	return *o
}

func (o Options) quiet() time.Duration {
	if o.Quiet > 0 {
		return o.Quiet
	}
	return 300 * time.Millisecond
}

func (o Options) step() time.Duration {
	if o.Step > 0 {
		return o.Step
	}
	return 5 * time.Second
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 2 * time.Minute
}

// Trace is what one run of a scenario against one intermediary recorded.
type Trace struct {
	// Scenario names the scenario.
	Scenario string
	// Target is the intermediary.
	Target Target
	// Frames are the frames as sent, in the order the proxy saw them.
	Frames []Frame
	// Normalized are the same frames with generated values masked.
	Normalized []Frame
	// Err is the scenario's own error ("" if it ran to its end).
	Err string
	// Notes are the scenario's notes (Env.Note).
	Notes []string
}

// String prints the normalized frames, one a line.
func (t *Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s against %s (%s): %s\n", t.Scenario, t.Target.Name, t.Target.URL, errText(t.Err))
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, f := range t.Normalized {
		fmt.Fprintf(&b, "  %s  [%s]\n", f, f.Lane)
	}
	return b.String()
}

// Raw prints the frames as sent (nothing masked), one a line, with the scenario's
// notes: what the intermediary really said.
func (t *Trace) Raw() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s against %s (%s): %s\n", t.Scenario, t.Target.Name, t.Target.URL, errText(t.Err))
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, f := range t.Frames {
		fmt.Fprintf(&b, "  %s ch %d\n", f, f.Channel)
	}
	return b.String()
}

// Record runs scenario s against t through a recording proxy and returns the trace.
// The error is for the tool's own failures (a bad URL, an intermediary that does not
// accept TCP connections); what goes wrong in the scenario is in Trace.Err.
func (o *Options) Record(ctx context.Context, s Scenario, t Target) (*Trace, error) {
	opts := o.get()
	hostport, _, err := targetAddr(t.URL, "127.0.0.1:1")
	if err != nil {
		return nil, err
	}
	// Is it there at all? (A refused connection is a setup error, not a behaviour.)
	var d net.Dialer
	probe, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("differential: %s at %s: %w", t.Name, t.URL, err)
	}
	probe.Close()
	p, err := startProxy(hostport)
	if err != nil {
		return nil, err
	}
	_, proxied, _ := targetAddr(t.URL, p.addr())
	env := &Env{url: proxied, p: p, opts: opts}
	runCtx, cancel := context.WithTimeout(ctx, opts.timeout())
	serr := runScenario(runCtx, s, env)
	cancel()
	env.finish()
	// Let the last answers (to the closes the clean-ups sent) arrive.
	qctx, qcancel := context.WithTimeout(ctx, 10*opts.quiet())
	_ = p.quiet(qctx, opts.quiet())
	qcancel()
	p.close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tr := &Trace{Scenario: s.Name, Target: t}
	if serr != nil {
		tr.Err = serr.Error()
	}
	var uniq []string
	uniq, tr.Notes = env.state()
	ds := describe(p.snapshot())
	for _, f := range ds {
		tr.Frames = append(tr.Frames, f.Frame)
	}
	tr.Normalized = normalize(ds, uniq)
	// Generated values in the scenario's own words are masked as in the frames.
	tr.Err = maskText(tr.Err, ds, uniq)
	for i := range tr.Notes {
		tr.Notes[i] = maskText(tr.Notes[i], ds, uniq)
	}
	p.mu.Lock()
	dialErrs := p.dialErrs
	p.mu.Unlock()
	if len(dialErrs) > 0 {
		return tr, fmt.Errorf("differential: the proxy could not reach %s: %s", t.Name, dialErrs[0])
	}
	return tr, nil
}

// maskText masks generated names in free text as normalize masks them in frames.
func maskText(s string, ds []described, uniq []string) string {
	if s == "" {
		return s
	}
	n := &normalizer{
		containers: newTokens("container"), names: newTokens("link"), dyns: newTokens("dyn"),
		ids: newTokens("id"), uniques: newTokens("u"), dynNames: map[string]bool{},
	}
	for _, u := range uniq {
		n.uniques.get(u)
	}
	n.collect(ds)
	return n.replacer.Replace(s)
}

// runScenario runs s, turning a panic in it into an error.
func runScenario(ctx context.Context, s Scenario, env *Env) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("scenario panicked: %v", r)
		}
	}()
	return s.Run(ctx, env)
}

// Record runs scenario s against t with default Options.
func Record(ctx context.Context, s Scenario, t Target) (*Trace, error) {
	return (*Options)(nil).Record(ctx, s, t)
}

// Compare runs scenario s against a, then against b, and aligns what each
// intermediary sent.
func (o *Options) Compare(ctx context.Context, s Scenario, a, b Target) (Report, error) {
	ta, err := o.Record(ctx, s, a)
	if err != nil {
		return Report{}, err
	}
	tb, err := o.Record(ctx, s, b)
	if err != nil {
		return Report{}, err
	}
	return o.Diff(ta, tb), nil
}

// Compare runs scenario s against a, then against b, with default Options, and
// aligns what each intermediary sent.
func Compare(ctx context.Context, s Scenario, a, b Target) (Report, error) {
	return (*Options)(nil).Compare(ctx, s, a, b)
}

// Diff aligns two traces of one scenario.
func (o *Options) Diff(a, b *Trace) Report {
	opts := o.get()
	return Report{
		Scenario:    a.Scenario,
		A:           a.Target,
		B:           b.Target,
		ErrA:        a.Err,
		ErrB:        b.Err,
		NotesA:      a.Notes,
		NotesB:      b.Notes,
		Conns:       diffTraces(a.Normalized, b.Normalized, opts.KeepEmpty, opts.StrictOrder),
		StrictOrder: opts.StrictOrder,
	}
}

// Run compares a and b on the named scenarios (all of them when names is empty;
// those for another kind of intermediary are skipped) and prints each report to w,
// then a summary. It returns an error for an unknown name or a tool failure, after
// running the rest; differences are not errors.
func (o *Options) Run(ctx context.Context, w io.Writer, names []string, a, b Target) error {
	var list []Scenario
	var errs []error
	if len(names) == 0 {
		list = Scenarios()
	}
	for _, n := range names {
		s, ok := Lookup(n)
		if !ok {
			errs = append(errs, fmt.Errorf("differential: no scenario %q", n))
			continue
		}
		list = append(list, s)
	}
	var summary []string
	for _, s := range list {
		if !s.applies(a) || !s.applies(b) {
			summary = append(summary, fmt.Sprintf("  %-40s skipped (a %s scenario)", s.Name, s.For))
			continue
		}
		r, err := o.Compare(ctx, s, a, b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
			summary = append(summary, fmt.Sprintf("  %-40s error: %v", s.Name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fmt.Fprintf(w, "%s\n", r)
		if r.Equal() {
			summary = append(summary, fmt.Sprintf("  %-40s equal", s.Name))
		} else {
			summary = append(summary, fmt.Sprintf("  %-40s %d differences", s.Name, len(r.Differences())))
		}
	}
	fmt.Fprintf(w, "summary: A = %s, B = %s\n%s\n", a.Name, b.Name, strings.Join(summary, "\n"))
	return errors.Join(errs...)
}

// Run compares a and b on the named scenarios with default Options; see
// Options.Run.
func Run(ctx context.Context, w io.Writer, names []string, a, b Target) error {
	return (*Options)(nil).Run(ctx, w, names, a, b)
}
