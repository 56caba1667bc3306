package fakerouter

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Options configure a Router. A nil *Options means all defaults.
type Options struct {
	// Addr is the TCP address to listen on. Default: the first normal listener of
	// ConfigFile, else "127.0.0.1:0" (a free loopback port).
	Addr string
	// ID is the router's id: its container-id and part of its dynamic addresses.
	// Default: "amqp1kit-router" (mesh routers get "-1", "-2", ...).
	ID string
	// Version is announced in the open frame's version property. Default: "1.19.0",
	// the last qdrouterd release.
	Version string
	// Addresses is the address table. Default: the address sections of ConfigFile
	// when one is given (none means none, as for qdrouterd: every address then gets
	// DefaultDistribution, so a file without the guide's broadcast section breaks
	// oslo fanout here as it would there), else the deployment guide's table
	// (DefaultAddressRules). An empty non-nil slice means no rules.
	Addresses []AddressRule
	// DefaultDistribution applies to addresses no rule matches. Default: Balanced,
	// as qdrouterd.
	DefaultDistribution Distribution
	// LinkRoutes pass the attaches of matching addresses (Direction "in": client
	// senders, "out": client receivers) to a route container (a broker) on the
	// Connector the route names, link by link: the client's link becomes the broker's,
	// with the broker's attach answer, credit, transfers, dispositions and detach
	// relayed as qdrouterd relays them. While that connector is not connected, such an
	// attach is refused with qd:no-route-to-dest, as by qdrouterd. Default: the
	// linkRoute sections of ConfigFile.
	LinkRoutes []LinkRoute
	// Connectors are the router's outgoing connections (qdrouterd's connector
	// sections), opened at Start and kept open: a connector that cannot connect, or
	// loses its connection, tries again as qdrouterd 1.19 does (at once the first
	// time, then 5 s after a failed attempt, 2 s after an open connection is lost).
	// A connector with Role route-container carries the LinkRoutes that name it.
	// Default: the connector sections of ConfigFile.
	Connectors []Connector
	// MulticastDropsWithoutConsumer gives the behaviour the deployment guide
	// describes, of qdrouterd before 1.10: multicast senders get credit whether or not
	// the address has a consumer, and messages nobody consumes are dropped. Default:
	// false, as qdrouterd 1.10 and later (1.19 included): a multicast sender, like any
	// other, gets credit only while the address has a consumer.
	MulticastDropsWithoutConsumer bool
	// LinkCapacity is the most credit a sender link is granted. Default: 250, as
	// qdrouterd's linkCapacity.
	LinkCapacity uint32
	// MaxFrameSize announced to clients. Default: 16384, as qdrouterd's listeners.
	MaxFrameSize uint32
	// IdleTimeout announced to clients: a client that sends nothing for this long is
	// closed. Default: 16s, as qdrouterd's idleTimeoutSeconds. Negative disables it.
	IdleTimeout time.Duration
	// MaxMessageSize bounds a message the router accepts. Default: 64 MiB, not announced (the real one announces no limit).
	MaxMessageSize int64
	// ConnOutputLimit is how many bytes the router queues for one client connection
	// before it stops sending it messages: a client that does not read its socket
	// then costs that much, the messages wait on its links' undelivered lists
	// (unsettled senders run out of credit; pre-settled messages beyond the link
	// capacity are dropped, as by qdrouterd), and they go on once the client reads.
	// Default: 512 KiB.
	ConnOutputLimit int

	// TLS, if set, lets clients start TLS from the first byte or through the AMQP
	// TLS header.
	TLS *tls.Config
	// RequireTLS refuses clients that do not start TLS.
	RequireTLS bool
	// Users enables SASL PLAIN against this table of user name to password.
	Users map[string]string
	// DenyAnonymous refuses SASL ANONYMOUS and clients that skip SASL.
	DenyAnonymous bool
	// AllowExternal offers SASL EXTERNAL to TLS clients with a verified certificate.
	AllowExternal bool

	// ConfigFile is a qdrouterd.conf whose listener, address and linkRoute sections
	// apply where the fields above are not set.
	ConfigFile string

	// Logger receives connection events and errors. Default: discard.
	Logger *slog.Logger
	// Trace, if set, receives every frame the router sends and receives.
	Trace func(Frame)
}

func (o *Options) resolve() (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	if v.ConfigFile != "" {
		cfg, err := LoadConfig(v.ConfigFile)
		if err != nil {
			return v, err
		}
		if v.Addr == "" {
			if v.Addr, err = cfg.ListenAddress(); err != nil {
				return v, fmt.Errorf("%s: %w", v.ConfigFile, err)
			}
		}
		if v.Addresses == nil {
			v.Addresses = cfg.Addresses
			if v.Addresses == nil {
				v.Addresses = []AddressRule{} // the file has none: qdrouterd's defaults
			}
		}
		if v.LinkRoutes == nil {
			v.LinkRoutes = cfg.LinkRoutes
		}
		if v.Connectors == nil {
			v.Connectors = cfg.Connectors
		}
		if v.ID == "" {
			v.ID = cfg.Router["id"]
		}
	}
	if v.Addr == "" {
		v.Addr = "127.0.0.1:0"
	}
	if v.ID == "" {
		v.ID = "amqp1kit-router"
	}
	if v.Version == "" {
		v.Version = "1.19.0"
	}
	if v.Addresses == nil {
		v.Addresses = DefaultAddressRules()
	}
	if v.DefaultDistribution == "" {
		v.DefaultDistribution = Balanced
	}
	if !v.DefaultDistribution.valid() {
		return v, fmt.Errorf("fakerouter: DefaultDistribution %q is not balanced, closest, multicast or unavailable", v.DefaultDistribution)
	}
	for i, lr := range v.LinkRoutes {
		if (lr.Prefix == "") == (lr.Pattern == "") {
			return v, fmt.Errorf("fakerouter: link route %d: exactly one of prefix and pattern must be set", i+1)
		}
	}
	if err := checkConnectors(v.Connectors, v.LinkRoutes); err != nil {
		return v, err
	}
	if v.LinkCapacity == 0 {
		v.LinkCapacity = 250
	}
	if v.MaxFrameSize == 0 {
		v.MaxFrameSize = 16384
	}
	switch {
	case v.IdleTimeout == 0:
		v.IdleTimeout = 16 * time.Second
	case v.IdleTimeout < 0:
		v.IdleTimeout = 0
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	return v, nil
}
