package interop

import (
	"context"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/testenv/protonbroker"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// backend is one intermediary the matrix runs over (a column), with what it can do.
type backend struct {
	name string
	url  string
	// multicast: an oslo fanout reaches every server of the topic.
	multicast bool
	// redelivery: a notification a listener requeues (a released disposition) comes
	// back to a listener: a broker redelivers it, a router hands the release back to
	// the notifier, which sends again.
	redelivery bool
	// legacy: the product in its open frame makes the dynamic addressing mode pick the
	// legacy syntax (a broker) rather than the routable one (a router).
	legacy bool
	// inspect is what the tests can see in the intermediary: everything in a fake,
	// what qdrouterd's management tells its users (qdstat) in the real router; nil
	// where nothing can be seen (qpidd, the Proton broker).
	inspect *inspection

	// trace holds what the intermediary shows of the traffic: a fake's frames (see
	// frameTracer), a real program's own log (its frames too, when traced: see
	// traceRealFrames), the Proton broker's lines; traceWhat says which, for logs.
	trace     traceLog
	traceWhat string
	// frames: the trace holds every frame (a fake's, or a real program's when traced).
	frames bool
	// maxFrameSize is what the intermediary announces in its open (see
	// announcedMaxFrameSize): clients split a larger message into several transfer
	// frames to it; 4294967295 (the default, which qpidd 1.39.0 leaves implicit) means
	// they send a message of any size in one frame, and only what the intermediary
	// sends on to a peer that announces a limit (go-amqp: 65536) is split.
	maxFrameSize uint32
	golog        *lineLog // the Go driver's log
	py           *pySession
}

// traceLog is a log the tests mark and read back from: a lineLog, or a real program's
// log file (programLog).
type traceLog interface {
	// mark returns a position: what is written after it is since(mark, ...).
	mark() int
	// since returns what was written after mark, at most its last n lines.
	since(mark, n int) string
}

// inspection is what the tests look at in an intermediary.
type inspection struct {
	// waitForConsumers waits until addr has n consumers.
	waitForConsumers func(ctx context.Context, addr string, n int) error
	// links lists the attached links with an address of the client's choosing (the
	// real router's list leaves out reply links and its own).
	links func() ([]linkInfo, error)
	// consumed lists the addresses that have consumers, for messages.
	consumed func() []string
}

// linkInfo is one attached link: the client's container-id, the link's name, the
// client's role ("sender" or "receiver") and the link's address.
type linkInfo struct{ container, name, role, address string }

// frameTracer keeps a fake intermediary's frame trace in a lineLog, labelling each
// connection python or go from the container-id in its open frame.
type frameTracer struct {
	log   *lineLog
	mu    sync.Mutex
	sides map[uint64]string
}

func newFrameTracer(log *lineLog) *frameTracer {
	ft := &frameTracer{log: log, sides: map[uint64]string{}}
	log.label = ft.labelLine
	return ft
}

// add records one frame: its connection, direction, performative and fields, and the
// line the fake formatted for it ("conn N <- ch C performative fields").
func (ft *frameTracer) add(conn uint64, incoming bool, performative, fields, line string) {
	if incoming && performative == "open" {
		side := "go"
		if strings.Contains(fields, "/oslo_peer.py/") {
			side = "python"
		}
		ft.mu.Lock()
		ft.sides[conn] = side
		ft.mu.Unlock()
	}
	ft.log.add(line)
}

func (ft *frameTracer) labelLine(line string) string {
	var conn uint64
	if _, err := fmt.Sscanf(line, "conn %d", &conn); err != nil {
		return line
	}
	ft.mu.Lock()
	side := ft.sides[conn]
	ft.mu.Unlock()
	if side == "" {
		side = "?"
	}
	return "[" + side + "] " + line
}

// announcedMaxFrameSize opens a connection to the intermediary at url (the plain AMQP
// header, no SASL, as the Python driver without credentials) and returns the
// max-frame-size of its open: what a client may send it in one frame.
func announcedMaxFrameSize(url string) (uint32, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return 0, err
	}
	c, err := frameclient.Dial(u.Host)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	open, err := c.Open(&wire.Open{ContainerID: "interop-open-probe", MaxFrameSize: 65536})
	if err != nil {
		return 0, fmt.Errorf("the open of %s: %w", url, err)
	}
	_ = c.Write(0, &wire.Close{})
	return open.MaxFrameSize, nil
}

// backendSpec names a backend and starts it for a test (closed by t.Cleanup).
type backendSpec struct {
	name  string
	start func(t *testing.T) *backend
}

var backends = []backendSpec{
	{"router", startRouter},
	{"broker", startFakeBroker},
	{"proton", startProtonBroker},
	{"qdrouterd", startQdrouterd},
	{"qpidd", startQpidd},
}

func newBackend(name string) *backend {
	return &backend{name: name, golog: newLineLog(20000)}
}

// fakeTrace gives b a frame trace as the fakes write it and returns its tracer.
func (b *backend) fakeTrace() *frameTracer {
	l := newLineLog(60000)
	b.trace, b.frames = l, true
	b.traceWhat = "frame trace of the " + b.name + " (<- received from the client, -> sent to it)"
	return newFrameTracer(l)
}

// startRouter runs the fake router (it says qpid-dispatch-router: routable addresses)
// with a frame trace.
func startRouter(t *testing.T) *backend {
	b := newBackend("router")
	b.multicast, b.redelivery, b.legacy = true, true, false
	ft := b.fakeTrace()
	r := fakerouter.RunT(t, &fakerouter.Options{
		Trace: func(f fakerouter.Frame) { ft.add(f.Conn, f.Incoming, f.Performative, f.Fields, f.String()) },
	})
	b.url = r.URL()
	b.inspect = &inspection{
		waitForConsumers: r.WaitForConsumers,
		links: func() ([]linkInfo, error) {
			var out []linkInfo
			for _, l := range r.Links() {
				out = append(out, linkInfo{l.Container, l.Name, l.Role, l.Address})
			}
			return out, nil
		},
		consumed: func() []string {
			var out []string
			for _, a := range r.Addresses() {
				if a.Consumers > 0 {
					out = append(out, fmt.Sprintf("%s(%d)", a.Address, a.Consumers))
				}
			}
			return out
		},
	}
	return b
}

// startFakeBroker runs the fake broker (it says qpid-cpp: legacy addresses; topics for
// fanout; released messages are delivered again) with a frame trace.
func startFakeBroker(t *testing.T) *backend {
	b := newBackend("broker")
	b.multicast, b.redelivery, b.legacy = true, true, true
	ft := b.fakeTrace()
	br := fakebroker.RunT(t, &fakebroker.Options{
		Trace: func(f fakebroker.Frame) { ft.add(f.Conn, f.Incoming, f.Performative, f.Fields, f.String()) },
	})
	b.url = br.URL()
	b.inspect = &inspection{
		waitForConsumers: br.WaitForConsumers,
		links: func() ([]linkInfo, error) {
			var out []linkInfo
			for _, l := range br.Links() {
				out = append(out, linkInfo{l.Container, l.Name, l.Role, l.Address})
			}
			return out, nil
		},
		consumed: func() []string {
			var out []string
			for _, n := range br.Nodes() {
				if n.Consumers > 0 && n.Topic == "" {
					out = append(out, fmt.Sprintf("%s(%d)", n.Name, n.Consumers))
				}
			}
			return out
		},
	}
	return b
}

// startProtonBroker runs Proton's C++ example broker on a free loopback port. It has
// no multicast (a fanout reaches one server), does not redeliver a released message,
// and sends no product (legacy addresses). Its output, one line per attach ("sending
// from ADDR", "receiving to ADDR"), is the backend's trace.
func startProtonBroker(t *testing.T) *backend {
	b := newBackend("proton")
	b.multicast, b.redelivery, b.legacy = false, false, true
	l := newLineLog(60000)
	b.trace, b.traceWhat = l, "the Proton broker's log"
	br := protonbroker.StartT(t, &protonbroker.Options{
		Output: func(line string) { l.add("broker: " + line) },
	})
	b.url = br.URL()
	return b
}

// watch makes a failing test log what happened while it ran: the intermediary's
// frames (each connection labelled python or go), the Python peer's stderr and the Go
// driver's log; with AMQP1KIT_INTEROP_TRACE set, passing tests log them too.
func (b *backend) watch(t *testing.T) {
	fm, gm := b.trace.mark(), b.golog.mark()
	pm := 0
	if b.py != nil {
		pm = b.py.stderr.mark()
	}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("AMQP1KIT_INTEROP_TRACE") == "" {
			return
		}
		t.Logf("%s while %s ran:\n%s", b.traceWhat, t.Name(), b.trace.since(fm, 400))
		if b.py != nil {
			t.Logf("python peer's stderr while %s ran:\n%s", t.Name(), b.py.stderr.since(pm, 80))
		}
		t.Logf("go driver's log while %s ran:\n%s", t.Name(), b.golog.since(gm, 80))
	})
}

// run is t.Run with b.watch.
func (b *backend) run(t *testing.T, name string, f func(t *testing.T)) bool {
	t.Helper()
	return t.Run(name, func(t *testing.T) {
		b.watch(t)
		f(t)
	})
}

// goOptions are the driver's defaults with short retry delays.
func goOptions() *driver.Options {
	o := driver.DefaultOptions()
	o.LinkRetryDelay = 100 * time.Millisecond
	o.ConnectionRetryInterval = 50 * time.Millisecond
	o.ConnectionRetryIntervalMax = 200 * time.Millisecond
	return &o
}

// transport returns a Go transport (one connection) to the backend, closed by
// t.Cleanup; mutate adjusts its options.
func (b *backend) transport(t *testing.T, mutate func(*driver.Options)) *driver.Transport {
	t.Helper()
	o := goOptions()
	if mutate != nil {
		mutate(o)
	}
	log := slog.New(slog.NewTextHandler(b.golog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := driver.NewTransport(b.url, &driver.TransportOptions{Options: o, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// Addresses as the deployment guide gives them (docs/oslo-amqp1-wire.md §3.5), written
// out here rather than taken from the Go driver's Addresser, so that the tests do not
// trust the code they test. No vhost; the default exchange is "openstack".

// rpcAddresses returns the three addresses an RPC server subscribes to: its own, the
// topic's fanout and the topic's shared one ("" for the default exchange).
func rpcAddresses(legacy bool, exchange, topic, server string) []string {
	if exchange == "" {
		exchange = "openstack"
	}
	if legacy {
		return []string{
			"exclusive." + exchange + "." + topic + "." + server,
			"broadcast." + exchange + "." + topic + ".all",
			"unicast." + exchange + "." + topic,
		}
	}
	return []string{
		"openstack.org/om/rpc/unicast/" + exchange + "/" + topic + "/" + server,
		"openstack.org/om/rpc/multicast/" + exchange + "/" + topic,
		"openstack.org/om/rpc/anycast/" + exchange + "/" + topic,
	}
}

// notifyAddress returns the address of a notification topic and priority.
func notifyAddress(legacy bool, topic string, p driver.Priority) string {
	if legacy {
		return "unicast.openstack." + topic + "." + string(p)
	}
	return "openstack.org/om/notify/anycast/openstack/" + topic + "." + string(p)
}

// waitConsumers waits at an inspectable intermediary until each address has n
// consumers; elsewhere it returns at once: a broker stores what is sent to a queue
// (qpidd creates it on the first attach, sender's or receiver's) until a consumer
// comes; for the servers, the fixture retries a first call to each, and where a
// topic's subscribers cannot be seen (qpidd) it sends fanout probes until every
// server has one (fixture.fanoutProbes).
func (b *backend) waitConsumers(ctx context.Context, t *testing.T, n int, addrs ...string) {
	t.Helper()
	if b.inspect == nil {
		return
	}
	for _, a := range addrs {
		if err := b.inspect.waitForConsumers(ctx, a, n); err != nil {
			t.Fatalf("%s: %v (addresses with consumers: %v)", b.name, err, b.inspect.consumed())
		}
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
