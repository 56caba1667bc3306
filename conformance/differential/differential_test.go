package differential_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/conformance/differential"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// TestFakeRouterAgainstItself runs every scenario against two fake routers: the
// normalized traces must be equal, which shows the masking is stable (ids, names,
// tags and timing do not leak into the comparison).
func TestFakeRouterAgainstItself(t *testing.T) {
	a := fakerouter.RunT(t, nil)
	b := fakerouter.RunT(t, nil)
	ta := differential.Target{Name: "fakerouter-a", URL: a.URL(), Kind: differential.Router}
	tb := differential.Target{Name: "fakerouter-b", URL: b.URL(), Kind: differential.Router}
	for _, s := range differential.Scenarios() {
		if s.For == differential.Broker {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			r, err := differential.Compare(t.Context(), s, ta, tb)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Equal() {
				t.Errorf("a fake router differs from itself:\n%s", r)
			}
			if len(r.Conns) == 0 {
				t.Errorf("nothing recorded:\n%s", r)
			}
		})
	}
}

// TestFakeBrokerAgainstItself does the same with two fake brokers.
func TestFakeBrokerAgainstItself(t *testing.T) {
	a := fakebroker.RunT(t, nil)
	b := fakebroker.RunT(t, nil)
	ta := differential.Target{Name: "fakebroker-a", URL: a.URL(), Kind: differential.Broker}
	tb := differential.Target{Name: "fakebroker-b", URL: b.URL(), Kind: differential.Broker}
	for _, s := range differential.Scenarios() {
		if s.For == differential.Router {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			r, err := differential.Compare(t.Context(), s, ta, tb)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Equal() {
				t.Errorf("a fake broker differs from itself:\n%s", r)
			}
		})
	}
}

// TestRouterAgainstBroker shows that the comparison finds differences: a router and
// a broker do not open alike.
func TestRouterAgainstBroker(t *testing.T) {
	a := fakerouter.RunT(t, nil)
	b := fakebroker.RunT(t, nil)
	s, ok := differential.Lookup("open")
	if !ok {
		t.Fatal("no scenario open")
	}
	r, err := differential.Compare(t.Context(), s,
		differential.Target{Name: "fakerouter", URL: a.URL()}, differential.Target{Name: "fakebroker", URL: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Equal() {
		t.Fatalf("a router and a broker open alike:\n%s", r)
	}
	if !strings.Contains(strings.Join(r.Differences(), "\n"), "properties.product") {
		t.Errorf("the product property is not among the differences:\n%s", r)
	}
}

// TestNoGoroutineLeft checks that a comparison leaves no goroutine of its own behind
// (proxies, pumps, raw readers, go-amqp connections): once the fakes' own connection
// goroutines have wound down, the count is back where it was.
func TestNoGoroutineLeft(t *testing.T) {
	a := fakerouter.RunT(t, nil)
	target := differential.Target{Name: "fakerouter", URL: a.URL()}
	before := runtime.NumGoroutine()
	for _, name := range []string{"open", "drain", "link-without-terminus"} {
		s, _ := differential.Lookup(name)
		if _, err := differential.Compare(t.Context(), s, target, target); err != nil {
			t.Fatal(err)
		}
	}
	// The fake router ends its connections' goroutines after the clients have gone;
	// give it a moment (this bounds a wait, it asserts no speed).
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
