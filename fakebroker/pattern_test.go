package fakebroker

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

func TestBasicRegularExpressions(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"exclusive", []string{"exclusive.a.b", "my.exclusive", "exclusive"}, []string{"exclusiv", "Exclusive"}},
		{`^a\.b$`, []string{"a.b"}, []string{"a.bc", "xa.b", "aXb"}},
		{"a.b", []string{"a.b", "aXb", "zzaxbzz"}, []string{"ab"}},
		{"^ab*c", []string{"ac", "abbbc"}, []string{"xac"}},
		{"*a", []string{"*a", "x*a"}, []string{"a"}}, // * first is a literal
		{`^*a`, []string{"*a"}, []string{"a"}},       // also after ^
		{`\(*a\)`, []string{"*a"}, []string{"a"}},    // and after \(
		{`^\(ab\)\{2\}$`, []string{"abab"}, []string{"ab", "ababab"}},
		{`^a\{2,\}$`, []string{"aa", "aaaa"}, []string{"a"}},
		{"a+b", []string{"a+b"}, []string{"aab", "ab"}},  // + is a literal in a BRE
		{`^a\+b$`, []string{"ab", "aab"}, []string{"b"}}, // \+ is GNU's one-or-more
		{`^ab\?c$`, []string{"ac", "abc"}, []string{"abbc"}},
		{"x|y", []string{"x|y"}, []string{"x", "y"}},
		{`^x\|y$`, []string{"x", "y"}, []string{"z"}},
		{"a{2}", []string{"a{2}"}, []string{"aa"}},
		{"(x)", []string{"(x)"}, []string{"x"}},
		{"^[[:digit:]]\\{3\\}$", []string{"123"}, []string{"12", "abc"}},
		{"^[]x]$", []string{"]", "x"}, []string{"y"}},
		{`^[a\]$`, []string{"a", `\`}, []string{"]"}}, // backslash is literal in brackets
		{`^[^a-c]$`, []string{"d"}, []string{"a", "b"}},
		{"a$b", []string{"a$b"}, []string{"a"}},    // $ not at the end is a literal
		{"a^b", []string{"a^b"}, []string{"ab"}},   // ^ not at the start too
		{`^\(a$\)`, []string{"a"}, []string{"ab"}}, // $ before \) anchors
		{`x\.y`, []string{"x.y"}, []string{"xzy"}},
	} {
		re, err := compileBRE(tc.pattern)
		require.NoError(t, err, tc.pattern)
		for _, s := range tc.match {
			require.True(t, re.MatchString(s), "%q should match %q (as %s)", tc.pattern, s, re)
		}
		for _, s := range tc.nomatch {
			require.False(t, re.MatchString(s), "%q should not match %q (as %s)", tc.pattern, s, re)
		}
	}
	for _, bad := range []string{`a\(`, `\{2`, `a\{x\}`, "[abc", `\1`, `a\`, "[[:alpha:", "[[.a.]]"} {
		_, err := compileBRE(bad)
		require.Error(t, err, bad)
	}
}

func TestPoliciesLongestPatternWins(t *testing.T) {
	ps, err := compilePolicies([]string{"ab", "x"}, []string{"abc", "y", "xx"})
	require.NoError(t, err)
	for addr, want := range map[string]Kind{
		"ab.1":  Queue,
		"abc.1": Topic, // "abc" is longer than "ab"
		"xy":    Queue, // "x" and "y" tie: the queue
		"xxy":   Topic,
	} {
		kind, _, ok := ps.lookup(addr)
		require.True(t, ok, addr)
		require.Equal(t, want, kind, addr)
	}
	_, _, ok := ps.lookup("zzz")
	require.False(t, ok)
	require.Equal(t, `queue-patterns "ab", "x"; topic-patterns "abc", "y", "xx"`, ps.describe())
	none, _ := compilePolicies(nil, nil)
	require.Equal(t, "queue-patterns none; topic-patterns none", none.describe())
}

func TestPutBackKeepsOrder(t *testing.T) {
	n := &node{}
	for i := range 6 {
		n.push(&message{seq: uint64(i + 1)})
	}
	a := n.removeAt(n.head)
	b := n.removeAt(n.head)
	c := n.removeAt(n.head + 2) // seq 5
	n.putBack(c)
	n.putBack(a)
	n.putBack(b)
	var got []uint64
	for _, m := range n.avail[n.head:] {
		got = append(got, m.seq)
	}
	require.Equal(t, []uint64{1, 2, 3, 4, 5, 6}, got)
}

func TestWireBytes(t *testing.T) {
	// The header is qpidd's, byte for byte; what followed the sender's header is kept.
	plain := []byte{0x00, 0x53, 0x77, 0xa1, 0x02, 'h', 'i'} // amqp-value "hi"
	m := newMessage(plain, nil)
	require.Equal(t, append([]byte{0x00, 0x53, 0x70, 0xc0, 0x06, 0x04, 0x42, 0x50, 0x04, 0x40, 0x41}, plain...), m.wireBytes(0))
	m.count = 1
	require.Equal(t, append([]byte{0x00, 0x53, 0x70, 0xc0, 0x08, 0x05, 0x42, 0x50, 0x04, 0x40, 0x40, 0x52, 0x01}, plain...), m.wireBytes(0))

	pri := uint8(7)
	sent, err := (&wire.Message{Header: &wire.Header{Durable: true, Priority: &pri, TTL: 60000, DeliveryCount: 9, FirstAcquirer: false},
		HasValue: true, Value: "hi"}).AppendTo(nil)
	require.NoError(t, err)
	h, _, err := wire.ScanMessage(sent)
	require.NoError(t, err)
	m = newMessage(sent, h)
	require.Equal(t, plain, sent[m.bare:])
	m.ttlAt = 60000 * 1e6
	got := decode(t, m.wireBytes(1e9+5e5)) // 1.0005 s later
	require.Equal(t, &wire.Header{Durable: true, Priority: &pri, TTL: 58999, FirstAcquirer: true}, got.Header)
	require.Equal(t, "hi", got.Value)
	m.count = 300
	got = decode(t, m.wireBytes(m.ttlAt)) // expired: ttl written null
	require.Equal(t, &wire.Header{Durable: true, Priority: &pri, DeliveryCount: 300}, got.Header)
}

func TestMergeAnnotations(t *testing.T) {
	// Only the message-annotations section changes; one is added where there is none.
	sent, err := (&wire.Message{Header: &wire.Header{Durable: true}, DeliveryAnnotations: wire.Annotations{wire.Symbol("x-da"): "d"},
		Properties: &wire.Properties{To: "q"}, HasValue: true, Value: "hi"}).AppendTo(nil)
	require.NoError(t, err)
	h, _, err := wire.ScanMessage(sent)
	require.NoError(t, err)
	m := newMessage(sent, h)
	m.mergeAnnotations(wire.Fields{"x-opt-a": int64(1)})
	m.mergeAnnotations(wire.Fields{"x-opt-b": "b", "x-opt-a": int64(2)})
	got := decode(t, m.payload)
	require.Equal(t, wire.Annotations{wire.Symbol("x-opt-a"): int64(2), wire.Symbol("x-opt-b"): "b"}, got.MessageAnnotations)
	require.Equal(t, wire.Annotations{wire.Symbol("x-da"): "d"}, got.DeliveryAnnotations)
	require.Equal(t, "q", got.Properties.To)
	require.Equal(t, "hi", got.Value)
	require.True(t, bytes.HasSuffix(m.payload, sent[bytes.Index(sent, []byte{0x00, 0x53, 0x73}):]), "the properties and body keep their bytes")
}

func decode(t *testing.T, b []byte) *wire.Message {
	t.Helper()
	var m wire.Message
	require.NoError(t, m.Unmarshal(b))
	return &m
}
