// Package statuspage serves what amqp1kit's fakes hold, for people and for
// monitoring: a live status page, the JSON it polls, and Prometheus metrics.
//
// New builds an http.Handler over a fake router, a fake broker or both:
//
//	/               the page: connections, links, the router's addresses
//	                (distribution, consumers, in/out/dropped), the broker's queues and
//	                topics (depth, enqueued, dequeued, redelivered, expired) and rates,
//	                refreshed by polling /api/status (plain JavaScript, embedded)
//	/api/status     a Snapshot of both fakes as JSON
//	/api/router     the router's part alone (404 without a router)
//	/api/broker     the broker's part alone (404 without a broker)
//	/metrics        Prometheus' text format, from a registry of the handler's own
//
// Every figure comes from the fakes' inspection APIs (Router.Addresses, Links,
// Conns, Stats; Broker.Nodes, Links, Conns, Stats), read when a request arrives:
// the handler keeps no counts of its own, and the metrics' collectors read the
// fakes at scrape time. The rates the page shows are computed by the page from two
// successive snapshots. The handler is read-only: it answers GET and HEAD only.
//
// The metrics are amqp1kit_router_* and amqp1kit_broker_*: gauges of connections,
// sender and receiver links, and counters (_total) of the fakes' totals; per address
// (labels address and distribution) the router's consumers, senders, waiting messages
// and ingress, delivered and dropped counts; per node (labels node, kind and topic, the
// topic a subscription queue is bound to) the broker's depth, acquired, consumers,
// senders and received, enqueued, dequeued, delivered, redelivered, acked, expired and
// dropped counts.
//
// amqp1kit serve --http 127.0.0.1:8672 serves it beside the fakes. A test serves it
// with net/http/httptest to look at what an intermediary saw while the test runs, or
// logs Page.Snapshot (Snapshot.WriteText) when it fails.
package statuspage

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

//go:embed assets
var assets embed.FS

// Options say which fakes a Page shows; either may be nil, not both.
type Options struct {
	Router *fakerouter.Router
	Broker *fakebroker.Broker
}

// Page is the status page's handler. It is safe for concurrent use.
type Page struct {
	router   *fakerouter.Router
	broker   *fakebroker.Broker
	registry *prometheus.Registry
	mux      *http.ServeMux
}

// New returns the handler for the fakes opts names. It panics when opts names
// neither (a programming error).
func New(opts Options) *Page {
	if opts.Router == nil && opts.Broker == nil {
		panic("statuspage: Options names neither a router nor a broker")
	}
	p := &Page{router: opts.Router, broker: opts.Broker, registry: prometheus.NewRegistry()}
	if p.router != nil {
		p.registry.MustRegister(routerCollector{p.router})
	}
	if p.broker != nil {
		p.registry.MustRegister(brokerCollector{p.broker})
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is always there
	}
	p.mux = http.NewServeMux()
	p.mux.Handle("GET /{$}", fileHandler(static, "index.html"))
	p.mux.Handle("GET /app.js", fileHandler(static, "app.js"))
	p.mux.Handle("GET /style.css", fileHandler(static, "style.css"))
	p.mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, p.Snapshot())
	})
	p.mux.HandleFunc("GET /api/router", func(w http.ResponseWriter, _ *http.Request) {
		if p.router == nil {
			http.Error(w, "statuspage: no router here", http.StatusNotFound)
			return
		}
		writeJSON(w, ReadRouter(p.router))
	})
	p.mux.HandleFunc("GET /api/broker", func(w http.ResponseWriter, _ *http.Request) {
		if p.broker == nil {
			http.Error(w, "statuspage: no broker here", http.StatusNotFound)
			return
		}
		writeJSON(w, ReadBroker(p.broker))
	})
	p.mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	return p
}

// ServeHTTP answers GET and HEAD requests for the page, the JSON endpoints and the
// metrics; any other method gets 405.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "statuspage: read-only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	p.mux.ServeHTTP(w, r)
}

// Registry returns the Prometheus registry /metrics serves, to gather from in a test
// or to register more collectors on.
func (p *Page) Registry() *prometheus.Registry { return p.registry }

// Snapshot returns what the fakes hold now, as /api/status shows it.
func (p *Page) Snapshot() Snapshot {
	s := Snapshot{Time: time.Now()}
	if p.router != nil {
		rs := ReadRouter(p.router)
		s.Router = &rs
	}
	if p.broker != nil {
		bs := ReadBroker(p.broker)
		s.Broker = &bs
	}
	return s
}

func fileHandler(fsys fs.FS, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, fsys, name)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
