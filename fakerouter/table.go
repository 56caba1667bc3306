package fakerouter

import (
	"fmt"
	"strings"
)

// Distribution is how a router spreads the messages of an address among its consumers.
type Distribution string

// Distributions of qdrouterd's address configuration.
const (
	// Balanced sends each message to one consumer: the one with the fewest unsettled
	// deliveries. qdrouterd's default.
	Balanced Distribution = "balanced"
	// Closest sends each message to one consumer, preferring consumers on the router
	// where the message entered, in turn among equals.
	Closest Distribution = "closest"
	// Multicast sends a copy to every consumer; with none the message is dropped.
	Multicast Distribution = "multicast"
	// Unavailable refuses consumers and senders of the address, and rejects its
	// messages on anonymous links with amqp:not-found.
	Unavailable Distribution = "unavailable"
)

func (d Distribution) valid() bool {
	switch d {
	case Balanced, Closest, Multicast, Unavailable:
		return true
	}
	return false
}

// AddressRule maps addresses to a distribution, as qdrouterd's address entity does:
// exactly one of Prefix and Pattern is set.
type AddressRule struct {
	// Prefix matches an address equal to it or continuing it after a "." or "/"
	// (whole segments: prefix "my" matches "my", "my.a" and "my/a" but not "mya").
	Prefix string
	// Pattern matches segments split by "." or "/": "*" is exactly one segment, "#"
	// zero or more.
	Pattern string
	// Distribution of the matching addresses.
	Distribution Distribution
}

// DefaultAddressRules returns the address table of the oslo.messaging AMQP 1.0
// deployment guide: the legacy prefixes and the routable ones.
func DefaultAddressRules() []AddressRule {
	return []AddressRule{
		{Prefix: "unicast", Distribution: Closest},
		{Prefix: "exclusive", Distribution: Closest},
		{Prefix: "broadcast", Distribution: Multicast},
		{Prefix: "openstack.org/om/rpc/multicast", Distribution: Multicast},
		{Prefix: "openstack.org/om/rpc/unicast", Distribution: Closest},
		{Prefix: "openstack.org/om/rpc/anycast", Distribution: Balanced},
		{Prefix: "openstack.org/om/notify/multicast", Distribution: Multicast},
		{Prefix: "openstack.org/om/notify/unicast", Distribution: Closest},
		{Prefix: "openstack.org/om/notify/anycast", Distribution: Balanced},
	}
}

// addressTable resolves an address to its distribution. The longest matching prefix
// or pattern wins (measured in segments, then characters), as in qdrouterd.
type addressTable struct {
	rules []compiledRule
	dflt  Distribution
}

type compiledRule struct {
	rule     AddressRule
	segments []string // pattern segments; a prefix is its segments followed by "#"
	weight   int
}

func newAddressTable(rules []AddressRule, dflt Distribution) (*addressTable, error) {
	t := &addressTable{dflt: dflt}
	for i, r := range rules {
		if (r.Prefix == "") == (r.Pattern == "") {
			return nil, fmt.Errorf("address rule %d: exactly one of prefix and pattern must be set", i+1)
		}
		if r.Distribution == "" {
			r.Distribution = Balanced
		}
		if !r.Distribution.valid() {
			return nil, fmt.Errorf("address rule %d: unknown distribution %q (want balanced, closest, multicast or unavailable)", i+1, r.Distribution)
		}
		var segs []string
		if r.Prefix != "" {
			segs = append(splitSegments(r.Prefix), "#")
		} else {
			segs = splitSegments(r.Pattern)
		}
		t.rules = append(t.rules, compiledRule{rule: r, segments: segs, weight: len(r.Prefix) + len(r.Pattern)})
	}
	return t, nil
}

func splitSegments(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '/' })
}

// lookup returns the distribution of addr and the rule that decided it (nil for the
// default).
func (t *addressTable) lookup(addr string) (Distribution, *AddressRule) {
	segs := splitSegments(addr)
	best := -1
	bestLiteral := -1
	for i := range t.rules {
		r := &t.rules[i]
		if !matchSegments(r.segments, segs) {
			continue
		}
		literal := 0
		for _, s := range r.segments {
			if s != "#" && s != "*" {
				literal++
			}
		}
		if literal > bestLiteral || (literal == bestLiteral && r.weight > t.rules[best].weight) {
			best, bestLiteral = i, literal
		}
	}
	if best < 0 {
		return t.dflt, nil
	}
	return t.rules[best].rule.Distribution, &t.rules[best].rule
}

// matchSegments matches address segments against pattern segments with "*" (one) and
// "#" (zero or more).
func matchSegments(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	switch pat[0] {
	case "#":
		for i := 0; i <= len(segs); i++ {
			if matchSegments(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(segs) > 0 && matchSegments(pat[1:], segs[1:])
	}
	return len(segs) > 0 && segs[0] == pat[0] && matchSegments(pat[1:], segs[1:])
}
