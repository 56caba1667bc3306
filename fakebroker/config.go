package fakebroker

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Config is what the fake broker takes from a qpidd.conf file: the keys port,
// queue-patterns, topic-patterns, default-queue-limit, default-flow-stop-threshold,
// default-flow-resume-threshold and max-connections. Other keys (auth, data-dir, interface, ...) are
// listed in Ignored so a caller can see what had no effect.
type Config struct {
	// Port is the port key's value, "" when the file has none.
	Port string
	// QueuePatterns and TopicPatterns are the values of every queue-patterns and
	// topic-patterns line, in file order.
	QueuePatterns []string
	TopicPatterns []string
	// QueueLimit is the default-queue-limit key's value in bytes (0: no limit), nil
	// when the file has none.
	QueueLimit *uint64
	// FlowStopThreshold and FlowResumeThreshold are the values of
	// default-flow-stop-threshold and default-flow-resume-threshold, percent of a
	// queue's limits (0: no producer flow control); nil when absent.
	FlowStopThreshold, FlowResumeThreshold *int
	// MaxConnections is the max-connections key's value (0: no limit), nil when the
	// file has none.
	MaxConnections *int
	// Options holds every key with its values in file order, the ones above
	// included. A key under a [section] header is named "section.key".
	Options map[string][]string
	// Ignored lists the keys that have no effect on the fake broker, once each, in
	// file order.
	Ignored []string
}

// LoadConfig reads a qpidd.conf file.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fakebroker: %w", err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("fakebroker: %s: %w", path, err)
	}
	return cfg, nil
}

var (
	reConfKey     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	reConfSection = regexp.MustCompile(`^\[\s*([A-Za-z0-9_.-]+)\s*\]$`)
)

// ParseConfig reads qpidd's configuration syntax, that of its command-line options
// in a file: one "key=value" per line (the key is an option's long name without
// "--"), a key repeated for a multi-valued option, "#" starting a comment, blank
// lines ignored. Every pattern must compile (see Options.QueuePatterns).
func ParseConfig(r io.Reader) (*Config, error) {
	cfg := &Config{Options: map[string][]string{}}
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section := ""
	seen := map[string]bool{}
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if m := reConfSection.FindStringSubmatch(line); m != nil {
			section = m[1] + "."
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: cannot parse %q (want key=value)", lineNo, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !reConfKey.MatchString(key) {
			return nil, fmt.Errorf("line %d: %q is not an option name", lineNo, key)
		}
		key = section + key
		cfg.Options[key] = append(cfg.Options[key], value)
		switch key {
		case "port":
			if _, err := strconv.ParseUint(value, 10, 16); err != nil {
				return nil, fmt.Errorf("line %d: port %q is not a number from 0 to 65535", lineNo, value)
			}
			cfg.Port = value
		case "default-queue-limit":
			v, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: default-queue-limit %q is not a number of bytes", lineNo, value)
			}
			cfg.QueueLimit = &v
		case "default-flow-stop-threshold", "default-flow-resume-threshold":
			v, err := strconv.ParseUint(value, 10, 8)
			if err != nil || v > 100 {
				return nil, fmt.Errorf("line %d: %s %q is not a percentage from 0 to 100", lineNo, key, value)
			}
			pct := int(v)
			if key == "default-flow-stop-threshold" {
				cfg.FlowStopThreshold = &pct
			} else {
				cfg.FlowResumeThreshold = &pct
			}
		case "max-connections":
			v, err := strconv.ParseUint(value, 10, 31)
			if err != nil {
				return nil, fmt.Errorf("line %d: max-connections %q is not a number of connections", lineNo, value)
			}
			n := int(v)
			cfg.MaxConnections = &n
		case "queue-patterns", "topic-patterns":
			if value == "" {
				return nil, fmt.Errorf("line %d: %s without a pattern", lineNo, key)
			}
			if _, err := compileBRE(value); err != nil {
				return nil, fmt.Errorf("line %d: %s %q: %w", lineNo, key, value, err)
			}
			if key == "queue-patterns" {
				cfg.QueuePatterns = append(cfg.QueuePatterns, value)
			} else {
				cfg.TopicPatterns = append(cfg.TopicPatterns, value)
			}
		default:
			if !seen[key] {
				seen[key] = true
				cfg.Ignored = append(cfg.Ignored, key)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ListenAddress returns 127.0.0.1:port for the file's port (fakes listen on
// loopback unless told otherwise), or "" when the file sets no port.
func (c *Config) ListenAddress() string {
	if c.Port == "" {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", c.Port)
}
