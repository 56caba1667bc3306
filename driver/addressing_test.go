package driver

import (
	"fmt"
	"testing"

	amqp "github.com/Azure/go-amqp"
)

// addrCase is one address to build: options tweaks, vhost, mode, target, service.
type addrCase struct {
	name    string
	legacy  bool // the addresser mode (forced through addressing_mode)
	vhost   string
	opts    func(o *Options)
	target  Target
	service Service
	want    string
}

func forcedAddresser(c addrCase) *Addresser {
	o := DefaultOptions()
	if c.opts != nil {
		c.opts(&o)
	}
	o.AddressingMode = "routable"
	if c.legacy {
		o.AddressingMode = "legacy"
	}
	return newAddresser(&o, c.vhost, nil)
}

// wireDocCases are the worked examples of docs/oslo-amqp1-wire.md §3.5, plus the
// variations the Python tests exercise (test_address_options, the unit-test
// addresser with no default exchange).
func wireDocCases() []addrCase {
	compute := Target{Topic: "compute"}
	server := Target{Topic: "compute", Server: "node1"}
	fanout := Target{Topic: "compute", Fanout: true}
	notif := Target{Topic: "notifications.info"}
	rpcx := func(o *Options) { o.DefaultRPCExchange = "rpcx" }
	notifx := func(o *Options) { o.DefaultNotificationExchange = "notif" }
	custom := func(o *Options) {
		o.ServerRequestPrefix, o.BroadcastPrefix, o.GroupRequestPrefix = "srv", "bcast", "grp"
		o.RPCAddressPrefix, o.NotifyAddressPrefix = "RPC-PREFIX", "NOTIFY-PREFIX"
		o.MulticastAddress, o.UnicastAddress, o.AnycastAddress = "MULTI", "UNI", "ANY"
		o.DefaultRPCExchange, o.DefaultNotificationExchange = "RPC-EXCHANGE", "NOTIFY-EXCHANGE"
	}
	noExchange := func(o *Options) { o.ControlExchange = "" }
	noPseudo := func(o *Options) { o.PseudoVhost = false }
	both := func(o *Options) { rpcx(o); notifx(o) }
	return []addrCase{
		// §3.5 table, no vhost
		{"anycast", true, "", nil, compute, ServiceRPC, "unicast.openstack.compute"},
		{"anycast", false, "", nil, compute, ServiceRPC, "openstack.org/om/rpc/anycast/openstack/compute"},
		{"anycast exchange", true, "", nil, Target{Exchange: "nova", Topic: "compute"}, ServiceRPC, "unicast.nova.compute"},
		{"anycast exchange", false, "", nil, Target{Exchange: "nova", Topic: "compute"}, ServiceRPC, "openstack.org/om/rpc/anycast/nova/compute"},
		{"default_rpc_exchange", true, "", rpcx, compute, ServiceRPC, "unicast.openstack.compute"},
		{"default_rpc_exchange", false, "", rpcx, compute, ServiceRPC, "openstack.org/om/rpc/anycast/rpcx/compute"},
		{"server", true, "", nil, server, ServiceRPC, "exclusive.openstack.compute.node1"},
		{"server", false, "", nil, server, ServiceRPC, "openstack.org/om/rpc/unicast/openstack/compute/node1"},
		{"fanout", true, "", nil, fanout, ServiceRPC, "broadcast.openstack.compute.all"},
		{"fanout", false, "", nil, fanout, ServiceRPC, "openstack.org/om/rpc/multicast/openstack/compute"},
		{"notification", true, "", nil, notif, ServiceNotify, "unicast.openstack.notifications.info"},
		{"notification", false, "", nil, notif, ServiceNotify, "openstack.org/om/notify/anycast/openstack/notifications.info"},
		{"default_notification_exchange", true, "", notifx, notif, ServiceNotify, "unicast.openstack.notifications.info"},
		{"default_notification_exchange", false, "", notifx, notif, ServiceNotify, "openstack.org/om/notify/anycast/notif/notifications.info"},
		// §3.5 table, pseudo-vhost vh
		{"anycast vhost", true, "vh", nil, compute, ServiceRPC, "unicast.vh.openstack.compute"},
		{"anycast vhost", false, "vh", nil, compute, ServiceRPC, "openstack.org/om/rpc/anycast/vh/openstack/compute"},
		{"server vhost", true, "vh", nil, server, ServiceRPC, "exclusive.vh.openstack.compute.node1"},
		{"server vhost", false, "vh", nil, server, ServiceRPC, "openstack.org/om/rpc/unicast/vh/openstack/compute/node1"},
		{"fanout vhost", true, "vh", nil, fanout, ServiceRPC, "broadcast.vh.openstack.compute.all"},
		{"fanout vhost", false, "vh", nil, fanout, ServiceRPC, "openstack.org/om/rpc/multicast/vh/openstack/compute"},
		{"notification vhost", true, "vh", nil, notif, ServiceNotify, "unicast.vh.openstack.notifications.info"},
		{"notification vhost", false, "vh", nil, notif, ServiceNotify, "openstack.org/om/notify/anycast/vh/openstack/notifications.info"},
		// pseudo_vhost=False: the vhost goes into the open frame, not the address
		{"no pseudo vhost", true, "vh", noPseudo, server, ServiceRPC, "exclusive.openstack.compute.node1"},
		{"no pseudo vhost", false, "vh", noPseudo, server, ServiceRPC, "openstack.org/om/rpc/unicast/openstack/compute/node1"},
		// exchanges: the target's wins over the defaults, per service
		{"target exchange beats defaults", false, "", both, Target{Exchange: "e1", Topic: "t"}, ServiceRPC, "openstack.org/om/rpc/anycast/e1/t"},
		{"rpc default for rpc", false, "", both, fanout, ServiceRPC, "openstack.org/om/rpc/multicast/rpcx/compute"},
		{"notify default for notify", false, "", both, server, ServiceNotify, "openstack.org/om/notify/unicast/notif/compute/node1"},
		{"notify fanout", false, "vh", both, fanout, ServiceNotify, "openstack.org/om/notify/multicast/vh/notif/compute"},
		{"legacy ignores both defaults", true, "", both, server, ServiceNotify, "exclusive.openstack.compute.node1"},
		// custom prefixes and tags (test_address_options)
		{"custom anycast", true, "", custom, compute, ServiceRPC, "grp.openstack.compute"},
		{"custom unicast", true, "", custom, server, ServiceRPC, "srv.openstack.compute.node1"},
		{"custom multicast", true, "", custom, fanout, ServiceRPC, "bcast.openstack.compute.all"},
		{"custom anycast", false, "", custom, compute, ServiceRPC, "RPC-PREFIX/ANY/RPC-EXCHANGE/compute"},
		{"custom unicast", false, "", custom, server, ServiceRPC, "RPC-PREFIX/UNI/RPC-EXCHANGE/compute/node1"},
		{"custom multicast", false, "", custom, fanout, ServiceRPC, "RPC-PREFIX/MULTI/RPC-EXCHANGE/compute"},
		{"custom notify", false, "", custom, notif, ServiceNotify, "NOTIFY-PREFIX/ANY/NOTIFY-EXCHANGE/notifications.info"},
		// no default exchange (control_exchange ""): legacy leaves it out, routable
		// falls back to "openstack", never to the 'rpc'/'notify' of the help text
		{"no exchange anycast", true, "", noExchange, Target{Topic: "test-topic"}, ServiceRPC, "unicast.test-topic"},
		{"no exchange fanout", true, "", noExchange, Target{Topic: "test-topic", Fanout: true}, ServiceRPC, "broadcast.test-topic.all"},
		{"no exchange server", true, "", noExchange, Target{Topic: "test-topic", Server: "server"}, ServiceRPC, "exclusive.test-topic.server"},
		{"no exchange routable rpc", false, "", noExchange, compute, ServiceRPC, "openstack.org/om/rpc/anycast/openstack/compute"},
		{"no exchange routable notify", false, "", noExchange, notif, ServiceNotify, "openstack.org/om/notify/anycast/openstack/notifications.info"},
		// empty parts vanish with their separator; nothing is escaped
		{"no topic", true, "", nil, Target{}, ServiceRPC, "unicast.openstack"},
		{"no topic routable", false, "", nil, Target{Server: "s"}, ServiceRPC, "openstack.org/om/rpc/unicast/openstack/s"},
		{"dots and slashes", false, "", nil, Target{Topic: "a.b/c", Server: "x/y.z"}, ServiceRPC, "openstack.org/om/rpc/unicast/openstack/a.b/c/x/y.z"},
		{"empty prefix", false, "", func(o *Options) { o.RPCAddressPrefix, o.AnycastAddress = "", "" }, compute, ServiceRPC, "//openstack/compute"},
		{"empty legacy prefix", true, "", func(o *Options) { o.GroupRequestPrefix = "" }, compute, ServiceRPC, "openstack.compute"},
		// fanout wins over server, as in Addresser.resolve
		{"fanout and server", true, "", nil, Target{Topic: "compute", Server: "node1", Fanout: true}, ServiceRPC, "broadcast.openstack.compute.all"},
	}
}

func TestAddresserWireDocExamples(t *testing.T) {
	for _, c := range wireDocCases() {
		mode := "routable"
		if c.legacy {
			mode = "legacy"
		}
		t.Run(mode+"/"+c.name, func(t *testing.T) {
			a := forcedAddresser(c)
			if a.Legacy() != c.legacy {
				t.Fatalf("Legacy() = %v, want %v", a.Legacy(), c.legacy)
			}
			if got := a.Resolve(c.target, c.service); got != c.want {
				t.Errorf("Resolve(%+v, %d) = %q, want %q", c.target, c.service, got, c.want)
			}
		})
	}
}

func TestAddresserExplicitPatterns(t *testing.T) {
	// The three explicit methods ignore Fanout/Server for the choice, as the Python
	// methods do: an RPC server subscribes to all three for one target.
	tg := Target{Topic: "compute", Server: "node1"}
	for _, legacy := range []bool{true, false} {
		a := forcedAddresser(addrCase{legacy: legacy, vhost: "vh"})
		got := []string{a.Unicast(tg, ServiceRPC), a.Multicast(tg, ServiceRPC), a.Anycast(tg, ServiceRPC)}
		want := []string{"exclusive.vh.openstack.compute.node1", "broadcast.vh.openstack.compute.all", "unicast.vh.openstack.compute"}
		if !legacy {
			want = []string{
				"openstack.org/om/rpc/unicast/vh/openstack/compute/node1",
				"openstack.org/om/rpc/multicast/vh/openstack/compute",
				"openstack.org/om/rpc/anycast/vh/openstack/compute",
			}
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("legacy=%v: [%d] = %q, want %q", legacy, i, got[i], want[i])
			}
		}
	}
}

func TestAddresserOptionsCopied(t *testing.T) {
	o := DefaultOptions()
	o.AddressingMode = "legacy"
	a := newAddresser(&o, "", nil)
	o.GroupRequestPrefix = "changed"
	o.ControlExchange = "changed"
	if got := a.Anycast(Target{Topic: "t"}, ServiceRPC); got != "unicast.openstack.t" {
		t.Errorf("Anycast = %q after changing the options, want unicast.openstack.t", got)
	}
}

// modeCases is the decision table of §3.4.
var modeCases = []struct {
	mode   string
	props  map[string]any
	legacy bool
}{
	{"legacy", nil, true},
	{"legacy", map[string]any{"product": "qpid-dispatch-router"}, true},
	{"routable", nil, false},
	{"routable", map[string]any{"product": "qpid-cpp"}, false},
	{"dynamic", nil, true},
	{"dynamic", map[string]any{}, true},
	{"dynamic", map[string]any{"version": "1.0"}, true},
	{"dynamic", map[string]any{"product": "qpid-cpp"}, true},
	{"dynamic", map[string]any{"product": amqp.Symbol("qpid-cpp")}, true},
	{"dynamic", map[string]any{"product": "qpid-dispatch-router"}, false},
	{"dynamic", map[string]any{"product": amqp.Symbol("qpid-dispatch-router")}, false},
	{"dynamic", map[string]any{"product": "RabbitMQ"}, false},
	{"dynamic", map[string]any{"product": "apache-activemq-artemis"}, false},
	{"dynamic", map[string]any{"product": "router"}, false},
	{"dynamic", map[string]any{"product": "QPID-CPP"}, false}, // case-sensitive
	{"dynamic", map[string]any{"product": "qpid-cpp "}, false},
	{"dynamic", map[string]any{"product": nil}, false},                // present but None
	{"dynamic", map[string]any{"product": []byte("qpid-cpp")}, false}, // binary is not a string
	{"dynamic", map[string]any{"Product": "qpid-cpp"}, true},          // keys are case-sensitive: no product
	// typos and other strings mean routable
	{"Legacy", nil, false},
	{"LEGACY", nil, false},
	{"legacy ", nil, false},
	{"Dynamic", nil, false},
	{"dynmaic", map[string]any{"product": "qpid-cpp"}, false},
	{"", nil, false},
}

func TestAddresserModeDecision(t *testing.T) {
	for _, c := range modeCases {
		t.Run(fmt.Sprintf("%q/%v", c.mode, c.props), func(t *testing.T) {
			o := DefaultOptions()
			o.AddressingMode = c.mode
			a := newAddresser(&o, "", c.props)
			if a.Legacy() != c.legacy {
				t.Errorf("Legacy() = %v, want %v", a.Legacy(), c.legacy)
			}
			want := "openstack.org/om/rpc/anycast/openstack/t"
			if c.legacy {
				want = "unicast.openstack.t"
			}
			if got := a.Resolve(Target{Topic: "t"}, ServiceRPC); got != want {
				t.Errorf("address %q, want %q", got, want)
			}
		})
	}
}

// pyAddressing builds the same addresses with oslo's AddresserFactory.
const pyAddressing = `
import json, sys
from oslo_messaging.target import Target
from oslo_messaging._drivers.amqp1_driver import addressing
out = []
for c in json.load(sys.stdin):
    o = c["opts"]
    f = addressing.AddresserFactory(c["default_exchange"], c["mode"],
        legacy_server_prefix=o["server_request_prefix"],
        legacy_broadcast_prefix=o["broadcast_prefix"],
        legacy_group_prefix=o["group_request_prefix"],
        rpc_prefix=o["rpc_address_prefix"], notify_prefix=o["notify_address_prefix"],
        multicast=o["multicast_address"], unicast=o["unicast_address"], anycast=o["anycast_address"],
        notify_exchange=o["default_notification_exchange"], rpc_exchange=o["default_rpc_exchange"])
    props = c["props"]
    if props is not None and "product_bytes" in props:
        props = {"product": props["product_bytes"].encode()}
    a = f(props or {}, c["vhost"])
    t = c["target"]
    tg = Target(exchange=t["exchange"], topic=t["topic"], server=t["server"], fanout=t["fanout"])
    out.append({"legacy": isinstance(a, addressing.LegacyAddresser),
                "resolve": a.resolve(tg, c["service"]),
                "unicast": a.unicast_address(tg, c["service"]),
                "multicast": a.multicast_address(tg, c["service"]),
                "anycast": a.anycast_address(tg, c["service"])})
print(json.dumps(out))
`

func TestAddresserMatchesPython(t *testing.T) {
	type pyTarget struct {
		Exchange *string `json:"exchange"`
		Topic    *string `json:"topic"`
		Server   *string `json:"server"`
		Fanout   *bool   `json:"fanout"`
	}
	type pyCase struct {
		Mode            string         `json:"mode"`
		DefaultExchange *string        `json:"default_exchange"`
		Opts            map[string]any `json:"opts"`
		Props           map[string]any `json:"props"`
		Vhost           *string        `json:"vhost"`
		Target          pyTarget       `json:"target"`
		Service         Service        `json:"service"`
	}
	type pyResult struct {
		Legacy                               bool
		Resolve, Unicast, Multicast, Anycast string
	}
	// Python passes None for what Go leaves empty; the addresser treats both alike.
	orNil := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	type goCase struct {
		o      Options
		vhost  string
		props  map[string]any
		target Target
		svc    Service
	}
	var pyCases []pyCase
	var goCases []goCase
	add := func(o Options, vhost string, props map[string]any, tg Target, svc Service) {
		var pp map[string]any
		if props != nil {
			pp = map[string]any{}
			for k, v := range props {
				if b, ok := v.([]byte); ok {
					pp["product_bytes"] = string(b) // JSON has no bytes: rebuilt in Python
					continue
				}
				pp[k] = v // strings, symbols (str in Python) and nil (None)
			}
		}
		fanout := tg.Fanout
		pyCases = append(pyCases, pyCase{
			Mode: o.AddressingMode, DefaultExchange: orNil(o.ControlExchange),
			Opts: map[string]any{
				"server_request_prefix": o.ServerRequestPrefix, "broadcast_prefix": o.BroadcastPrefix,
				"group_request_prefix": o.GroupRequestPrefix, "rpc_address_prefix": o.RPCAddressPrefix,
				"notify_address_prefix": o.NotifyAddressPrefix, "multicast_address": o.MulticastAddress,
				"unicast_address": o.UnicastAddress, "anycast_address": o.AnycastAddress,
				"default_notification_exchange": orNil(o.DefaultNotificationExchange),
				"default_rpc_exchange":          orNil(o.DefaultRPCExchange),
			},
			Props: pp, Vhost: orNil(vhost), Service: svc,
			Target: pyTarget{orNil(tg.Exchange), orNil(tg.Topic), orNil(tg.Server), &fanout},
		})
		if !o.PseudoVhost {
			pyCases[len(pyCases)-1].Vhost = nil // the controller passes None
		}
		goCases = append(goCases, goCase{o, vhost, props, tg, svc})
	}
	for _, c := range wireDocCases() {
		o := DefaultOptions()
		if c.opts != nil {
			c.opts(&o)
		}
		o.AddressingMode = map[bool]string{true: "legacy", false: "routable"}[c.legacy]
		add(o, c.vhost, nil, c.target, c.service)
	}
	for _, c := range modeCases {
		o := DefaultOptions()
		o.AddressingMode = c.mode
		for _, tg := range []Target{{Topic: "t"}, {Topic: "t", Server: "s"}, {Topic: "t", Fanout: true}, {Exchange: "x", Topic: "t"}} {
			for _, svc := range []Service{ServiceRPC, ServiceNotify} {
				add(o, "vh", c.props, tg, svc)
			}
		}
	}
	var got []pyResult
	runOslo(t, pyAddressing, pyCases, &got)
	if len(got) != len(goCases) {
		t.Fatalf("python returned %d results for %d cases", len(got), len(goCases))
	}
	for i, c := range goCases {
		a := newAddresser(&c.o, c.vhost, c.props)
		mine := pyResult{a.Legacy(), a.Resolve(c.target, c.svc), a.Unicast(c.target, c.svc), a.Multicast(c.target, c.svc), a.Anycast(c.target, c.svc)}
		if mine != got[i] {
			t.Errorf("case %d (mode %q, props %v, vhost %q, %+v, service %d):\n go     %+v\n python %+v",
				i, c.o.AddressingMode, c.props, c.vhost, c.target, c.svc, mine, got[i])
		}
	}
	t.Logf("%d addresses compared with oslo.messaging", len(goCases))
}
