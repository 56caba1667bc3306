package statuspage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/statuspage"
)

// fakes runs a router and a broker and serves their status page for the test.
type fakes struct {
	router *fakerouter.Router
	broker *fakebroker.Broker
	page   *statuspage.Page
	srv    *httptest.Server
}

func newFakes(t *testing.T) *fakes {
	t.Helper()
	f := &fakes{router: fakerouter.RunT(t, nil), broker: fakebroker.RunT(t, nil)}
	f.page = statuspage.New(statuspage.Options{Router: f.router, Broker: f.broker})
	f.srv = httptest.NewServer(f.page)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		if t.Failed() { // what the fakes saw, for the log
			var sb strings.Builder
			f.page.Snapshot().WriteText(&sb)
			t.Logf("status at the end:\n%s", sb.String())
		}
	})
	return f
}

func (f *fakes) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func (f *fakes) status(t *testing.T) statuspage.Snapshot {
	t.Helper()
	resp, body := f.get(t, "/api/status")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var s statuspage.Snapshot
	require.NoError(t, json.Unmarshal(body, &s), string(body))
	return s
}

// session opens a client connection with a container-id of its own.
func session(t *testing.T, ctx context.Context, url, container string) *amqp.Session {
	t.Helper()
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{ContainerID: container})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	return sess
}

// eventually polls cond with a generous deadline (no wall-clock limit is asserted).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJSONShowsLinksAddressesAndQueues(t *testing.T) {
	f := newFakes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s := f.status(t)
	require.NotNil(t, s.Router)
	require.NotNil(t, s.Broker)
	require.Equal(t, f.router.URL(), s.Router.URL)
	require.Equal(t, f.broker.URL(), s.Broker.URL)
	require.Empty(t, s.Router.Links)

	// A receiver on the router: its link, its connection and its address show.
	rsess := session(t, ctx, f.router.URL(), "status-test-client")
	rcv, err := rsess.NewReceiver(ctx, "compute.host1", &amqp.ReceiverOptions{Name: "status-test-receiver", Credit: 5})
	require.NoError(t, err)
	eventually(t, "the router's link in /api/router", func() bool {
		var r statuspage.RouterState
		resp, body := f.get(t, "/api/router")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.Unmarshal(body, &r))
		for _, l := range r.Links {
			if l.Name == "status-test-receiver" {
				require.Equal(t, "receiver", l.Role)
				require.Equal(t, "compute.host1", l.Address)
				require.Equal(t, "status-test-client", l.Container)
				return true
			}
		}
		return false
	})
	s = f.status(t)
	require.Len(t, s.Router.Connections, 1)
	require.Equal(t, "status-test-client", s.Router.Connections[0].Container)
	require.Equal(t, 1, s.Router.Connections[0].Links)
	require.Contains(t, s.Router.Connections[0].Remote, "127.0.0.1:")
	var addr *fakerouter.AddressInfo
	for i, a := range s.Router.Addresses {
		if a.Address == "compute.host1" {
			addr = &s.Router.Addresses[i]
		}
	}
	require.NotNil(t, addr, "addresses: %+v", s.Router.Addresses)
	require.Equal(t, 1, addr.Consumers)
	require.NotEmpty(t, addr.Distribution)

	// A message through the router counts in and out.
	snd, err := rsess.NewSender(ctx, "compute.host1", nil)
	require.NoError(t, err)
	sent := make(chan error, 1) // the router settles once the receiver accepted
	go func() { sent <- snd.Send(ctx, amqp.NewMessage([]byte("hello")), nil) }()
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, rcv.AcceptMessage(ctx, m))
	require.NoError(t, <-sent)
	eventually(t, "the router's address counts", func() bool {
		for _, a := range f.status(t).Router.Addresses {
			if a.Address == "compute.host1" {
				return a.Counts.Ingress == 1 && a.Counts.Delivered == 1
			}
		}
		return false
	})

	// Three messages into a broker queue: depth 3, then 0 and dequeued 3 once taken.
	const q = "unicast.status.test"
	bsess := session(t, ctx, f.broker.URL(), "status-test-notifier")
	bsnd, err := bsess.NewSender(ctx, q, nil)
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, bsnd.Send(ctx, amqp.NewMessage(fmt.Appendf(nil, "n%d", i)), nil))
	}
	node := func() fakebroker.NodeInfo {
		resp, body := f.get(t, "/api/broker")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var b statuspage.BrokerState
		require.NoError(t, json.Unmarshal(body, &b))
		for _, n := range b.Nodes {
			if n.Name == q {
				return n
			}
		}
		return fakebroker.NodeInfo{}
	}
	n := node()
	require.Equal(t, fakebroker.Queue, n.Kind)
	require.Equal(t, 3, n.Depth)
	require.EqualValues(t, 3, n.Counts.Enqueued)
	require.Zero(t, n.Dequeued)
	require.Equal(t, 1, n.Senders)

	brcv, err := bsess.NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: 3})
	require.NoError(t, err)
	for range 3 {
		m, err := brcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, brcv.AcceptMessage(ctx, m))
	}
	eventually(t, "the queue emptied", func() bool {
		n := node()
		return n.Depth == 0 && n.Dequeued == 3 && n.Counts.Delivered == 3 && n.Consumers == 1
	})
	s = f.status(t)
	require.Len(t, s.Broker.Connections, 1)
	require.Equal(t, "status-test-notifier", s.Broker.Connections[0].Container)
	require.Len(t, s.Broker.Links, 2)
}

// scrape gathers /metrics over HTTP and parses Prometheus' text format.
func scrape(t *testing.T, f *fakes) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := f.get(t, "/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, string(body))
	return mfs
}

// value is the value of the metric of name whose labels include labels (name=value
// pairs); ok is false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsFollowTraffic(t *testing.T) {
	f := newFakes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	mfs := scrape(t, f)
	for name, want := range map[string]float64{
		"amqp1kit_router_connections": 0, "amqp1kit_router_receiver_links": 0, "amqp1kit_router_ingress_total": 0,
		"amqp1kit_broker_connections": 0, "amqp1kit_broker_sender_links": 0, "amqp1kit_broker_enqueued_total": 0,
	} {
		v, ok := value(mfs, name)
		require.True(t, ok, "no %s", name)
		require.Equal(t, want, v, name)
	}
	require.Equal(t, dto.MetricType_COUNTER, mfs["amqp1kit_broker_enqueued_total"].GetType())
	require.Equal(t, dto.MetricType_GAUGE, mfs["amqp1kit_router_connections"].GetType())

	// A receiver attached on the broker's queue (it takes nothing: no credit), then 3
	// messages in: depth 3.
	const q = "unicast.metrics.test"
	sess := session(t, ctx, f.broker.URL(), "metrics-test")
	rcv, err := sess.NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	snd, err := sess.NewSender(ctx, q, nil)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("m")), nil))
	}
	mfs = scrape(t, f)
	depth, ok := value(mfs, "amqp1kit_broker_node_depth", "node", q, "kind", "queue")
	require.True(t, ok, "no depth for %s", q)
	require.Equal(t, 3.0, depth)
	enq, _ := value(mfs, "amqp1kit_broker_node_enqueued_total", "node", q)
	require.Equal(t, 3.0, enq)
	consumers, _ := value(mfs, "amqp1kit_broker_node_consumers", "node", q)
	require.Equal(t, 1.0, consumers)
	conns, _ := value(mfs, "amqp1kit_broker_connections")
	require.Equal(t, 1.0, conns)
	links, _ := value(mfs, "amqp1kit_broker_receiver_links")
	require.Equal(t, 1.0, links)

	// The receiver takes and accepts them: depth 0, dequeued 3, at the next scrape.
	require.NoError(t, rcv.IssueCredit(3))
	for range 3 {
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(ctx, m))
	}
	eventually(t, "depth 0 and dequeued 3 in /metrics", func() bool {
		mfs := scrape(t, f)
		depth, _ := value(mfs, "amqp1kit_broker_node_depth", "node", q)
		deq, _ := value(mfs, "amqp1kit_broker_node_dequeued_total", "node", q)
		acked, _ := value(mfs, "amqp1kit_broker_acked_total")
		return depth == 0 && deq == 3 && acked == 3
	})

	// The router's figures through a registry gathered directly.
	rsess := session(t, ctx, f.router.URL(), "metrics-router")
	_, err = rsess.NewReceiver(ctx, "metrics.addr", nil)
	require.NoError(t, err)
	eventually(t, "the router's consumer", func() bool {
		mfs, err := f.page.Registry().Gather()
		require.NoError(t, err)
		byName := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			byName[mf.GetName()] = mf
		}
		c, _ := value(byName, "amqp1kit_router_address_consumers", "address", "metrics.addr")
		l, _ := value(byName, "amqp1kit_router_receiver_links")
		return c == 1 && l == 1
	})
}

func TestReadOnlyAndRoutes(t *testing.T) {
	f := newFakes(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		req, err := http.NewRequest(m, f.srv.URL+"/api/status", strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, m)
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	}
	resp, body := f.get(t, "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, string(body), `<script src="app.js">`)
	resp, body = f.get(t, "/app.js")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
	require.Contains(t, string(body), "api/status")
	resp, _ = f.get(t, "/style.css")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/css")
	resp, _ = f.get(t, "/no/such/page")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A page for the broker alone has no router part.
	only := httptest.NewServer(statuspage.New(statuspage.Options{Broker: f.broker}))
	defer only.Close()
	r, err := http.Get(only.URL + "/api/router")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	r, err = http.Get(only.URL + "/api/status")
	require.NoError(t, err)
	var s map[string]any
	require.NoError(t, json.NewDecoder(r.Body).Decode(&s))
	r.Body.Close()
	require.NotContains(t, s, "Router")
	require.Contains(t, s, "Broker")

	require.Panics(t, func() { statuspage.New(statuspage.Options{}) })
}

func TestTopicFigures(t *testing.T) {
	f := newFakes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "broadcast.status.test"
	sess := session(t, ctx, f.broker.URL(), "topic-test")
	var subs []*amqp.Receiver
	for range 2 {
		rcv, err := sess.NewReceiver(ctx, topic, &amqp.ReceiverOptions{Credit: -1})
		require.NoError(t, err)
		subs = append(subs, rcv)
	}
	snd, err := sess.NewSender(ctx, topic, nil)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("t")), nil))
	}
	find := func(s statuspage.Snapshot) (top fakebroker.NodeInfo, subQueues int) {
		for _, n := range s.Broker.Nodes {
			switch {
			case n.Name == topic:
				top = n
			case n.Topic == topic:
				subQueues++
			}
		}
		return top, subQueues
	}
	top, subQueues := find(f.status(t))
	require.Equal(t, fakebroker.Topic, top.Kind)
	require.Equal(t, 2, subQueues)
	require.Equal(t, 2, top.Consumers)
	require.Equal(t, 4, top.Depth, "two copies in each subscription queue")
	require.Zero(t, top.Dequeued)

	for _, rcv := range subs {
		require.NoError(t, rcv.IssueCredit(2))
		for range 2 {
			m, err := rcv.Receive(ctx, nil)
			require.NoError(t, err)
			require.NoError(t, rcv.AcceptMessage(ctx, m))
		}
	}
	eventually(t, "the topic's subscription queues emptied", func() bool {
		top, _ := find(f.status(t))
		return top.Depth == 0 && top.Dequeued == 4
	})
}

// A client that connected to the router and sent nothing yet shows with its address
// only (its open is not read before it arrived: -race watches). The broker lists
// connections once they are open.
func TestConnectionInHandshake(t *testing.T) {
	f := newFakes(t)
	nc, err := net.Dial("tcp", f.router.Addr())
	require.NoError(t, err)
	defer nc.Close()
	eventually(t, "the connection in /api/router", func() bool {
		c := f.status(t).Router.Connections
		if len(c) != 1 {
			return false
		}
		require.Equal(t, nc.LocalAddr().String(), c[0].Remote)
		require.Empty(t, c[0].Container)
		require.Zero(t, c[0].Links)
		return true
	})
}
