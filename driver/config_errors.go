package driver

import (
	"fmt"
	"strings"
)

// ConfigError reports a bad transport URL, option or configuration file, naming the
// field. It is what ParseTransportURL, Options.Set, Options.Validate,
// TransportURL.ApplyQuery and LoadConfig return; use errors.As to get at it.
//
// Value never holds a whole transport URL, so that a password does not end up in a
// log: for a URL it is only the offending part (the scheme, a port, a query key).
type ConfigError struct {
	// Field names what is wrong: an option ("rpc_server_credit"), an option in a
	// configuration file ("oslo_messaging_amqp.ssl"), or a part of a transport URL
	// ("transport_url port").
	Field string
	// Value is the offending value as written.
	Value string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (for example from reading a file).
	Err error
	// File and Line locate the value in a configuration file (LoadConfig); Line is
	// 1-based. Both are zero for errors that do not come from a file.
	File string
	Line int
}

// Error returns "amqp1kit driver: <field>: <reason> (value "<value>")", preceded by
// "<file>:<line>: " for a value read from a file and followed by ": <err>" when there
// is an underlying error.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("amqp1kit driver: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s: %s (value %q)", e.Field, e.Reason, e.Value)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }
