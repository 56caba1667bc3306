// Package conformance is one suite of behavioural cases that an AMQP 1.0
// intermediary must pass to stand in for qdrouterd or qpidd under oslo.messaging
// traffic: sending and receiving with outcomes, settlement end to end or at the store,
// competing consumers and multicast, dynamic reply addresses, anonymous relay,
// multi-frame messages, credit and drain, consumers that go away.
//
// The suite knows no implementation. A Harness says where an intermediary listens,
// whether it routes or stores, which addresses it has, what it cannot do and where it
// behaves otherwise; Run runs every case against it as a subtest. The project runs it
// against its own fakes, against RabbitMQ and Qpid Proton's example broker, against
// intermediaries in containers, and against any URL:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Harness {
//			r := fakerouter.RunT(t, nil)
//			return conformance.RouterAt("fakerouter", r.URL())
//		})
//	}
//
// Every case talks to the intermediary with go-amqp over real TCP, as any client
// would. A case the intermediary cannot run (a Harness capability is missing) is
// skipped with the reason; a case where it is known to behave otherwise (Differences)
// is run anyway and must still fail, so that a documented difference that no longer
// holds shows up as a failure, never as silence.
package conformance

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind says how an intermediary settles with senders.
type Kind int

const (
	// Router delivers a message straight to a consumer and passes the consumer's
	// outcome back to the sender (end-to-end acknowledgement), as qdrouterd does.
	// It stores nothing: with no consumer, anycast senders get no credit.
	Router Kind = iota + 1
	// Broker stores a message, settles with the sender once stored, and forwards it
	// to consumers later, as qpidd does.
	Broker
)

func (k Kind) String() string {
	switch k {
	case Router:
		return "router"
	case Broker:
		return "broker"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Capability is something an intermediary may lack.
type Capability string

// The capabilities cases ask for. A Harness lists the ones its intermediary lacks in
// Missing, with the reason.
const (
	// Multicast: an address where every consumer gets a copy (Topic).
	Multicast Capability = "multicast"
	// DynamicSource: a receiver attaching with a dynamic source gets an address
	// named by the intermediary, and messages sent to it arrive.
	DynamicSource Capability = "dynamic-source"
	// AnonymousRelay: a sender with a null target whose messages go where their
	// to property says.
	AnonymousRelay Capability = "anonymous-relay"
	// Redelivery: a broker gives a released message, or the unsettled messages of a
	// consumer that went away, to another consumer.
	Redelivery Capability = "redelivery"
)

// Harness describes one intermediary to the suite. Run asks a new Harness of every
// case, so a harness may start a fresh intermediary for each, or hand out fresh
// addresses on a shared one.
type Harness struct {
	// Name names the intermediary in the report ("fakerouter", "RabbitMQ 3.10").
	Name string
	// URL is where clients connect: amqp://[user:pass@]host:port.
	URL string
	// Kind is Router or Broker.
	Kind Kind
	// Queue returns the address of a queue for name, where each message goes to one
	// consumer. The suite makes every name unique to one case run, so a shared
	// intermediary with nodes left by earlier runs is fine. Nil means
	// "unicast.conformance.NAME": the legacy oslo prefix, which qdrouterd and qpidd
	// (with the deployment guide's configuration) both serve.
	Queue func(name string) string
	// Topic returns the address of a topic for name, where every consumer gets a
	// copy. Nil means "broadcast.conformance.NAME".
	Topic func(name string) string
	// Missing lists what the intermediary cannot do, each with the reason; cases
	// that need it are skipped with that reason.
	Missing map[Capability]string
	// Differences names cases where the intermediary is known to behave otherwise,
	// each with the explanation. Such a case is run and must fail; if it passes,
	// the suite fails it, saying the documented difference no longer holds.
	Differences map[string]string
	// Timeout bounds each case (default 20s): a hung intermediary fails the case,
	// not the run.
	Timeout time.Duration
	// LinkRoutePrefix, when set, says that the router link-routes the addresses under
	// it, in both directions, to a broker configured as the deployment guide's qpidd
	// (queue-patterns exclusive and unicast): LinkRoutePrefix+".unicast.NAME" is then
	// a queue on that broker and LinkRoutePrefix+".NAME" no node at all. Empty: the
	// link-route cases skip.
	LinkRoutePrefix string
	// LinkRouteDownPrefix, when set, is a prefix the router link-routes, in both
	// directions, to a route container that is not connected. Empty: the case about
	// it skips.
	LinkRouteDownPrefix string

	skipped string // why the running case was skipped
}

// timeout is the bound of one case.
func (h *Harness) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 20 * time.Second
}

// boundedT is a *testing.T whose Context ends when the case's time is up.
type boundedT struct {
	*testing.T
	ctx context.Context
}

func (b boundedT) Context() context.Context { return b.ctx }

// RouterAt returns the Harness of a qdrouterd-like intermediary at url with the
// deployment guide's address table.
func RouterAt(name, url string) Harness { return Harness{Name: name, URL: url, Kind: Router} }

// BrokerAt returns the Harness of a qpidd-like intermediary at url with the
// deployment guide's queue and topic patterns.
func BrokerAt(name, url string) Harness { return Harness{Name: name, URL: url, Kind: Broker} }

func (h *Harness) queue(name string) string {
	name = uniqueName(name)
	if h.Queue != nil {
		return h.Queue(name)
	}
	return "unicast.conformance." + name
}

func (h *Harness) topic(name string) string {
	name = uniqueName(name)
	if h.Topic != nil {
		return h.Topic(name)
	}
	return "broadcast.conformance." + name
}

// uniqueName appends a random suffix to name.
func uniqueName(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%x", name, b)
}

// needs skips t when h lacks c.
func (h *Harness) needs(t testingT, c Capability) {
	t.Helper()
	if why, missing := h.Missing[c]; missing {
		h.skipped = fmt.Sprintf("%s has no %s: %s", h.Name, c, why)
		t.Skipf("%s", h.skipped)
	}
}

// needsKind skips t unless h is of kind k.
func (h *Harness) needsKind(t testingT, k Kind) {
	t.Helper()
	if h.Kind != k {
		h.skipped = fmt.Sprintf("a %s case; %s is a %s", k, h.Name, h.Kind)
		t.Skipf("%s", h.skipped)
	}
}

// testingT is the part of *testing.T that cases use. The suite runs a case whose failure is
// documented with its own testingT, which records the failures instead of reporting them.
type testingT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	FailNow()
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(f func())
	Context() context.Context
}

// NewHarness makes the Harness for one case; it may register clean-up on t.
type NewHarness func(t *testing.T) Harness

// Outcome is how a case went.
type Outcome string

// The outcomes of a case.
const (
	// Pass: the intermediary behaved as the case requires.
	Pass Outcome = "pass"
	// Fail: it did not, or a documented difference no longer holds.
	Fail Outcome = "fail"
	// Differs: the case failed as the harness's Differences document.
	Differs Outcome = "differs"
	// NotApplicable: the case is not for this intermediary: it is a case of the
	// other Kind, or it needs a Harness setting the harness leaves unset (such as
	// LinkRoutePrefix).
	NotApplicable Outcome = "n/a"
	// Skip: the case could not run: the harness could not be made (an intermediary
	// not installed, say) and skipped its test.
	Skip Outcome = "skip"
)

// Result is how one case went against one intermediary.
type Result struct {
	Case    string
	Outcome Outcome
	Detail  string // why it was skipped or not applicable, the documented difference, or the failure
}

// Run runs every case against the intermediaries newHarness makes, each as a
// subtest named after the case, and logs a report of the results at the end.
func Run(t *testing.T, newHarness NewHarness) []Result {
	t.Helper()
	var mu sync.Mutex
	var results []Result
	record := func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
	}
	var name string
	names := slices.Sorted(maps.Keys(cases))
	for _, c := range names {
		t.Run(c, func(t *testing.T) {
			made := false
			defer func() {
				if !made { // the harness could not be made: it skipped or failed t
					outcome := Fail
					if t.Skipped() {
						outcome = Skip
					}
					record(Result{Case: c, Outcome: outcome, Detail: "no intermediary: see the case's log"})
				}
			}()
			h := newHarness(t)
			made = true
			name = h.Name
			for d := range h.Differences {
				if _, known := cases[d]; !known {
					t.Errorf("%s documents a difference for %q, which is no case of the suite", h.Name, d)
				}
			}
			why, differs := h.Differences[c]
			if !differs {
				defer func() {
					switch {
					case t.Skipped():
						record(Result{Case: c, Outcome: NotApplicable, Detail: h.skipped})
					case t.Failed():
						record(Result{Case: c, Outcome: Fail})
					default:
						record(Result{Case: c, Outcome: Pass})
					}
				}()
				ctx, cancel := context.WithTimeout(t.Context(), h.timeout())
				defer cancel()
				cases[c](boundedT{T: t, ctx: ctx}, &h)
				return
			}
			failures, skipped := runExpectingFailure(t, &h, cases[c])
			switch {
			case skipped != "":
				record(Result{Case: c, Outcome: NotApplicable, Detail: skipped})
				t.Skip(skipped)
			case len(failures) == 0:
				record(Result{Case: c, Outcome: Fail, Detail: "the documented difference no longer holds: " + why})
				t.Errorf("%s passed, but a difference is documented for it: %q; remove the difference from the harness", c, why)
			default:
				record(Result{Case: c, Outcome: Differs, Detail: why})
				t.Logf("differs, as documented (%s); the case failed with: %s", why, strings.Join(failures, "; "))
			}
		})
	}
	if name == "" {
		name = t.Name()
	}
	t.Logf("conformance of %s:\n%s", name, Report(results))
	return results
}

// recorder is the T of a case expected to fail: it keeps the failures, and ends the
// case's goroutine on FailNow and Skipf as the testing package does.
type recorder struct {
	parent   *testing.T
	ctx      context.Context
	mu       sync.Mutex
	failures []string
	skipped  string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.FailNow()
}

func (r *recorder) FailNow() {
	r.mu.Lock()
	if len(r.failures) == 0 {
		r.failures = append(r.failures, "FailNow")
	}
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Logf(format string, args ...any) { r.parent.Logf(format, args...) }

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Context() context.Context { return r.ctx }

// runExpectingFailure runs c with a recorder and returns its failures, or why it
// skipped.
func runExpectingFailure(t *testing.T, h *Harness, c func(testingT, *Harness)) (failures []string, skipped string) {
	ctx, cancel := context.WithTimeout(t.Context(), h.timeout())
	defer cancel()
	r := &recorder{parent: t, ctx: ctx}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(r.cleanups) - 1; i >= 0; i-- {
				r.cleanups[i]()
			}
		}()
		c(r, h)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures, r.skipped
}

// Report formats results as a table, one case a line.
func Report(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		line := fmt.Sprintf("  %-36s %-8s %s", r.Case, r.Outcome, r.Detail)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	return b.String()
}

// Unexpected returns the results that are neither a pass, nor a documented
// difference, nor a case that does not apply: failures, and cases skipped because
// their harness could not be made.
func Unexpected(results []Result) []Result {
	var out []Result
	for _, r := range results {
		switch r.Outcome {
		case Pass, Differs, NotApplicable:
		default:
			out = append(out, r)
		}
	}
	return out
}

// Tally counts results by outcome, in the order outcomes first appear: "35 pass,
// 3 n/a".
func Tally(results []Result) string {
	counts := map[Outcome]int{}
	var order []Outcome
	for _, r := range results {
		if counts[r.Outcome] == 0 {
			order = append(order, r.Outcome)
		}
		counts[r.Outcome]++
	}
	parts := make([]string, 0, len(order))
	for _, o := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
	}
	return strings.Join(parts, ", ")
}
