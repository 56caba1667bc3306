package fakebroker

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind is the type of a node: a queue or a topic.
type Kind string

// Kinds of node.
const (
	// Queue stores messages until a consumer takes them; competing consumers each
	// get different messages.
	Queue Kind = "queue"
	// Topic stores nothing itself: every subscriber (each with a subscription queue
	// of its own) gets a copy, and with no subscriber the message is gone.
	Topic Kind = "topic"
)

// policy is one compiled queue or topic pattern.
type policy struct {
	pattern string
	re      *regexp.Regexp
	kind    Kind
}

// policies decide which kind of node an unknown address gets, as qpidd's
// NodePolicy: every pattern that matches is a candidate and the longest pattern
// string wins.
type policies []policy

func compilePolicies(queues, topics []string) (policies, error) {
	var ps policies
	for _, set := range []struct {
		kind     Kind
		patterns []string
	}{{Queue, queues}, {Topic, topics}} {
		for _, p := range set.patterns {
			re, err := compileBRE(p)
			if err != nil {
				return nil, fmt.Errorf("fakebroker: %s pattern %q: %w", set.kind, p, err)
			}
			ps = append(ps, policy{pattern: p, re: re, kind: set.kind})
		}
	}
	return ps, nil
}

// lookup returns the kind of node addr gets and the pattern that decided it.
func (ps policies) lookup(addr string) (Kind, string, bool) {
	best := -1
	for i, p := range ps {
		if !p.re.MatchString(addr) {
			continue
		}
		// Queues come first in ps, so a tie keeps the queue.
		if best < 0 || len(p.pattern) > len(ps[best].pattern) {
			best = i
		}
	}
	if best < 0 {
		return "", "", false
	}
	return ps[best].kind, ps[best].pattern, true
}

// describe names the patterns for an error message.
func (ps policies) describe() string {
	var q, t []string
	for _, p := range ps {
		if p.kind == Queue {
			q = append(q, fmt.Sprintf("%q", p.pattern))
		} else {
			t = append(t, fmt.Sprintf("%q", p.pattern))
		}
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("queue-patterns %s; topic-patterns %s", list(q), list(t))
}

// compileBRE compiles a POSIX basic regular expression (with the GNU extensions
// \+, \? and \|), unanchored as regexec matches: a pattern matches anywhere in the
// string unless it starts with ^ or ends with $.
func compileBRE(p string) (*regexp.Regexp, error) {
	s, err := breToRE2(p)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("not a valid regular expression: %w", err)
	}
	return re, nil
}

// breToRE2 rewrites a basic regular expression in Go's syntax. In a BRE, ( ) { } |
// + ? are literal and their escaped forms are operators; * is literal at the start of
// the expression or of a group; ^ anchors only at the start and $ only at the end;
// backslash is literal inside a bracket expression.
func breToRE2(p string) (string, error) {
	var b strings.Builder
	rs := []rune(p)
	atStart := true // where * is a literal and ^ an anchor
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		start := atStart
		atStart = false
		switch c {
		case '\\':
			if i+1 == len(rs) {
				return "", fmt.Errorf("trailing backslash")
			}
			i++
			switch n := rs[i]; n {
			case '(':
				b.WriteByte('(')
				atStart = true
			case ')':
				b.WriteByte(')')
			case '|':
				b.WriteByte('|')
				atStart = true
			case '+', '?':
				b.WriteRune(n)
			case '{':
				end := -1
				for j := i + 1; j+1 < len(rs); j++ {
					if rs[j] == '\\' && rs[j+1] == '}' {
						end = j
						break
					}
				}
				if end < 0 {
					return "", fmt.Errorf(`interval \{ without \}`)
				}
				body := string(rs[i+1 : end])
				if !reInterval.MatchString(body) {
					return "", fmt.Errorf(`bad interval \{%s\}`, body)
				}
				b.WriteString("{" + body + "}")
				i = end + 1
			case '<', '>':
				b.WriteString(`\b`)
			case 'w', 'W', 's', 'S', 'b', 'B':
				b.WriteRune('\\')
				b.WriteRune(n)
			case '1', '2', '3', '4', '5', '6', '7', '8', '9':
				return "", fmt.Errorf(`back-references (\%c) are not supported`, n)
			default:
				b.WriteString(regexp.QuoteMeta(string(n)))
			}
		case '*':
			if start {
				b.WriteString(`\*`)
			} else {
				b.WriteByte('*')
			}
		case '^':
			if start {
				b.WriteByte('^')
				atStart = true
			} else {
				b.WriteString(`\^`)
			}
		case '$':
			if i == len(rs)-1 || (i+2 < len(rs) && rs[i+1] == '\\' && rs[i+2] == ')') {
				b.WriteByte('$')
			} else {
				b.WriteString(`\$`)
			}
		case '.':
			b.WriteByte('.')
		case '[':
			end, class, err := bracket(rs, i)
			if err != nil {
				return "", err
			}
			b.WriteString(class)
			i = end
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String(), nil
}

var reInterval = regexp.MustCompile(`^[0-9]+(,[0-9]*)?$`)

// bracket translates the bracket expression starting at rs[i] and returns the index
// of its closing ].
func bracket(rs []rune, i int) (int, string, error) {
	var b strings.Builder
	b.WriteByte('[')
	k := i + 1
	if k < len(rs) && rs[k] == '^' {
		b.WriteByte('^')
		k++
	}
	if k < len(rs) && rs[k] == ']' {
		b.WriteString(`\]`)
		k++
	}
	for ; k < len(rs); k++ {
		switch c := rs[k]; {
		case c == ']':
			b.WriteByte(']')
			return k, b.String(), nil
		case c == '[' && k+1 < len(rs) && rs[k+1] == ':':
			end := -1
			for j := k + 2; j+1 < len(rs); j++ {
				if rs[j] == ':' && rs[j+1] == ']' {
					end = j + 1
					break
				}
			}
			if end < 0 {
				return 0, "", fmt.Errorf("character class [: without :]")
			}
			b.WriteString(string(rs[k : end+1]))
			k = end
		case c == '[' && k+1 < len(rs) && (rs[k+1] == '.' || rs[k+1] == '='):
			return 0, "", fmt.Errorf("collating elements and equivalence classes ([. [=) are not supported")
		case c == '\\' || c == '[':
			b.WriteRune('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return 0, "", fmt.Errorf("bracket expression [ without ]")
}
