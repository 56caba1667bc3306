package driver

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Options holds every [oslo_messaging_amqp] option, with the Python driver's defaults, plus
// the [DEFAULT] options the driver uses.
//
// The names, defaults and minimums are those of oslo.messaging 14.0.3
// (_drivers/amqp1_driver/opts.py). Options that Python holds as whole seconds are
// time.Duration here; Set and LoadConfig read them as seconds. DefaultOptions returns
// the defaults; the zero Options is not usable.
type Options struct {
	// ContainerName is the AMQP container-id (container_name). "" makes the driver
	// generate one. Default: "".
	ContainerName string
	// IdleTimeout is idle_timeout: the connection fails when nothing arrives for this
	// long, and the open frame advertises half of it. 0 turns it off. Default: 0.
	IdleTimeout time.Duration
	// Trace is trace: dump AMQP frames (debugging). Default: false.
	Trace bool

	// SSL is ssl: connect with TLS, trusting the system CAs unless SSLCAFile is set.
	// Setting SSLCAFile or SSLCertFile also turns TLS on. Default: false.
	SSL bool
	// SSLCAFile is ssl_ca_file: the PEM file of CAs that verify the server. Default: "".
	SSLCAFile string
	// SSLCertFile is ssl_cert_file: the client certificate (PEM). Default: "".
	SSLCertFile string
	// SSLKeyFile is ssl_key_file: the client certificate's private key (PEM). Default: "".
	SSLKeyFile string
	// SSLKeyPassword is ssl_key_password: the password of an encrypted SSLKeyFile.
	// Default: "".
	SSLKeyPassword string
	// SSLVerifyVhost is ssl_verify_vhost: check the server certificate against the
	// URL's virtual host instead of the host name. Default: false.
	SSLVerifyVhost bool

	// SASLMechanisms is sasl_mechanisms: the space-separated mechanisms the client may
	// use; setting it turns SASL on. Default: "".
	SASLMechanisms string
	// SASLConfigDir is sasl_config_dir (Cyrus SASL only); setting it turns SASL on.
	// Default: "".
	SASLConfigDir string
	// SASLConfigName is sasl_config_name (Cyrus SASL only); setting it turns SASL on.
	// Default: "".
	SASLConfigName string
	// SASLDefaultRealm is sasl_default_realm: appended as "@realm" to a non-empty
	// username that has no "@" (controller.py:Hosts.__init__). Default: "".
	SASLDefaultRealm string

	// ConnectionRetryInterval is connection_retry_interval: the first reconnect delay,
	// and the value the delay goes back to once a connection opens. Minimum 1s.
	// Default: 1s.
	ConnectionRetryInterval time.Duration
	// ConnectionRetryBackoff is connection_retry_backoff: after each failed attempt the
	// delay is MULTIPLIED by this (the Python help text says "increase by", the code
	// multiplies), up to ConnectionRetryIntervalMax; 0 makes every retry after the
	// first immediate. Minimum 0. Default: 2.
	ConnectionRetryBackoff int
	// ConnectionRetryIntervalMax is connection_retry_interval_max: the longest reconnect
	// delay. Minimum 1s. Default: 30s.
	ConnectionRetryIntervalMax time.Duration
	// LinkRetryDelay is link_retry_delay: the pause before re-attaching a link the peer
	// detached and before resending a released or modified message. Minimum 1s.
	// Default: 10s.
	LinkRetryDelay time.Duration
	// DefaultReplyRetry is default_reply_retry: how many times an RPC reply is resent
	// after a recoverable failure (-1: no limit). Minimum -1. Default: 0.
	DefaultReplyRetry int
	// DefaultReplyTimeout is default_reply_timeout: the deadline of an RPC reply send.
	// Minimum 5s. Default: 30s.
	DefaultReplyTimeout time.Duration
	// DefaultSendTimeout is default_send_timeout: the deadline of a call or cast when
	// the caller gave no timeout. Minimum 5s. Default: 30s.
	DefaultSendTimeout time.Duration
	// DefaultNotifyTimeout is default_notify_timeout: the deadline of a notification
	// send. Minimum 5s. Default: 30s.
	DefaultNotifyTimeout time.Duration
	// DefaultSenderLinkTimeout is default_sender_link_timeout: the period of the purge
	// of idle sender links. Minimum 1s. Default: 600s.
	DefaultSenderLinkTimeout time.Duration

	// AddressingMode is addressing_mode: "legacy", "routable", or "dynamic" (legacy
	// when the peer's open frame says product "qpid-cpp" or names no product,
	// routable otherwise; see Transport.Addresser). Any other string, in any case,
	// means routable, as in Python. Default: "dynamic".
	AddressingMode string
	// PseudoVhost is pseudo_vhost: put the URL's virtual host into every address
	// (true) or send it as the open frame's hostname (false). Default: true.
	PseudoVhost bool
	// ServerRequestPrefix is server_request_prefix, the legacy prefix of addresses of
	// one server. Default: "exclusive".
	ServerRequestPrefix string
	// BroadcastPrefix is broadcast_prefix, the legacy fanout prefix. Default:
	// "broadcast".
	BroadcastPrefix string
	// GroupRequestPrefix is group_request_prefix, the legacy prefix of addresses shared
	// by a group of servers (RPC topics and notifications). Default: "unicast".
	GroupRequestPrefix string
	// RPCAddressPrefix is rpc_address_prefix, the routable RPC prefix. Default:
	// "openstack.org/om/rpc".
	RPCAddressPrefix string
	// NotifyAddressPrefix is notify_address_prefix, the routable notification prefix.
	// Default: "openstack.org/om/notify".
	NotifyAddressPrefix string
	// MulticastAddress is multicast_address, the routable fanout tag. Default:
	// "multicast".
	MulticastAddress string
	// UnicastAddress is unicast_address, the routable one-server tag. Default:
	// "unicast".
	UnicastAddress string
	// AnycastAddress is anycast_address, the routable shared-consumer tag. Default:
	// "anycast".
	AnycastAddress string
	// DefaultNotificationExchange is default_notification_exchange, the exchange of
	// routable notification addresses ("" falls back to ControlExchange, then
	// "openstack"; ignored in legacy mode). Default: "".
	DefaultNotificationExchange string
	// DefaultRPCExchange is default_rpc_exchange, the exchange of routable RPC
	// addresses ("" falls back to ControlExchange, then "openstack"; ignored in
	// legacy mode). Default: "".
	DefaultRPCExchange string

	// ReplyLinkCredit is reply_link_credit: credit of the RPC reply link. Minimum 1.
	// Default: 200.
	ReplyLinkCredit uint32
	// RPCServerCredit is rpc_server_credit: credit of each RPC server link. Minimum 1.
	// Default: 100.
	RPCServerCredit uint32
	// NotifyServerCredit is notify_server_credit: credit of each notification listener
	// link. Minimum 1. Default: 100.
	NotifyServerCredit uint32

	// PreSettled is pre_settled: the kinds of message sent pre-settled, among
	// "rpc-call", "rpc-cast", "rpc-reply" and "notify" (matched in lower case; other
	// values are ignored, Python only warns); a call-monitor heartbeat is always
	// pre-settled. Default: ["rpc-cast", "rpc-reply"].
	PreSettled []string

	// ControlExchange is [DEFAULT] control_exchange, the exchange of targets that name
	// none. "" leaves the exchange out of legacy addresses (routable ones then use
	// "openstack"). It cannot be set from a transport URL. Default: "openstack".
	ControlExchange string
	// RPCResponseTimeout is [DEFAULT] rpc_response_timeout, the timeout of a call whose
	// caller gives none (it becomes the request's ttl). It cannot be set from a
	// transport URL. Default: 60s.
	RPCResponseTimeout time.Duration
}

// DefaultOptions returns the options with the Python driver's defaults.
func DefaultOptions() Options {
	return Options{
		ConnectionRetryInterval:    1 * time.Second,
		ConnectionRetryBackoff:     2,
		ConnectionRetryIntervalMax: 30 * time.Second,
		LinkRetryDelay:             10 * time.Second,
		DefaultReplyRetry:          0,
		DefaultReplyTimeout:        30 * time.Second,
		DefaultSendTimeout:         30 * time.Second,
		DefaultNotifyTimeout:       30 * time.Second,
		DefaultSenderLinkTimeout:   600 * time.Second,
		AddressingMode:             "dynamic",
		PseudoVhost:                true,
		ServerRequestPrefix:        "exclusive",
		BroadcastPrefix:            "broadcast",
		GroupRequestPrefix:         "unicast",
		RPCAddressPrefix:           "openstack.org/om/rpc",
		NotifyAddressPrefix:        "openstack.org/om/notify",
		MulticastAddress:           "multicast",
		UnicastAddress:             "unicast",
		AnycastAddress:             "anycast",
		ReplyLinkCredit:            200,
		RPCServerCredit:            100,
		NotifyServerCredit:         100,
		PreSettled:                 []string{"rpc-cast", "rpc-reply"},
		ControlExchange:            "openstack",
		RPCResponseTimeout:         60 * time.Second,
	}
}

// Validate checks the minimums of opts.py, returning a *ConfigError naming the first
// option out of range. Integers and credits must reach Python's minimum exactly.
// Durations with a minimum must be positive: Python holds them as whole seconds, and
// its minimums (1s, or 5s for the default_*_timeout options) are enforced by Set and
// LoadConfig on values read as seconds, but a Go caller may set sub-second values
// (tests, fast failover). Options without a minimum in Python (idle_timeout,
// rpc_response_timeout, the strings) are not checked.
func (o *Options) Validate() error {
	for i := range optionTable {
		s := &optionTable[i]
		if !s.hasMin {
			continue
		}
		var bad bool
		var shown string
		switch p := s.field(o).(type) {
		case *int:
			bad, shown = int64(*p) < s.min, strconv.Itoa(*p)
		case *time.Duration:
			bad, shown = *p <= 0, p.String()
		case *uint32:
			bad, shown = int64(*p) < s.min, strconv.FormatUint(uint64(*p), 10)
		}
		if bad {
			reason := s.minReason()
			if s.kind == kindSeconds {
				reason = "should be positive"
			}
			return &ConfigError{Field: s.name, Value: shown, Reason: reason}
		}
	}
	return nil
}

// Set sets one option by its oslo name ("rpc_server_credit", "ssl"; the [DEFAULT]
// options "control_exchange" and "rpc_response_timeout" too), converting value as
// oslo.config does: booleans accept true/false, 1/0, yes/no, on/off in any case;
// integers accept what Python's int() does (surrounding spaces, a sign, "_" between
// digits) and are checked against the option's minimum; durations are whole seconds;
// pre_settled takes a comma-separated list that replaces the current one. An unknown
// name gives a *ConfigError "unknown option", a bad value a *ConfigError naming the
// option and the value.
func (o *Options) Set(name, value string) error {
	s := lookupOption(name)
	if s == nil {
		return &ConfigError{Field: name, Value: value, Reason: "unknown option"}
	}
	if s.kind == kindMulti {
		var list []string
		for _, v := range strings.Split(value, ",") {
			if v = strings.TrimSpace(v); v != "" {
				list = append(list, v)
			}
		}
		*s.field(o).(*[]string) = list
		return nil
	}
	return s.setOne(o, value)
}

// preSettledFor reports whether messages of kind ("rpc-call", "rpc-cast", "rpc-reply"
// or "notify") are sent pre-settled, matching PreSettled in lower case as
// impl_amqp1.py:ProtonDriver.__init__ does.
func (o *Options) preSettledFor(kind string) bool {
	kind = strings.ToLower(kind)
	for _, p := range o.PreSettled {
		if strings.ToLower(p) == kind {
			return true
		}
	}
	return false
}

// saslUser returns the SASL user name for h: h.Username, with "@" and
// SASLDefaultRealm appended when a realm is set and the username is not empty and
// has no "@" (controller.py:Hosts.__init__).
func (o *Options) saslUser(h Host) string {
	if o.SASLDefaultRealm != "" && h.Username != "" && !strings.Contains(h.Username, "@") {
		return h.Username + "@" + o.SASLDefaultRealm
	}
	return h.Username
}

// The option registry. Set, Validate, ApplyQuery and LoadConfig all work from it, so
// an option added here is handled everywhere.

const (
	groupDefault = "DEFAULT"
	groupAMQP    = "oslo_messaging_amqp"
	groupAMQP1   = "amqp1" // deprecated group of some [oslo_messaging_amqp] options
)

type optKind int

const (
	kindString  optKind = iota // StrOpt
	kindBool                   // BoolOpt
	kindInt                    // IntOpt held as int
	kindSeconds                // IntOpt of seconds held as time.Duration
	kindCredit                 // IntOpt held as uint32
	kindMulti                  // MultiStrOpt held as []string
)

type optSpec struct {
	name   string
	group  string // groupAMQP or groupDefault
	amqp1  bool   // also read from [amqp1] (deprecated_group='amqp1' in opts.py)
	kind   optKind
	hasMin bool
	min    int64
	field  func(o *Options) any // a pointer to the field
}

func (s *optSpec) minReason() string {
	return fmt.Sprintf("should be greater than or equal to %d", s.min)
}

// optionTable lists the options in the order of opts.py, then the [DEFAULT] ones.
var optionTable = []optSpec{
	{name: "container_name", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.ContainerName }},
	{name: "idle_timeout", group: groupAMQP, amqp1: true, kind: kindSeconds, field: func(o *Options) any { return &o.IdleTimeout }},
	{name: "trace", group: groupAMQP, amqp1: true, kind: kindBool, field: func(o *Options) any { return &o.Trace }},
	{name: "ssl", group: groupAMQP, kind: kindBool, field: func(o *Options) any { return &o.SSL }},
	{name: "ssl_ca_file", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SSLCAFile }},
	{name: "ssl_cert_file", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SSLCertFile }},
	{name: "ssl_key_file", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SSLKeyFile }},
	{name: "ssl_key_password", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SSLKeyPassword }},
	{name: "ssl_verify_vhost", group: groupAMQP, kind: kindBool, field: func(o *Options) any { return &o.SSLVerifyVhost }},
	{name: "sasl_mechanisms", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SASLMechanisms }},
	{name: "sasl_config_dir", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SASLConfigDir }},
	{name: "sasl_config_name", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.SASLConfigName }},
	{name: "sasl_default_realm", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.SASLDefaultRealm }},
	{name: "connection_retry_interval", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 1, field: func(o *Options) any { return &o.ConnectionRetryInterval }},
	{name: "connection_retry_backoff", group: groupAMQP, kind: kindInt, hasMin: true, min: 0, field: func(o *Options) any { return &o.ConnectionRetryBackoff }},
	{name: "connection_retry_interval_max", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 1, field: func(o *Options) any { return &o.ConnectionRetryIntervalMax }},
	{name: "link_retry_delay", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 1, field: func(o *Options) any { return &o.LinkRetryDelay }},
	{name: "default_reply_retry", group: groupAMQP, kind: kindInt, hasMin: true, min: -1, field: func(o *Options) any { return &o.DefaultReplyRetry }},
	{name: "default_reply_timeout", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 5, field: func(o *Options) any { return &o.DefaultReplyTimeout }},
	{name: "default_send_timeout", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 5, field: func(o *Options) any { return &o.DefaultSendTimeout }},
	{name: "default_notify_timeout", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 5, field: func(o *Options) any { return &o.DefaultNotifyTimeout }},
	{name: "default_sender_link_timeout", group: groupAMQP, kind: kindSeconds, hasMin: true, min: 1, field: func(o *Options) any { return &o.DefaultSenderLinkTimeout }},
	{name: "addressing_mode", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.AddressingMode }},
	{name: "pseudo_vhost", group: groupAMQP, kind: kindBool, field: func(o *Options) any { return &o.PseudoVhost }},
	{name: "server_request_prefix", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.ServerRequestPrefix }},
	{name: "broadcast_prefix", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.BroadcastPrefix }},
	{name: "group_request_prefix", group: groupAMQP, amqp1: true, kind: kindString, field: func(o *Options) any { return &o.GroupRequestPrefix }},
	{name: "rpc_address_prefix", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.RPCAddressPrefix }},
	{name: "notify_address_prefix", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.NotifyAddressPrefix }},
	{name: "multicast_address", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.MulticastAddress }},
	{name: "unicast_address", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.UnicastAddress }},
	{name: "anycast_address", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.AnycastAddress }},
	{name: "default_notification_exchange", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.DefaultNotificationExchange }},
	{name: "default_rpc_exchange", group: groupAMQP, kind: kindString, field: func(o *Options) any { return &o.DefaultRPCExchange }},
	{name: "reply_link_credit", group: groupAMQP, kind: kindCredit, hasMin: true, min: 1, field: func(o *Options) any { return &o.ReplyLinkCredit }},
	{name: "rpc_server_credit", group: groupAMQP, kind: kindCredit, hasMin: true, min: 1, field: func(o *Options) any { return &o.RPCServerCredit }},
	{name: "notify_server_credit", group: groupAMQP, kind: kindCredit, hasMin: true, min: 1, field: func(o *Options) any { return &o.NotifyServerCredit }},
	{name: "pre_settled", group: groupAMQP, kind: kindMulti, field: func(o *Options) any { return &o.PreSettled }},
	// [DEFAULT]
	{name: "control_exchange", group: groupDefault, kind: kindString, field: func(o *Options) any { return &o.ControlExchange }},
	{name: "rpc_response_timeout", group: groupDefault, kind: kindSeconds, field: func(o *Options) any { return &o.RPCResponseTimeout }},
}

func lookupOption(name string) *optSpec {
	for i := range optionTable {
		if optionTable[i].name == name {
			return &optionTable[i]
		}
	}
	return nil
}

// setOne converts one value as the oslo.config type of s does and stores it. For a
// multi-valued option it appends.
func (s *optSpec) setOne(o *Options, value string) error {
	bad := func(reason string) error { return &ConfigError{Field: s.name, Value: value, Reason: reason} }
	switch p := s.field(o).(type) {
	case *string:
		*p = value
	case *[]string:
		*p = append(*p, value)
	case *bool:
		b, ok := parsePyBool(value)
		if !ok {
			return bad("not a boolean (want true/false, yes/no, on/off or 1/0)")
		}
		*p = b
	default:
		n, reason := parsePyInt(value)
		if reason != "" {
			return bad(reason)
		}
		if s.hasMin && n < s.min {
			return bad(s.minReason())
		}
		switch p := p.(type) {
		case *int:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return bad("out of range")
			}
			*p = int(n)
		case *uint32:
			if n < 0 || n > math.MaxUint32 {
				return bad("out of range")
			}
			*p = uint32(n)
		case *time.Duration:
			if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
				return bad("out of range")
			}
			*p = time.Duration(n) * time.Second
		}
	}
	return nil
}

// pyValue renders the option's current value as Python's str() of the oslo value
// does, for "$option" substitution in configuration files.
func (s *optSpec) pyValue(o *Options) string {
	switch p := s.field(o).(type) {
	case *string:
		return *p
	case *bool:
		if *p {
			return "True"
		}
		return "False"
	case *int:
		return strconv.Itoa(*p)
	case *uint32:
		return strconv.FormatUint(uint64(*p), 10)
	case *time.Duration:
		return strconv.FormatInt(int64(*p/time.Second), 10)
	case *[]string:
		return pyListRepr(*p)
	}
	return ""
}

// parsePyBool converts as oslo_config.types.Boolean: case-insensitive, no trimming.
func parsePyBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "true", "1", "on", "yes":
		return true, true
	case "false", "0", "off", "no":
		return false, true
	}
	return false, false
}

// errEmptyInt is the reason given for an empty integer: oslo_config.types.Integer
// turns "" into None, which no option of the driver can use.
const errEmptyInt = "empty value (oslo.config would read it as None)"

// parsePyInt converts as Python's int(s) for ASCII input: surrounding white space, an
// optional sign, decimal digits with single underscores between them. It returns a
// reason instead of an error so that callers can wrap it.
func parsePyInt(v string) (int64, string) {
	s := strings.TrimFunc(v, isPySpace)
	if s == "" {
		return 0, errEmptyInt
	}
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits := make([]byte, 0, len(s))
	prevDigit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			prevDigit = true
		case c == '_' && prevDigit && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			prevDigit = false
		default:
			return 0, "not an integer"
		}
	}
	if len(digits) == 0 {
		return 0, "not an integer"
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, "out of range"
	}
	if neg {
		return -int64(n), ""
	}
	return int64(n), ""
}

// isPySpace reports whether Python's str.isspace() holds for r.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pyListRepr renders a list of strings as Python's repr() does for simple strings.
func pyListRepr(list []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		q := byte('\'')
		if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
			q = '"'
		}
		b.WriteByte(q)
		for _, r := range s {
			switch {
			case r == '\\' || r == rune(q):
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\t':
				b.WriteString(`\t`)
			case r == '\r':
				b.WriteString(`\r`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte(q)
	}
	b.WriteByte(']')
	return b.String()
}
