package statuspage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// A metric read from a value of type T.
type metric[T any] struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(T) float64
}

func counter[T any](name, help string, labels []string, value func(T) uint64) metric[T] {
	return metric[T]{
		desc: prometheus.NewDesc(name, help, labels, nil), typ: prometheus.CounterValue,
		value: func(x T) float64 { return float64(value(x)) },
	}
}

func gauge[T any](name, help string, labels []string, value func(T) int) metric[T] {
	return metric[T]{
		desc: prometheus.NewDesc(name, help, labels, nil), typ: prometheus.GaugeValue,
		value: func(x T) float64 { return float64(value(x)) },
	}
}

func emit[T any](ch chan<- prometheus.Metric, ms []metric[T], x T, labels ...string) {
	for _, m := range ms {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(x), labels...)
	}
}

func describe[T any](ch chan<- *prometheus.Desc, ms []metric[T]) {
	for _, m := range ms {
		ch <- m.desc
	}
}

// connections and links, as both fakes have them.
type peers struct {
	conns int
	links []fakerouter.LinkInfo // the same type as fakebroker.LinkInfo
}

func peerMetrics(fake string) []metric[peers] {
	roles := func(role string) func(peers) int {
		return func(p peers) int {
			n := 0
			for _, l := range p.links {
				if l.Role == role {
					n++
				}
			}
			return n
		}
	}
	return []metric[peers]{
		gauge("amqp1kit_"+fake+"_connections", "Open client connections.", nil, func(p peers) int { return p.conns }),
		gauge("amqp1kit_"+fake+"_sender_links", "Attached links on which clients send.", nil, roles("sender")),
		gauge("amqp1kit_"+fake+"_receiver_links", "Attached links on which clients receive.", nil, roles("receiver")),
	}
}

var (
	routerPeers  = peerMetrics("router")
	routerTotals = []metric[fakerouter.Counts]{
		counter("amqp1kit_router_ingress_total", "Messages received from senders.", nil, func(c fakerouter.Counts) uint64 { return c.Ingress }),
		counter("amqp1kit_router_delivered_total", "Messages (and multicast copies) sent to consumers.", nil, func(c fakerouter.Counts) uint64 { return c.Delivered }),
		counter("amqp1kit_router_dropped_total", "Messages (or multicast copies) no consumer got.", nil, func(c fakerouter.Counts) uint64 { return c.Dropped }),
		counter("amqp1kit_router_accepted_total", "Accepted outcomes given back to senders.", nil, func(c fakerouter.Counts) uint64 { return c.Accepted }),
		counter("amqp1kit_router_released_total", "Released outcomes given back to senders.", nil, func(c fakerouter.Counts) uint64 { return c.Released }),
		counter("amqp1kit_router_modified_total", "Modified outcomes given back to senders.", nil, func(c fakerouter.Counts) uint64 { return c.Modified }),
		counter("amqp1kit_router_rejected_total", "Rejected outcomes given back to senders.", nil, func(c fakerouter.Counts) uint64 { return c.Rejected }),
	}
	addressLabels = []string{"address", "distribution"}
	routerAddress = []metric[fakerouter.AddressInfo]{
		gauge("amqp1kit_router_address_consumers", "Consumers attached to the address.", addressLabels, func(a fakerouter.AddressInfo) int { return a.Consumers }),
		gauge("amqp1kit_router_address_senders", "Senders attached to the address.", addressLabels, func(a fakerouter.AddressInfo) int { return a.Senders }),
		gauge("amqp1kit_router_address_waiting", "Messages given to the address's consumers and not sent yet (no credit, or a slow reader).", addressLabels, func(a fakerouter.AddressInfo) int { return a.Waiting }),
		counter("amqp1kit_router_address_ingress_total", "Messages received for the address.", addressLabels, func(a fakerouter.AddressInfo) uint64 { return a.Counts.Ingress }),
		counter("amqp1kit_router_address_delivered_total", "Messages sent to the address's consumers.", addressLabels, func(a fakerouter.AddressInfo) uint64 { return a.Counts.Delivered }),
		counter("amqp1kit_router_address_dropped_total", "Messages for the address no consumer got.", addressLabels, func(a fakerouter.AddressInfo) uint64 { return a.Counts.Dropped }),
	}
)

// routerCollector reads a router's inspection APIs at each scrape.
type routerCollector struct{ r *fakerouter.Router }

// Describe sends the descriptions of the router's metrics.
func (c routerCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, routerPeers)
	describe(ch, routerTotals)
	describe(ch, routerAddress)
}

// Collect reads the router.
func (c routerCollector) Collect(ch chan<- prometheus.Metric) {
	emit(ch, routerPeers, peers{conns: c.r.Connections(), links: c.r.Links()})
	emit(ch, routerTotals, c.r.Stats())
	for _, a := range c.r.Addresses() {
		emit(ch, routerAddress, a, a.Address, string(a.Distribution))
	}
}

var (
	brokerPeers  = peerMetrics("broker")
	brokerTotals = []metric[fakebroker.Counts]{
		counter("amqp1kit_broker_received_total", "Messages senders sent, refused ones included.", nil, func(c fakebroker.Counts) uint64 { return c.Received }),
		counter("amqp1kit_broker_enqueued_total", "Messages stored in queues (a topic's copies each).", nil, func(c fakebroker.Counts) uint64 { return c.Enqueued }),
		counter("amqp1kit_broker_refused_total", "Unsettled messages released or rejected instead of stored.", nil, func(c fakebroker.Counts) uint64 { return c.Refused }),
		counter("amqp1kit_broker_delivered_total", "Messages sent to consumers, redeliveries included.", nil, func(c fakebroker.Counts) uint64 { return c.Delivered }),
		counter("amqp1kit_broker_redelivered_total", "Deliveries of messages delivered before.", nil, func(c fakebroker.Counts) uint64 { return c.Redelivered }),
		counter("amqp1kit_broker_acked_total", "Messages consumers accepted (or took pre-settled).", nil, func(c fakebroker.Counts) uint64 { return c.Acked }),
		counter("amqp1kit_broker_released_total", "Released outcomes consumers gave.", nil, func(c fakebroker.Counts) uint64 { return c.Released }),
		counter("amqp1kit_broker_modified_total", "Modified outcomes consumers gave.", nil, func(c fakebroker.Counts) uint64 { return c.Modified }),
		counter("amqp1kit_broker_rejected_total", "Rejected outcomes consumers gave.", nil, func(c fakebroker.Counts) uint64 { return c.Rejected }),
		counter("amqp1kit_broker_dead_lettered_total", "Rejected messages moved to the dead-letter queue.", nil, func(c fakebroker.Counts) uint64 { return c.DeadLettered }),
		counter("amqp1kit_broker_expired_total", "Messages dropped because their ttl passed.", nil, func(c fakebroker.Counts) uint64 { return c.Expired }),
		counter("amqp1kit_broker_dropped_total", "Messages discarded without being acknowledged.", nil, func(c fakebroker.Counts) uint64 { return c.Dropped }),
	}
	nodeLabels = []string{"node", "kind", "topic"}
	brokerNode = []metric[fakebroker.NodeInfo]{
		gauge("amqp1kit_broker_node_depth", "Messages the queue holds, acquired ones included (a topic: its subscription queues').", nodeLabels, func(n fakebroker.NodeInfo) int { return n.Depth }),
		gauge("amqp1kit_broker_node_acquired", "Messages delivered to consumers and not settled yet.", nodeLabels, func(n fakebroker.NodeInfo) int { return n.Acquired }),
		gauge("amqp1kit_broker_node_consumers", "Receiving links (a topic: its subscribers).", nodeLabels, func(n fakebroker.NodeInfo) int { return n.Consumers }),
		gauge("amqp1kit_broker_node_senders", "Sending links attached to the node.", nodeLabels, func(n fakebroker.NodeInfo) int { return n.Senders }),
		counter("amqp1kit_broker_node_received_total", "Messages senders sent to the node.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Received }),
		counter("amqp1kit_broker_node_enqueued_total", "Messages stored in the queue.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Enqueued }),
		counter("amqp1kit_broker_node_dequeued_total", "Messages that left the queue for good.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Dequeued }),
		counter("amqp1kit_broker_node_delivered_total", "Messages sent to consumers, redeliveries included.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Delivered }),
		counter("amqp1kit_broker_node_redelivered_total", "Deliveries of messages delivered before.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Redelivered }),
		counter("amqp1kit_broker_node_acked_total", "Messages consumers accepted (or took pre-settled).", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Acked }),
		counter("amqp1kit_broker_node_expired_total", "Messages dropped because their ttl passed.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Expired }),
		counter("amqp1kit_broker_node_dropped_total", "Messages discarded without being acknowledged.", nodeLabels, func(n fakebroker.NodeInfo) uint64 { return n.Counts.Dropped }),
	}
)

// brokerCollector reads a broker's inspection APIs at each scrape.
type brokerCollector struct{ b *fakebroker.Broker }

// Describe sends the descriptions of the broker's metrics.
func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, brokerPeers)
	describe(ch, brokerTotals)
	describe(ch, brokerNode)
}

// Collect reads the broker.
func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	emit(ch, brokerPeers, peers{conns: c.b.Connections(), links: c.b.Links()})
	emit(ch, brokerTotals, c.b.Stats())
	for _, n := range c.b.Nodes() {
		emit(ch, brokerNode, n, n.Name, string(n.Kind), n.Topic)
	}
}
