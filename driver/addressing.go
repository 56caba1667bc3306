package driver

import (
	"reflect"
	"strings"
)

// Target names where RPC and notification messages go, as oslo_messaging.Target.
//
// Exchange, Topic, Server and Fanout choose the address (see Addresser.Resolve);
// Namespace and Version travel in RPC request bodies and play no part in addressing.
type Target struct {
	// Exchange scopes the topic; "" means the default (control_exchange, or for
	// routable addresses default_rpc_exchange / default_notification_exchange).
	Exchange string
	// Topic is the RPC topic ("compute"), or for notifications "<topic>.<priority>"
	// ("notifications.info").
	Topic string
	// Server names one RPC server; a call or cast with it goes to that server only.
	Server string
	// Fanout sends a cast to every server of the topic.
	Fanout bool
	// Namespace is the RPC endpoint namespace.
	Namespace string
	// Version is the RPC API version ("1.2").
	Version string
}

// Service is the kind of traffic an address is for.
type Service int

const (
	// ServiceRPC is RPC traffic: calls, casts, fanout and server subscriptions.
	ServiceRPC Service = iota
	// ServiceNotify is notification traffic.
	ServiceNotify
)

// productLegacy is the open-frame product of qpidd, the one product that makes the
// dynamic addressing mode choose legacy addresses.
const productLegacy = "qpid-cpp"

// Addresser builds the addresses the Python driver builds, byte for byte
// (_drivers/amqp1_driver/addressing.py LegacyAddresser and RoutableAddresser). An
// Addresser belongs to one connection: the syntax may change when a reconnect
// reaches another kind of intermediary.
//
// Legacy addresses:
//
//	multicast: <broadcast_prefix>[.<vhost>].<exchange>.<topic>.all
//	unicast:   <server_request_prefix>[.<vhost>].<exchange>.<topic>.<server>
//	anycast:   <group_request_prefix>[.<vhost>].<exchange>.<topic>
//
// where exchange is Target.Exchange, else control_exchange (left out when that is
// empty); default_rpc_exchange and default_notification_exchange are ignored, and RPC
// and notifications share one namespace.
//
// Routable addresses:
//
//	<rpc_address_prefix|notify_address_prefix>/<multicast|unicast|anycast tag>[/<vhost>]/<exchange>/<topic>[/<server>]
//
// where exchange is Target.Exchange, else default_rpc_exchange (RPC) or
// default_notification_exchange (notifications), else control_exchange, else
// "openstack". Multicast has no "all" suffix.
//
// As in Python, empty parts (and their separators) are left out, and nothing is
// escaped. The Addresser does not drop Target.Exchange for notifications: oslo's
// notifier and notification listener do that themselves, by building
// Target{Topic: "<topic>.<priority>"} (notify/messaging.py:MessagingDriver.notify,
// impl_amqp1.py:ProtonDriver.listen_for_notifications), and so must callers.
type Addresser struct {
	legacy bool
	vhost  string

	// legacy
	defaultExchange                            string
	serverPrefix, broadcastPrefix, groupPrefix string

	// routable: the "<prefix>/<tag>" heads, per service, and the default exchanges
	rpcUnicast, rpcMulticast, rpcAnycast          string
	notifyUnicast, notifyMulticast, notifyAnycast string
	rpcExchange, notifyExchange                   string
}

// newAddresser returns the addresser the Python driver picks for a connection
// (addressing.py:AddresserFactory.__call__, called from
// controller.py:Controller.connection_active):
//
//   - AddressingMode "legacy": legacy;
//   - "dynamic": legacy if the peer's open properties have "product" equal to
//     "qpid-cpp" (string or symbol) or no "product" at all (a nil map too);
//     routable for any other value (qdrouterd's "qpid-dispatch-router", RabbitMQ,
//     a non-string value);
//   - anything else ("routable", but also "Legacy", "dynamic " or any typo):
//     routable. Mode names are case-sensitive, as in Python.
//
// vhost is the transport URL's virtual host ("" for none); it goes into the
// addresses only when o.PseudoVhost is set. The options are copied: later changes to
// o do not affect the Addresser.
func newAddresser(o *Options, vhost string, peerProperties map[string]any) *Addresser {
	a := &Addresser{}
	if o.PseudoVhost {
		a.vhost = vhost
	}
	switch o.AddressingMode {
	case "legacy":
		a.legacy = true
	case "dynamic":
		product, ok := peerProperties["product"]
		a.legacy = !ok || isString(product, productLegacy)
	}
	if a.legacy {
		a.defaultExchange = o.ControlExchange
		a.serverPrefix = o.ServerRequestPrefix
		a.broadcastPrefix = o.BroadcastPrefix
		a.groupPrefix = o.GroupRequestPrefix
		return a
	}
	def := o.ControlExchange
	if def == "" {
		def = "openstack"
	}
	rpc, notify := o.RPCAddressPrefix+"/", o.NotifyAddressPrefix+"/"
	a.rpcUnicast, a.rpcMulticast, a.rpcAnycast = rpc+o.UnicastAddress, rpc+o.MulticastAddress, rpc+o.AnycastAddress
	a.notifyUnicast, a.notifyMulticast, a.notifyAnycast = notify+o.UnicastAddress, notify+o.MulticastAddress, notify+o.AnycastAddress
	a.rpcExchange = firstNonEmpty(o.DefaultRPCExchange, def)
	a.notifyExchange = firstNonEmpty(o.DefaultNotificationExchange, def)
	return a
}

// isString reports whether v is a string (or a string type such as amqp.Symbol)
// equal to want.
func isString(v any, want string) bool {
	rv := reflect.ValueOf(v)
	return rv.IsValid() && rv.Kind() == reflect.String && rv.String() == want
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Legacy reports whether the addresser builds legacy addresses (routable if false).
func (a *Addresser) Legacy() bool { return a.legacy }

// Resolve returns the address of t: Multicast if t.Fanout, else Unicast if t.Server
// is set, else Anycast (addressing.py:Addresser.resolve).
func (a *Addresser) Resolve(t Target, s Service) string {
	switch {
	case t.Fanout:
		return a.Multicast(t, s)
	case t.Server != "":
		return a.Unicast(t, s)
	default:
		return a.Anycast(t, s)
	}
}

// Multicast returns the fanout address of t (every subscriber gets a copy).
func (a *Addresser) Multicast(t Target, s Service) string {
	if a.legacy {
		return concat(".", a.broadcastPrefix, a.vhost, a.exchange(t, s), t.Topic, "all")
	}
	return concat("/", a.head(s, a.rpcMulticast, a.notifyMulticast), a.vhost, a.exchange(t, s), t.Topic)
}

// Unicast returns the address of the one server t.Server of t's topic.
func (a *Addresser) Unicast(t Target, s Service) string {
	if a.legacy {
		return concat(".", a.serverPrefix, a.vhost, a.exchange(t, s), t.Topic, t.Server)
	}
	return concat("/", a.head(s, a.rpcUnicast, a.notifyUnicast), a.vhost, a.exchange(t, s), t.Topic, t.Server)
}

// Anycast returns the address shared by the servers (or notification listeners) of
// t's topic, each message going to one of them.
func (a *Addresser) Anycast(t Target, s Service) string {
	if a.legacy {
		return concat(".", a.groupPrefix, a.vhost, a.exchange(t, s), t.Topic)
	}
	return concat("/", a.head(s, a.rpcAnycast, a.notifyAnycast), a.vhost, a.exchange(t, s), t.Topic)
}

// head picks the routable prefix of the service; any service other than ServiceRPC
// counts as notifications.
func (a *Addresser) head(s Service, rpc, notify string) string {
	if s == ServiceRPC {
		return rpc
	}
	return notify
}

func (a *Addresser) exchange(t Target, s Service) string {
	if t.Exchange != "" {
		return t.Exchange
	}
	if a.legacy {
		return a.defaultExchange
	}
	return a.head(s, a.rpcExchange, a.notifyExchange)
}

// concat joins the non-empty items with sep (addressing.py:Addresser._concat).
func concat(sep string, items ...string) string {
	var b strings.Builder
	for _, it := range items {
		if it == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(it)
	}
	return b.String()
}
