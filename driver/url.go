package driver

import (
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TransportURL is a parsed oslo.messaging transport URL:
//
//	amqp://[user[:pass]@]host[:port][,[user[:pass]@]host[:port]...][/vhost][?option=value&...]
//
// ParseTransportURL builds it with the rules of oslo_messaging.TransportURL.parse.
type TransportURL struct {
	// Scheme is the URL's scheme in lower case: "amqp", or "amqp+<anything>" (the
	// suffix is ignored, as oslo ignores it when choosing the driver).
	Scheme string
	// Hosts are the hosts to connect to, in the URL's order (the driver starts at a
	// random one and moves to the next on each reconnect). Never empty: a URL with no
	// host gives localhost:5672, as controller.py:Hosts does.
	Hosts []Host
	// VirtualHost is the URL-unquoted path without its leading "/"; "" means none.
	VirtualHost string
	// Query holds the query parameters (each value URL-unquoted, "+" read as a space,
	// empty values dropped as Python's parse_qs does), by name in the order given.
	// They override [oslo_messaging_amqp] options: see ApplyQuery.
	Query map[string][]string
}

// Host is one host of a transport URL, with its own credentials.
type Host struct {
	// Hostname is the host name or IP address, without brackets for IPv6. It is not
	// unquoted nor lower-cased (as in Python).
	Hostname string
	// Port is the port; 0 means none was given, and 5672 is dialled (even with TLS).
	Port int
	// Username and Password are the URL-unquoted credentials, used for SASL only.
	// Username may contain "@" (a realm); Password may contain ":".
	Username, Password string
}

// DefaultPort is the port dialled when a host of the transport URL names none.
const DefaultPort = 5672

// Address returns host:port for dialling, with DefaultPort when the URL gave no port
// and the host in brackets when it is an IPv6 address.
func (h Host) Address() string {
	port := h.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(h.Hostname, strconv.Itoa(port))
}

// ParseTransportURL parses s with the rules of oslo_messaging/transport.py
// TransportURL.parse on top of Python's urllib.parse.urlparse (Python 3.11 as in
// Debian bookworm):
//
//   - leading control characters and spaces are dropped, and tabs and newlines
//     removed anywhere (urlsplit);
//   - the scheme must be "amqp" or "amqp+<anything>", in any case;
//   - hosts are separated by ",", empty entries skipped; in each, the part before the
//     LAST "@" holds the credentials, split at the FIRST ":" into username and
//     password, both URL-unquoted;
//   - an IPv6 address goes in "[...]"; an empty port means none; a port is read as
//     Python's int() reads it and must be in 0..65535 (Python accepts any integer and
//     fails only when connecting);
//   - the virtual host is the URL-unquoted path without its leading "/", and ""
//     when the path is empty or "/";
//   - a "#fragment" is dropped.
//
// Errors are *ConfigError. Unlike Python, a netloc containing non-ASCII characters
// is not checked for characters that NFKC-normalise to URL delimiters.
func ParseTransportURL(s string) (*TransportURL, error) {
	// urlsplit: strip leading C0 controls and spaces, remove tabs and newlines.
	s = strings.TrimLeftFunc(s, func(r rune) bool { return r <= ' ' })
	s = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(s)

	scheme, rest, ok := splitScheme(s)
	if !ok {
		return nil, &ConfigError{Field: "transport_url", Reason: "no scheme specified"}
	}
	if base, _, _ := strings.Cut(scheme, "+"); base != "amqp" {
		return nil, &ConfigError{Field: "transport_url scheme", Value: scheme,
			Reason: `not an AMQP 1.0 transport URL (the scheme must be "amqp" or "amqp+...")`}
	}
	var netloc string
	if strings.HasPrefix(rest, "//") {
		end := len(rest)
		if i := strings.IndexAny(rest[2:], "/?#"); i >= 0 {
			end = 2 + i
		}
		netloc, rest = rest[2:end], rest[end:]
		if err := checkNetlocBrackets(netloc); err != nil {
			return nil, err
		}
	}
	rest, _, _ = strings.Cut(rest, "#")
	path, query, _ := strings.Cut(rest, "?")

	u := &TransportURL{Scheme: scheme}
	if q := parseQuery(query); len(q) > 0 {
		u.Query = q
	}
	if strings.HasPrefix(path, "/") {
		u.VirtualHost = pyUnquote(path[1:])
	}
	for _, entry := range strings.Split(netloc, ",") {
		if entry == "" {
			continue
		}
		h, err := parseHost(entry)
		if err != nil {
			return nil, err
		}
		u.Hosts = append(u.Hosts, h)
	}
	if len(u.Hosts) == 0 {
		u.Hosts = []Host{{Hostname: "localhost", Port: DefaultPort}}
	}
	return u, nil
}

// splitScheme splits "scheme:rest" as urlsplit does: the scheme starts with an ASCII
// letter and holds only letters, digits, "+", "-" and ".".
func splitScheme(s string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || !isASCIILetter(s[0]) {
		return "", s, false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		if !isASCIILetter(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return "", s, false
		}
	}
	return strings.ToLower(s[:i]), s[i+1:], true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

var ipvFuture = regexp.MustCompile(`\Av[a-fA-F0-9]+\..+\z`)

// checkNetlocBrackets applies urlsplit's checks of "[...]" to the whole netloc
// (all hosts at once, as Python does): brackets must pair up, and the part after the
// last "@" must begin with the bracket and hold an IPv6 address (or IPvFuture) in it,
// followed by nothing or ":...".
func checkNetlocBrackets(netloc string) error {
	open, closing := strings.Contains(netloc, "["), strings.Contains(netloc, "]")
	if open != closing {
		return ipv6Error(netloc, "unbalanced brackets")
	}
	if !open {
		return nil
	}
	hostPort := netloc[strings.LastIndexByte(netloc, '@')+1:]
	before, bracketed, found := strings.Cut(hostPort, "[")
	if !found {
		// The bracket is in the credentials: Python then checks the text before the
		// first ":" as a bracketed host, which cannot hold a bracket-free address.
		host, _, _ := strings.Cut(hostPort, ":")
		return checkBracketedHost(host)
	}
	if before != "" {
		return ipv6Error(hostPort, "text before '[' (Python checks only the host after the last '@', so an IPv6 host must come first)")
	}
	host, port, _ := strings.Cut(bracketed, "]")
	if port != "" && !strings.HasPrefix(port, ":") {
		return ipv6Error(hostPort, "text between ']' and ':'")
	}
	return checkBracketedHost(host)
}

func checkBracketedHost(host string) error {
	if strings.HasPrefix(host, "v") {
		if !ipvFuture.MatchString(host) {
			return ipv6Error(host, "invalid IPvFuture address")
		}
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ipv6Error(host, "not an IP address")
	}
	if a.Is4() {
		return ipv6Error(host, "an IPv4 address cannot be in brackets")
	}
	return nil
}

func ipv6Error(value, why string) error {
	return &ConfigError{Field: "transport_url host", Value: value, Reason: "invalid IPv6 URL: " + why}
}

// parseHost parses one comma-separated host entry as TransportURL.parse does.
func parseHost(entry string) (Host, error) {
	var h Host
	hostname := entry
	var port string
	if i := strings.LastIndexByte(entry, '@'); i >= 0 {
		creds := entry[:i]
		hostname = entry[i+1:]
		user, pass, hasPass := strings.Cut(creds, ":")
		h.Username = pyUnquote(user)
		if hasPass {
			h.Password = pyUnquote(pass)
		}
	}
	switch {
	case hostname == "":
	case hostname[0] == '[':
		end := strings.IndexByte(hostname, ']')
		if end < 0 {
			return h, ipv6Error(hostname, "no closing ']'")
		}
		if _, p, ok := strings.Cut(hostname[end:], ":"); ok {
			port = p
		}
		hostname = hostname[1:end]
	default:
		hostname, port, _ = strings.Cut(hostname, ":")
	}
	h.Hostname = hostname
	if port != "" {
		n, reason := parsePyInt(port)
		if reason == errEmptyInt {
			reason = "not an integer"
		}
		if reason == "" && (n < 0 || n > 65535) {
			reason = "out of range 0..65535"
		}
		if reason != "" {
			return h, &ConfigError{Field: "transport_url port", Value: port, Reason: "bad port: " + reason}
		}
		h.Port = int(n)
	}
	return h, nil
}

// parseQuery parses a query string as Python's parse_qs with its defaults: fields
// split at "&", fields without "=" or with an empty value dropped, "+" read as a
// space, then URL-unquoted.
func parseQuery(q string) map[string][]string {
	out := map[string][]string{}
	for _, field := range strings.Split(q, "&") {
		name, value, ok := strings.Cut(field, "=")
		if !ok || value == "" {
			continue
		}
		name = pyUnquote(strings.ReplaceAll(name, "+", " "))
		value = pyUnquote(strings.ReplaceAll(value, "+", " "))
		out[name] = append(out[name], value)
	}
	return out
}

// ApplyQuery sets the options named by the query parameters, as
// common.py:ConfigOptsProxy does: every parameter must name an [oslo_messaging_amqp]
// option (anything else, [DEFAULT] options included, is a *ConfigError "unknown
// option in the transport URL query", as Python raises when the driver is built),
// repeated parameters are joined with "," and the value is converted as Options.Set
// does (so pre_settled=rpc-call,notify or pre_settled=rpc-call&pre_settled=notify
// both give two kinds; Python 14.0.3 mishandles both, see the package tests).
// Parameters are applied in name order.
func (u *TransportURL) ApplyQuery(o *Options) error {
	names := make([]string, 0, len(u.Query))
	for name := range u.Query {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value := strings.Join(u.Query[name], ",")
		if s := lookupOption(name); s == nil || s.group != groupAMQP {
			return &ConfigError{Field: name, Value: value, Reason: "unknown option in the transport URL query (not an [oslo_messaging_amqp] option)"}
		}
		if err := o.Set(name, value); err != nil {
			if ce, ok := err.(*ConfigError); ok {
				ce.Reason += " (from the transport URL query)"
			}
			return err
		}
	}
	return nil
}

// String returns the URL in the form of TransportURL.__str__: credentials and
// virtual host quoted, "/" after the hosts, query parameters in name order. It
// contains the passwords: use Redacted for logs. ParseTransportURL(u.String())
// gives u back.
func (u *TransportURL) String() string { return u.format(false) }

// Redacted returns String with every password, and the ssl_key_password query
// parameter, replaced by "***".
func (u *TransportURL) Redacted() string { return u.format(true) }

func (u *TransportURL) format(redact bool) string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	for i, h := range u.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		if h.Username != "" || h.Password != "" {
			b.WriteString(pyQuote(h.Username, ""))
			if h.Password != "" {
				b.WriteByte(':')
				if redact {
					b.WriteString("***")
				} else {
					b.WriteString(pyQuote(h.Password, ""))
				}
			}
			b.WriteByte('@')
		}
		if strings.Contains(h.Hostname, ":") {
			b.WriteString("[" + h.Hostname + "]")
		} else {
			b.WriteString(h.Hostname)
		}
		if h.Port != 0 {
			b.WriteString(":" + strconv.Itoa(h.Port))
		}
	}
	b.WriteByte('/')
	b.WriteString(pyQuote(u.VirtualHost, "/"))
	names := make([]string, 0, len(u.Query))
	for name := range u.Query {
		names = append(names, name)
	}
	slices.Sort(names)
	sep := "?"
	for _, name := range names {
		for _, v := range u.Query[name] {
			v = pyQuotePlus(v)
			if redact && name == "ssl_key_password" {
				v = "***"
			}
			b.WriteString(sep + pyQuotePlus(name) + "=" + v)
			sep = "&"
		}
	}
	return b.String()
}

// pyQuote percent-encodes s as Python's urllib.parse.quote(s, safe): letters, digits,
// "_.-~" and the characters of safe stay, every other byte of the UTF-8 text becomes
// %XX.
func pyQuote(s, safe string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isASCIILetter(c) || (c >= '0' && c <= '9') || strings.IndexByte("_.-~", c) >= 0 ||
			(c < utf8.RuneSelf && strings.IndexByte(safe, c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// pyQuotePlus is Python's quote_plus(s): quote with spaces as "+".
func pyQuotePlus(s string) string {
	return strings.ReplaceAll(pyQuote(s, " "), " ", "+")
}

// pyUnquote decodes %XX escapes as Python's urllib.parse.unquote does: malformed
// escapes stay as they are, and the decoded bytes are read as UTF-8 with each
// invalid sequence replaced by one U+FFFD (Python's "replace" error handler).
func pyUnquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var out strings.Builder
	var buf []byte
	flush := func() {
		out.WriteString(decodeUTF8Replace(buf))
		buf = buf[:0]
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Python decodes each run of ASCII characters on its own; other
			// characters are copied.
			flush()
			_, n := utf8.DecodeRuneInString(s[i:])
			out.WriteString(s[i : i+n])
			i += n
			continue
		}
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			buf = append(buf, byte(v))
			i += 3
			continue
		}
		buf = append(buf, c)
		i++
	}
	flush()
	return out.String()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

// decodeUTF8Replace decodes b as UTF-8, replacing each maximal invalid subpart with
// U+FFFD as CPython's decoder does with errors="replace".
func decodeUTF8Replace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			out.WriteRune(r)
			b = b[n:]
			continue
		}
		out.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return out.String()
}

// maximalSubpart returns the length (at least 1) of the longest prefix of b that
// starts a well-formed UTF-8 sequence, per the Unicode standard's table 3-7.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}
