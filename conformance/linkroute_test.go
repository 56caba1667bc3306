package conformance

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The deployment guide's mixed deployment, link-routed: a router in front whose
// linkroute prefix goes to a broker (qpidd with the guide's configuration) on a
// connector of role route-container, and whose linkroute-down prefix goes to a
// connection that does not exist. The same configuration file serves the real
// qdrouterd and the fake router (a drop-in replacement).
const (
	linkRoutePrefix     = "linkroute"
	linkRouteDownPrefix = "linkroute-down"
)

// linkRouteSections are the sections added to the guide's qdrouterd.conf.
func linkRouteSections(brokerPort int) string {
	return fmt.Sprintf(`
connector {
    name: broker
    host: 127.0.0.1
    port: %d
    role: route-container
    saslMechanisms: ANONYMOUS
}

linkRoute {
    prefix: %[2]s
    direction: in
    connection: broker
}

linkRoute {
    prefix: %[2]s
    direction: out
    connection: broker
}

linkRoute {
    prefix: %[3]s
    direction: in
    connection: nowhere
}

linkRoute {
    prefix: %[3]s
    direction: out
    connection: nowhere
}
`, brokerPort, linkRoutePrefix, linkRouteDownPrefix)
}

func linkRouteHarness(name, url string) Harness {
	h := RouterAt(name, url)
	h.LinkRoutePrefix, h.LinkRouteDownPrefix = linkRoutePrefix, linkRouteDownPrefix
	return h
}

// runLinkRouteCases runs every link-route case against h, which must pass them all
// (none may skip).
func runLinkRouteCases(t *testing.T, h Harness) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(linkRouteCases)) {
		t.Run(name, func(t *testing.T) {
			h := h
			defer func() {
				if t.Skipped() {
					t.Errorf("skipped (%s): the harness has both link routes", h.skipped)
				}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), h.timeout())
			defer cancel()
			linkRouteCases[name](boundedT{T: t, ctx: ctx}, &h)
		})
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fakeRouterConfig writes the guide's configuration with the link routes to brokerPort
// for the fake router (listening on a free port).
func fakeRouterConfig(t *testing.T, brokerPort int) string {
	t.Helper()
	conf := strings.ReplaceAll(realpeer.DefaultQdrouterdConfig, realpeer.PortPlaceholder, "0") + linkRouteSections(brokerPort)
	path := filepath.Join(t.TempDir(), "qdrouterd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitRouted waits until addr is link-routed to a broker that answers: an attach to
// it is no longer refused by the router (the connector has connected). qdrouterd
// connects to its route container at once, but asynchronously.
func waitRouted(t *testing.T, routerAddr, addr string) {
	t.Helper()
	c, err := frameclient.Dial(routerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Open(&wire.Open{ContainerID: "conformance-wait-" + randomHex(), MaxFrameSize: 65536, ChannelMax: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(0, &wire.Begin{IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 1023}); err != nil {
		t.Fatal(err)
	}
	for handle := uint32(0); ; handle++ {
		peer, err := c.Attach(0, &wire.Attach{Name: fmt.Sprintf("wait-%d", handle), Handle: handle, Role: wire.RoleReceiver,
			Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
		if err != nil {
			t.Fatalf("waiting for the link route: %v", err)
		}
		if peer.Source != nil {
			return
		}
		if _, _, err := frameclient.Expect[*wire.Detach](c); err != nil {
			t.Fatalf("waiting for the link route: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("the link route to %q never answered", addr)
		}
	}
}

// The real qdrouterd 1.19.0 link-routing to the real qpidd 1.39.0: the models.
func TestLinkRouteRealQdrouterdToRealQpidd(t *testing.T) {
	t.Parallel()
	broker := realpeer.StartQpidd(t, nil)
	router := realpeer.StartQdrouterd(t, &realpeer.Options{Config: realpeer.DefaultQdrouterdConfig + linkRouteSections(broker.Port())})
	waitRouted(t, router.Addr(), linkRoutePrefix+".unicast.ready")
	runLinkRouteCases(t, linkRouteHarness("qdrouterd 1.19.0 -> qpidd 1.39.0", router.URL()))
}

// The fake router link-routing to the fake broker, configured by options.
func TestLinkRouteFakeRouterToFakeBroker(t *testing.T) {
	t.Parallel()
	broker := fakebroker.RunT(t, nil)
	router := fakerouter.RunT(t, &fakerouter.Options{
		LinkRoutes: []fakerouter.LinkRoute{
			{Prefix: linkRoutePrefix, Direction: "in", Connection: "broker"},
			{Prefix: linkRoutePrefix, Direction: "out", Connection: "broker"},
			{Prefix: linkRouteDownPrefix, Direction: "in", Connection: "nowhere"},
			{Prefix: linkRouteDownPrefix, Direction: "out", Connection: "nowhere"},
		},
		Connectors: []fakerouter.Connector{{Name: "broker", Host: "127.0.0.1", Port: strconv.Itoa(portOf(t, broker.Addr())),
			Role: "route-container", SASLMechanisms: "ANONYMOUS"}},
	})
	if err := router.WaitForConnector(t.Context(), "broker"); err != nil {
		t.Fatal(err)
	}
	runLinkRouteCases(t, linkRouteHarness("fakerouter -> fakebroker", router.URL()))
}

// The fake router, with the real qdrouterd's configuration file, link-routing to the
// real qpidd.
func TestLinkRouteFakeRouterToRealQpidd(t *testing.T) {
	t.Parallel()
	broker := realpeer.StartQpidd(t, nil)
	router := fakerouter.RunT(t, &fakerouter.Options{ConfigFile: fakeRouterConfig(t, broker.Port())})
	if err := router.WaitForConnector(t.Context(), "broker"); err != nil {
		t.Fatal(err)
	}
	runLinkRouteCases(t, linkRouteHarness("fakerouter -> qpidd 1.39.0", router.URL()))
}

// brokerPair is a router link-routing to a broker that a test can stop and start
// again on the same port.
type brokerPair struct {
	routerAddr string
	stop       func()
	start      func()
}

// When the route container's connection is lost, every link routed through it is
// detached (closed) with qd:routed-link-lost; attaches are refused with
// qd:no-route-to-dest until the router has connected again, which it does by itself
// once the broker is back (qdrouterd tries 2 s after losing an open connection, then
// every 5 s).
func TestLinkRouteBrokerLost(t *testing.T) {
	t.Parallel()
	pairs := map[string]func(t *testing.T) brokerPair{
		"real-qdrouterd-real-qpidd": func(t *testing.T) brokerPair {
			var mu sync.Mutex
			broker := realpeer.StartQpidd(t, nil)
			port := broker.Port()
			router := realpeer.StartQdrouterd(t, &realpeer.Options{Config: realpeer.DefaultQdrouterdConfig + linkRouteSections(port)})
			return brokerPair{routerAddr: router.Addr(),
				stop: func() {
					mu.Lock()
					defer mu.Unlock()
					if err := broker.Close(); err != nil {
						t.Error(err)
					}
				},
				start: func() {
					mu.Lock()
					defer mu.Unlock()
					broker = realpeer.StartQpidd(t, &realpeer.Options{Port: port})
				}}
		},
		"fakerouter-fakebroker": func(t *testing.T) brokerPair {
			broker := fakebroker.RunT(t, nil)
			addr := broker.Addr()
			router := fakerouter.RunT(t, &fakerouter.Options{ConfigFile: fakeRouterConfig(t, portOf(t, addr))})
			return brokerPair{routerAddr: router.Addr(),
				stop:  func() { _ = broker.Close() },
				start: func() { broker = fakebroker.RunT(t, &fakebroker.Options{Addr: addr}) }}
		},
		"fakerouter-real-qpidd": func(t *testing.T) brokerPair {
			broker := realpeer.StartQpidd(t, nil)
			port := broker.Port()
			router := fakerouter.RunT(t, &fakerouter.Options{ConfigFile: fakeRouterConfig(t, port)})
			return brokerPair{routerAddr: router.Addr(),
				stop: func() {
					if err := broker.Close(); err != nil {
						t.Error(err)
					}
				},
				start: func() { broker = realpeer.StartQpidd(t, &realpeer.Options{Port: port}) }}
		},
	}
	for _, name := range slices.Sorted(maps.Keys(pairs)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := pairs[name](t)
			addr := linkRoutePrefix + ".unicast." + uniqueName("lost")
			waitRouted(t, p.routerAddr, addr)
			h := linkRouteHarness(name, "amqp://"+p.routerAddr)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			bt := boundedT{T: t, ctx: ctx}
			c := connectFrames(bt, &h)
			sh, _ := c.senderLink(addr, wire.SenderSettleModeMixed)
			if f := c.linkFlow(sh, caseTimeLeft(bt)); f == nil || f.LinkCredit == nil || *f.LinkCredit == 0 {
				t.Fatalf("no credit from the broker: %s", flowString(f))
			}
			id := c.transfer(sh, textMessage("before"), false)
			collectOutcomes(bt, c, id)
			rh, _ := c.receiverLink(addr)
			c.flow(rh, 0, 10, false)
			c.delivery() // held unsettled when the broker goes

			p.stop()
			lost := map[uint32]bool{}
			for len(lost) < 2 {
				f, err := c.Next()
				if err != nil {
					t.Fatalf("waiting for the routed links to be detached: %v", err)
				}
				switch b := f.Body.(type) {
				case *wire.Detach:
					if !b.Closed || b.Error == nil || b.Error.Condition != "qd:routed-link-lost" ||
						b.Error.Description != "Connectivity to the peer container was lost" {
						t.Errorf("a routed link was detached closed=%v with %v, want closed with qd:routed-link-lost %q",
							b.Closed, b.Error, "Connectivity to the peer container was lost")
					}
					lost[c.local[b.Handle]] = true
				case *wire.Flow:
				default:
					t.Fatalf("waiting for the routed links to be detached, got %s (nothing else comes: no outcome for the unsettled delivery)", frameclient.Describe(f))
				}
			}
			if !lost[sh] || !lost[rh] {
				t.Errorf("detached %v, want the sender's and the receiver's links", lost)
			}
			for _, h := range []uint32{sh, rh} {
				if err := c.Write(0, &wire.Detach{Handle: h, Closed: true}); err != nil {
					t.Fatal(err)
				}
			}
			peer, d := c.refused(&wire.Attach{Role: wire.RoleReceiver, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
			if peer.Source != nil {
				t.Errorf("an attach while the broker is down was answered with source %+v, want null", *peer.Source)
			}
			checkRefusal(bt, "an attach while the broker is down", d, "qd:no-route-to-dest", "No route to the destination node")

			p.start()
			start := time.Now()
			waitRouted(t, p.routerAddr, addr)
			t.Logf("routed again %v after the broker was back", time.Since(start).Round(100*time.Millisecond))
			r := connectFrames(bt, &h)
			rh2, _ := r.receiverLink(addr)
			r.flow(rh2, 0, 10, false)
			if tr, m := r.deliveryWithin(quietPeriod); tr != nil {
				t.Logf("the broker kept %q", m.Data[0]) // qpidd without a store does not
			}
		})
	}
}
