package driver

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Config is what an OpenStack service's configuration file says about messaging over
// AMQP 1.0. LoadConfig reads it.
type Config struct {
	// TransportURL is [DEFAULT] transport_url; "" when the file does not set it (oslo's
	// default is "rabbit://", which is not an AMQP 1.0 URL).
	TransportURL string
	// Options are the [oslo_messaging_amqp] options (also read from the deprecated
	// [amqp1] group where oslo reads them from it) and [DEFAULT] control_exchange and
	// rpc_response_timeout, with the Python defaults for what the file does not set.
	// The transport URL's query is not applied: see TransportURL.ApplyQuery.
	Options Options
	// NotificationTransportURL is [oslo_messaging_notifications] transport_url (or the
	// deprecated [DEFAULT] notification_transport_url); "" means the notifier uses
	// TransportURL.
	NotificationTransportURL string
	// NotificationDriver is [oslo_messaging_notifications] driver, a multi-valued
	// option ("messagingv2", "messaging", "log", "noop", ...); values of the
	// deprecated [DEFAULT] notification_driver come first, as oslo.config orders them.
	// Default: none.
	NotificationDriver []string
	// NotificationTopics is [oslo_messaging_notifications] topics (or the deprecated
	// [rpc_notifier2] topics, [DEFAULT] notification_topics), a comma-separated list.
	// Default: ["notifications"].
	NotificationTopics []string
	// NotificationRetry is [oslo_messaging_notifications] retry: how many times a
	// notification is resent (-1: no limit). Default: -1.
	NotificationRetry int
	// Unknown lists, as "section.key", the keys of [oslo_messaging_amqp], [amqp1] and
	// [oslo_messaging_notifications] that name no option there. oslo.config ignores
	// them silently; they are usually typos, or options in the wrong group (for
	// example ssl in [amqp1], which only some options may use).
	Unknown []string
}

// LoadConfig reads an OpenStack service configuration file (nova.conf and the like)
// the way oslo.config reads it, and returns what concerns this driver.
//
// The syntax is oslo.config's own (oslo_config/iniparser.py), which is not that of
// other INI readers:
//
//   - "key = value" or "key: value", whichever separator comes first; key and value
//     are trimmed, and one pair of matching quotes around the value is removed;
//   - "#" and ";" start a comment only at the beginning of a line: "a = b # c" sets
//     a to "b # c";
//   - a line that starts with a space or tab continues the previous value (joined
//     with "\n"), even when it looks like a comment; a blank line ends it;
//   - section names other than "DEFAULT" are case-insensitive; keys are
//     case-sensitive; sections may repeat;
//   - a repeated key keeps its last value, except for multi-valued options
//     (pre_settled, driver) where every line is one value: "pre_settled = a,b" is
//     ONE value "a,b", which the Python driver then ignores as unknown;
//   - "$name" and "${name}" are replaced by the value of option name (looked up in
//     the option's group, then in [DEFAULT]; "${group.name}" for another group), and
//     "$$" or "\$" give "$". A reference to an option this package does not know is
//     taken from the file if the file sets it, and is otherwise an error, since
//     oslo.config would use the service's own default.
//
// Values are converted as oslo.config converts them (see Options.Set), and a bad one
// is a *ConfigError naming "section.option" with the file and line. Environment
// variables (OS_<GROUP>__<OPTION>, oslo.config's environment source) are not read.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Field: "config file", Value: path, Reason: "cannot read", Err: err}
	}
	return parseConfig(path, data)
}

const (
	groupNotifications = "oslo_messaging_notifications"
	groupRPCNotifier2  = "rpc_notifier2"
)

// iniValue is one assignment of a key, with its line.
type iniValue struct {
	value string
	line  int
}

// iniFile is a parsed file: normalised section → key → assignments in file order.
type iniFile struct {
	name     string
	sections map[string]map[string][]iniValue
	keys     []optRef // every (section, key) in order of first appearance
}

// optRef names a key in a section (normalised section name).
type optRef struct{ section, key string }

// normalizeSection is oslo.config's _normalize_group_name.
func normalizeSection(s string) string {
	if s == groupDefault {
		return s
	}
	return strings.ToLower(s)
}

// parseINI mirrors oslo_config.iniparser.BaseParser.parse with cfg.ConfigParser.
func parseINI(name string, data []byte) (*iniFile, error) {
	f := &iniFile{name: name, sections: map[string]map[string][]iniValue{}}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n") // Python's universal newlines
	var (
		section   string
		key       string
		keyLine   int
		value     []string
		inSection bool
	)
	syntax := func(line int, text, reason string) error {
		return &ConfigError{Field: "config file", Value: text, Reason: reason, File: name, Line: line}
	}
	flush := func() error {
		if key == "" {
			return nil
		}
		if !inSection {
			return syntax(keyLine, key, "Section must be started before assignment")
		}
		sec := f.sections[section]
		if _, seen := sec[key]; !seen {
			f.keys = append(f.keys, optRef{section, key})
		}
		sec[key] = append(sec[key], iniValue{strings.Join(value, "\n"), keyLine})
		key, value = "", nil
		return nil
	}
	for i, raw := range strings.Split(text, "\n") {
		lineno := i + 1
		line := strings.TrimRightFunc(raw, isPySpace)
		if line == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key == "" {
				return nil, syntax(lineno, line, "Unexpected continuation line")
			}
			value = append(value, strings.TrimLeftFunc(line, isPySpace))
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		switch line[0] {
		case '[':
			if !strings.HasSuffix(line, "]") {
				return nil, syntax(lineno, line, "Invalid section (must end with ])")
			}
			if len(line) <= 2 {
				return nil, syntax(lineno, line, "Empty section name")
			}
			section, inSection = normalizeSection(line[1:len(line)-1]), true
			if f.sections[section] == nil {
				f.sections[section] = map[string][]iniValue{}
			}
		case '#', ';':
		default:
			colon, equal := strings.IndexByte(line, ':'), strings.IndexByte(line, '=')
			if colon < 0 && equal < 0 {
				return nil, syntax(lineno, line, "No ':' or '=' found in assignment")
			}
			sep := colon
			if colon < 0 || (equal >= 0 && equal < colon) {
				sep = equal
			}
			k := strings.TrimFunc(line[:sep], isPySpace)
			v := strings.TrimFunc(line[sep+1:], isPySpace)
			if len(v) > 0 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1:max(1, len(v)-1)] // Python's value[1:-1]: a lone quote gives ""
			}
			if k == "" {
				return nil, syntax(lineno, line, "Key cannot be empty")
			}
			key, keyLine, value = k, lineno, []string{v}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return f, nil
}

// cfgOpt is an option LoadConfig knows: where oslo.config looks for it, and how to
// store and render its value.
type cfgOpt struct {
	group string   // the option's group (normalised)
	name  string   // the option's name
	refs  []optRef // where to look, in oslo.config's order (current name first)
	multi bool
	set   func(c *Config, vals []string) error // vals already substituted
	py    func(l *loader) string               // Python's str() of the current value
}

// cfgOptions builds the table of known options.
func cfgOptions() []*cfgOpt {
	var opts []*cfgOpt
	for i := range optionTable {
		s := &optionTable[i]
		o := &cfgOpt{group: s.group, name: s.name, refs: []optRef{{s.group, s.name}}, multi: s.kind == kindMulti}
		if s.amqp1 {
			o.refs = append(o.refs, optRef{groupAMQP1, s.name})
		}
		o.set = func(c *Config, vals []string) error {
			if s.kind == kindMulti {
				*s.field(&c.Options).(*[]string) = nil
				for _, v := range vals {
					if err := s.setOne(&c.Options, v); err != nil {
						return err
					}
				}
				return nil
			}
			return s.setOne(&c.Options, vals[len(vals)-1])
		}
		o.py = func(l *loader) string { return s.pyValue(&l.cfg.Options) }
		opts = append(opts, o)
	}
	opts = append(opts,
		&cfgOpt{group: groupDefault, name: "transport_url", refs: []optRef{{groupDefault, "transport_url"}},
			set: func(c *Config, vals []string) error { c.TransportURL = vals[len(vals)-1]; return nil },
			py: func(l *loader) string {
				if l.urlSet {
					return l.cfg.TransportURL
				}
				return "rabbit://" // oslo_messaging/transport.py:_transport_opts
			}},
		&cfgOpt{group: groupNotifications, name: "driver", multi: true,
			refs: []optRef{{groupNotifications, "driver"}, {groupDefault, "notification_driver"}},
			set:  func(c *Config, vals []string) error { c.NotificationDriver = vals; return nil },
			py:   func(l *loader) string { return pyListRepr(l.cfg.NotificationDriver) }},
		&cfgOpt{group: groupNotifications, name: "transport_url",
			refs: []optRef{{groupNotifications, "transport_url"}, {groupDefault, "notification_transport_url"}},
			set:  func(c *Config, vals []string) error { c.NotificationTransportURL = vals[len(vals)-1]; return nil },
			py:   func(l *loader) string { return l.cfg.NotificationTransportURL }},
		&cfgOpt{group: groupNotifications, name: "topics",
			refs: []optRef{{groupNotifications, "topics"}, {groupRPCNotifier2, "topics"}, {groupDefault, "notification_topics"}},
			set: func(c *Config, vals []string) error {
				c.NotificationTopics = parsePyList(vals[len(vals)-1])
				return nil
			},
			py: func(l *loader) string { return pyListRepr(l.cfg.NotificationTopics) }},
		&cfgOpt{group: groupNotifications, name: "retry", refs: []optRef{{groupNotifications, "retry"}},
			set: func(c *Config, vals []string) error {
				v := vals[len(vals)-1]
				n, reason := parsePyInt(v)
				if reason == "" && (n < -1<<31 || n > 1<<31-1) {
					reason = "out of range"
				}
				if reason != "" {
					return &ConfigError{Field: "retry", Value: v, Reason: reason}
				}
				c.NotificationRetry = int(n)
				return nil
			},
			py: func(l *loader) string { return fmt.Sprint(l.cfg.NotificationRetry) }},
	)
	return opts
}

// parsePyList converts as oslo_config.types.List(String()): trimmed, trailing commas
// dropped, split at ",", each item trimmed.
func parsePyList(v string) []string {
	s := strings.TrimRight(strings.TrimFunc(v, isPySpace), ",")
	if s == "" {
		return []string{}
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimFunc(items[i], isPySpace)
	}
	return items
}

// knownKeys lists, per section LoadConfig checks, the keys oslo.messaging defines
// there; other keys go to Config.Unknown.
func knownKeys() map[string]map[string]bool {
	k := map[string]map[string]bool{
		groupAMQP:          {},
		groupAMQP1:         {},
		groupNotifications: {"driver": true, "transport_url": true, "topics": true, "retry": true, "routing_config": true},
	}
	for _, s := range optionTable {
		if s.group == groupAMQP {
			k[groupAMQP][s.name] = true
		}
		if s.amqp1 {
			k[groupAMQP1][s.name] = true
		}
	}
	return k
}

// loader evaluates the options of one file, lazily and once each, so that
// substitutions see converted values as oslo.config's do.
type loader struct {
	file   *iniFile
	cfg    *Config
	opts   []*cfgOpt
	state  map[*cfgOpt]int // 0 pending, 1 evaluating, 2 done
	urlSet bool
	depth  int
}

func parseConfig(name string, data []byte) (*Config, error) {
	f, err := parseINI(name, data)
	if err != nil {
		return nil, err
	}
	l := &loader{
		file: f,
		cfg: &Config{
			Options:            DefaultOptions(),
			NotificationTopics: []string{"notifications"},
			NotificationRetry:  -1,
		},
		opts:  cfgOptions(),
		state: map[*cfgOpt]int{},
	}
	for _, o := range l.opts {
		if err := l.eval(o); err != nil {
			return nil, err
		}
	}
	known := knownKeys()
	for _, r := range f.keys {
		if k, checked := known[r.section]; checked && !k[r.key] {
			l.cfg.Unknown = append(l.cfg.Unknown, r.section+"."+r.key)
		}
	}
	return l.cfg, nil
}

// find returns the values of o in the file as oslo.config's _Namespace._get_file_value
// does: for a single-valued option the values under the first name found, for a
// multi-valued one those of every name, deprecated names first.
func (l *loader) find(o *cfgOpt) (vals []iniValue, at optRef) {
	for _, r := range o.refs {
		v, ok := l.file.sections[r.section][r.key]
		if !ok {
			continue
		}
		if !o.multi {
			return v, r
		}
		if vals == nil {
			at = r
		}
		vals = append(append([]iniValue(nil), v...), vals...)
	}
	return vals, at
}

func (l *loader) eval(o *cfgOpt) error {
	switch l.state[o] {
	case 2:
		return nil
	case 1:
		return &ConfigError{Field: o.group + "." + o.name, Reason: "recursive $substitution", File: l.file.name, Line: l.line(o)}
	}
	l.state[o] = 1
	vals, at := l.find(o)
	if len(vals) > 0 {
		subst := make([]string, len(vals))
		for i, v := range vals {
			s, err := l.substitute(v.value, o.group)
			if err != nil {
				return withLocation(err, at, v, l.file.name)
			}
			subst[i] = s
		}
		if err := o.set(l.cfg, subst); err != nil {
			// Point at the value that failed: the last one for a single-valued option.
			return withLocation(err, at, vals[len(vals)-1], l.file.name)
		}
		if o.group == groupDefault && o.name == "transport_url" {
			l.urlSet = true
		}
	}
	l.state[o] = 2
	return nil
}

// withLocation names the option as "section.key" and adds the file and line.
func withLocation(err error, at optRef, v iniValue, file string) error {
	ce, ok := err.(*ConfigError)
	if !ok {
		ce = &ConfigError{Reason: "bad value", Err: err}
	}
	if ce.File == "" {
		ce.Field = at.section + "." + at.key
		ce.File, ce.Line = file, v.line
		if ce.Value == "" {
			ce.Value = v.value
		}
	}
	return ce
}

// line returns the line of o's value in the file, or 0.
func (l *loader) line(o *cfgOpt) int {
	if vals, _ := l.find(o); len(vals) > 0 {
		return vals[len(vals)-1].line
	}
	return 0
}

func (l *loader) opt(group, name string) *cfgOpt {
	for _, o := range l.opts {
		if o.group == group && o.name == name {
			return o
		}
	}
	return nil
}

// templateRE is Python's string.Template pattern with oslo.config's idpattern
// ([_a-z][\._a-z0-9]*, case-insensitive): "$$", "$name", "${name}", or a lone "$".
var templateRE = regexp.MustCompile(`\$(?:(\$)|((?i)[_a-z][._a-z0-9]*)|\{((?i)[_a-z][._a-z0-9]*)\}|)`)

// substitute performs oslo.config's ConfigOpts._substitute on a value of group.
func (l *loader) substitute(v, group string) (string, error) {
	if !strings.Contains(v, "$") {
		return v, nil
	}
	v = strings.ReplaceAll(v, `\$`, "$$")
	var firstErr error
	out := templateRE.ReplaceAllStringFunc(v, func(m string) string {
		if firstErr != nil {
			return m
		}
		sub := templateRE.FindStringSubmatch(m)
		switch {
		case sub[1] != "":
			return "$"
		case sub[2] != "" || sub[3] != "":
			name := sub[2] + sub[3]
			s, err := l.lookup(name, group)
			if err != nil {
				firstErr = err
				return m
			}
			return s
		}
		return m // a lone "$": safe_substitute leaves it
	})
	return out, firstErr
}

// lookup is oslo.config's StrSubWrapper.__getitem__ over the options this package
// knows, falling back on the raw values of the file.
func (l *loader) lookup(name, group string) (string, error) {
	l.depth++
	defer func() { l.depth-- }()
	if l.depth > 32 {
		return "", &ConfigError{Reason: fmt.Sprintf("$%s: recursive substitution", name)}
	}
	var candidates []optRef
	if g, key, dotted := strings.Cut(name, "."); dotted {
		candidates = []optRef{{normalizeSection(g), key}}
	} else {
		candidates = []optRef{{group, name}, {groupDefault, name}}
	}
	for _, c := range candidates {
		if o := l.opt(c.section, c.key); o != nil {
			if err := l.eval(o); err != nil {
				return "", err
			}
			return o.py(l), nil
		}
	}
	for _, c := range candidates {
		if c.section == groupAMQP || c.section == groupNotifications {
			continue // every option of these groups is known: oslo.config would fail
		}
		if vals, ok := l.file.sections[c.section][c.key]; ok {
			return l.substitute(vals[len(vals)-1].value, c.section)
		}
	}
	return "", &ConfigError{Reason: fmt.Sprintf("$%s: substitution of an option amqp1kit does not know and the file does not set "+
		"(oslo.config would fail, or use the service's own value; write $$ for a literal $)", name)}
}
