package fakerouter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is what the fake router takes from a qdrouterd.conf file: its router,
// listener, connector, address and linkRoute sections. Other sections (sslProfile,
// log, policy, ...) are kept in Ignored so a caller can see what had no effect.
type Config struct {
	Router     map[string]string
	Listeners  []Listener
	Connectors []Connector
	Addresses  []AddressRule
	LinkRoutes []LinkRoute
	Ignored    []string
}

// Listener is a qdrouterd listener section.
type Listener struct {
	Host             string
	Port             string
	Role             string // normal (default), inter-router, route-container, edge
	SASLMechanisms   string
	AuthenticatePeer bool
	// Attributes holds every attribute as written, the ones above included.
	Attributes map[string]string
}

// LinkRoute is a qdrouterd linkRoute section: attaches to matching addresses are
// passed to a broker on a route-container connection.
type LinkRoute struct {
	Prefix      string
	Pattern     string
	Direction   string // in (client senders) or out (client receivers)
	Connection  string // the name of a Connector
	ContainerID string // or the container-id of the route container
	// AddExternalPrefix is put before, and DelExternalPrefix taken off, the address
	// of the terminus the route container sees (and undone in its answer).
	AddExternalPrefix string
	DelExternalPrefix string
}

// LoadConfig reads a qdrouterd.conf file.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

var (
	reSectionOpen = regexp.MustCompile(`^([A-Za-z][\w-]*)\s*\{\s*$`)
	reAttribute   = regexp.MustCompile(`^([A-Za-z][\w-]*)\s*:\s*(.*?)\s*$`)
)

// ParseConfig reads qdrouterd's configuration syntax (sections of "key: value" lines
// in braces, "#" comment lines) or its JSON form (a list of [section, attributes]).
func ParseConfig(r io.Reader) (*Config, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		return parseJSONConfig(t)
	}
	type section struct {
		name  string
		attrs map[string]string
		line  int
	}
	var sections []section
	var cur *section
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case line == "}":
			if cur == nil {
				return nil, fmt.Errorf("line %d: '}' without an open section", lineNo)
			}
			sections = append(sections, *cur)
			cur = nil
		case reSectionOpen.MatchString(line):
			if cur != nil {
				return nil, fmt.Errorf("line %d: section %q opened inside section %q (missing '}'?)", lineNo, reSectionOpen.FindStringSubmatch(line)[1], cur.name)
			}
			cur = &section{name: reSectionOpen.FindStringSubmatch(line)[1], attrs: map[string]string{}, line: lineNo}
		case reAttribute.MatchString(line):
			if cur == nil {
				return nil, fmt.Errorf("line %d: attribute %q outside any section", lineNo, line)
			}
			m := reAttribute.FindStringSubmatch(line)
			cur.attrs[m[1]] = strings.Trim(m[2], `"'`)
		default:
			return nil, fmt.Errorf("line %d: cannot parse %q (want 'section {', 'key: value' or '}')", lineNo, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: section %q is never closed", cur.line, cur.name)
	}
	cfg := &Config{Router: map[string]string{}}
	for _, s := range sections {
		if err := cfg.add(s.name, s.attrs); err != nil {
			return nil, fmt.Errorf("line %d: %w", s.line, err)
		}
	}
	return cfg, nil
}

func parseJSONConfig(raw []byte) (*Config, error) {
	var entries [][]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("JSON configuration: %w", err)
	}
	cfg := &Config{Router: map[string]string{}}
	for i, e := range entries {
		if len(e) != 2 {
			return nil, fmt.Errorf("JSON entry %d: want [section, {attributes}]", i+1)
		}
		var name string
		var attrs map[string]any
		if err := json.Unmarshal(e[0], &name); err != nil {
			return nil, fmt.Errorf("JSON entry %d: section name: %w", i+1, err)
		}
		if err := json.Unmarshal(e[1], &attrs); err != nil {
			return nil, fmt.Errorf("JSON entry %d: attributes: %w", i+1, err)
		}
		flat := map[string]string{}
		for k, v := range attrs {
			flat[k] = fmt.Sprint(v)
		}
		if err := cfg.add(name, flat); err != nil {
			return nil, fmt.Errorf("JSON entry %d: %w", i+1, err)
		}
	}
	return cfg, nil
}

// canon folds qdrouterd's hyphenated attribute names to camelCase ones.
func canon(attrs map[string]string) map[string]string {
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		parts := strings.Split(k, "-")
		for i := 1; i < len(parts); i++ {
			if parts[i] != "" {
				parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
			}
		}
		out[strings.Join(parts, "")] = v
	}
	return out
}

func (c *Config) add(name string, attrs map[string]string) error {
	a := canon(attrs)
	switch name {
	case "router":
		for k, v := range a {
			c.Router[k] = v
		}
	case "listener":
		l := Listener{Host: a["host"], Port: a["port"], Role: a["role"], SASLMechanisms: a["saslMechanisms"], Attributes: a}
		if l.Role == "" {
			l.Role = "normal"
		}
		if v, ok := a["authenticatePeer"]; ok {
			b, err := parseBool(v)
			if err != nil {
				return fmt.Errorf("listener authenticatePeer: %w", err)
			}
			l.AuthenticatePeer = b
		}
		c.Listeners = append(c.Listeners, l)
	case "address":
		r := AddressRule{Prefix: a["prefix"], Pattern: a["pattern"], Distribution: Distribution(a["distribution"])}
		if r.Distribution == "" {
			r.Distribution = Balanced
		}
		if (r.Prefix == "") == (r.Pattern == "") {
			return fmt.Errorf("address section: exactly one of prefix and pattern must be set")
		}
		if !r.Distribution.valid() {
			return fmt.Errorf("address section: unknown distribution %q (want balanced, closest, multicast or unavailable)", r.Distribution)
		}
		c.Addresses = append(c.Addresses, r)
	case "linkRoute", "linkRoutePattern":
		lr := LinkRoute{Prefix: a["prefix"], Pattern: a["pattern"], Direction: a["direction"], Connection: a["connection"], ContainerID: a["containerId"],
			AddExternalPrefix: a["addExternalPrefix"], DelExternalPrefix: a["delExternalPrefix"]}
		if lr.Direction == "" {
			lr.Direction = a["dir"]
		}
		if (lr.Prefix == "") == (lr.Pattern == "") {
			return fmt.Errorf("linkRoute section: exactly one of prefix and pattern must be set")
		}
		if lr.Direction != "in" && lr.Direction != "out" {
			return fmt.Errorf("linkRoute section: direction must be in or out, not %q", lr.Direction)
		}
		c.LinkRoutes = append(c.LinkRoutes, lr)
	case "connector":
		cn, err := parseConnector(a)
		if err != nil {
			return err
		}
		c.Connectors = append(c.Connectors, cn)
	default:
		c.Ignored = append(c.Ignored, name)
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "1", "on":
		return true, nil
	case "no", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes/no)", v)
}

// ListenAddress returns host:port of the first normal listener, with qdrouterd's
// defaults (host 127.0.0.1 here, since fakes listen on loopback unless told; port
// "amqp" is 5672, "amqps" 5671), or "" when the file has none.
func (c *Config) ListenAddress() (string, error) {
	for _, l := range c.Listeners {
		if l.Role != "normal" {
			continue
		}
		host := l.Host
		if host == "" {
			host = "127.0.0.1"
		}
		port := l.Port
		switch port {
		case "", "amqp":
			port = "5672"
		case "amqps":
			port = "5671"
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("listener port %q is not a number", l.Port)
		}
		return net.JoinHostPort(host, port), nil
	}
	return "", nil
}

// parseConnector reads a connector section (attribute names already camelCase).
func parseConnector(a map[string]string) (Connector, error) {
	cn := Connector{Name: a["name"], Host: a["host"], Port: a["port"], Role: a["role"],
		SASLMechanisms: a["saslMechanisms"], SASLUsername: a["saslUsername"], SASLPassword: a["saslPassword"],
		SSLProfile: a["sslProfile"], Attributes: a}
	if v, ok := a["idleTimeoutSeconds"]; ok {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return cn, fmt.Errorf("connector idleTimeoutSeconds %q is not a number of seconds", v)
		}
		cn.IdleTimeout = time.Duration(n) * time.Second
		if n == 0 {
			cn.IdleTimeout = -1 // none
		}
	}
	if v, ok := a["maxFrameSize"]; ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return cn, fmt.Errorf("connector maxFrameSize %q is not a number", v)
		}
		cn.MaxFrameSize = uint32(n)
	}
	if err := cn.check(); err != nil {
		return cn, fmt.Errorf("connector section: %w", err)
	}
	return cn, nil
}
