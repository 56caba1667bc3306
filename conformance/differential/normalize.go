package differential

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// tokens numbers the values of one class in the order they are first seen: the
// first container-id becomes <container1>, the next <container2>, and so on.
type tokens struct {
	prefix string
	m      map[string]string
}

func newTokens(prefix string) *tokens { return &tokens{prefix: prefix, m: map[string]string{}} }

func (t *tokens) get(v string) string {
	if s, ok := t.m[v]; ok {
		return s
	}
	s := fmt.Sprintf("<%s%d>", t.prefix, len(t.m)+1)
	t.m[v] = s
	return s
}

// normalizer masks what legitimately differs between two runs of a scenario.
type normalizer struct {
	containers, names, dyns, ids, uniques *tokens
	handles, channels                     map[ownerKey]*tokens // per connection and owner
	tags                                  map[tagKey]*tokens   // per connection, sender and link
	dynNames                              map[string]bool      // link names whose client asked for a dynamic node
	replacer                              *strings.Replacer    // raw generated strings -> tokens
	shapeReplacer                         *strings.Replacer    // the same without dynamic addresses
}

type ownerKey struct {
	conn  int
	owner Direction
}

type tagKey struct {
	conn int
	dir  Direction
	link string
}

// normalize masks the frames of one trace. uniques are the suffixes the scenario
// generated (Env.Unique), in the order it made them.
func normalize(frames []described, uniques []string) []Frame {
	n := &normalizer{
		containers: newTokens("container"),
		names:      newTokens("link"),
		dyns:       newTokens("dyn"),
		ids:        newTokens("id"),
		uniques:    newTokens("u"),
		handles:    map[ownerKey]*tokens{},
		channels:   map[ownerKey]*tokens{},
		tags:       map[tagKey]*tokens{},
		dynNames:   map[string]bool{},
	}
	for _, u := range uniques {
		n.uniques.get(u)
	}
	n.collect(frames)
	out := make([]Frame, len(frames))
	for i, f := range frames {
		out[i] = n.frame(f)
	}
	return out
}

// collect numbers the generated strings: connection by connection, what the client
// sent first, then what the intermediary sent, so that the numbering does not depend
// on how the two directions interleaved.
func (n *normalizer) collect(frames []described) {
	// Which links asked for a dynamic node.
	for _, f := range frames {
		if f.Dir == FromClient && f.Type == "attach" {
			for _, x := range f.Fields {
				if (x.Name == "source.dynamic" || x.Name == "target.dynamic") && x.Value == "true" {
					if name, ok := f.Get("name"); ok {
						n.dynNames[name] = true
					}
				}
			}
		}
	}
	conns := map[int]bool{}
	var order []int
	for _, f := range frames {
		if !conns[f.Conn] {
			conns[f.Conn] = true
			order = append(order, f.Conn)
		}
	}
	slices.Sort(order)
	for _, c := range order {
		for _, dir := range []Direction{FromClient, FromPeer} {
			for _, f := range frames {
				if f.Conn != c || f.Dir != dir {
					continue
				}
				for _, x := range f.Fields {
					switch x.role {
					case roleContainer:
						n.containers.get(x.Value)
					case roleName:
						n.names.get(x.Value)
					case roleMsgID:
						n.ids.get(x.Value)
					case roleAddress:
						if dir == FromPeer && f.Type == "attach" && n.isDynamicReply(f, x.Name) {
							n.dyns.get(x.Value)
						}
					}
				}
			}
		}
	}
	var pairs, shapePairs []string
	add := func(t *tokens, shape bool) {
		for raw, tok := range t.m {
			// Link names chosen by people ("selector-filter") are words that may
			// occur in other strings; only generated ones are replaced there.
			if len(raw) < 4 || (t == n.names && !mixedName(raw)) {
				continue
			}
			pairs = append(pairs, raw, tok)
			if shape {
				shapePairs = append(shapePairs, raw, tok)
			}
		}
	}
	add(n.dyns, false)
	add(n.containers, true)
	add(n.names, true)
	add(n.uniques, true)
	add(n.ids, true)
	n.replacer = newLongestFirstReplacer(pairs)
	n.shapeReplacer = newLongestFirstReplacer(shapePairs)
}

// isDynamicReply reports whether field name of the intermediary's attach f is the
// address of a dynamic node the client asked for.
func (n *normalizer) isDynamicReply(f described, name string) bool {
	link, _ := f.Get("name")
	if !n.dynNames[link] {
		return false
	}
	return name == "source.address" || name == "target.address"
}

// newLongestFirstReplacer builds a Replacer that prefers the longest match.
func newLongestFirstReplacer(pairs []string) *strings.Replacer {
	type pair struct{ old, new string }
	ps := make([]pair, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ps = append(ps, pair{pairs[i], pairs[i+1]})
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if len(a.old) != len(b.old) {
			return len(b.old) - len(a.old)
		}
		return strings.Compare(a.old, b.old)
	})
	flat := make([]string, 0, len(pairs))
	for _, p := range ps {
		flat = append(flat, p.old, p.new)
	}
	return strings.NewReplacer(flat...)
}

func (n *normalizer) owned(m map[ownerKey]*tokens, conn int, owner Direction, prefix string) *tokens {
	k := ownerKey{conn, owner}
	t := m[k]
	if t == nil {
		t = newTokens(prefix)
		m[k] = t
	}
	return t
}

func (n *normalizer) frame(f described) Frame {
	out := f.Frame
	out.Fields = make([]Field, 0, len(f.Fields))
	if f.Type == "begin" {
		// The channel a side begins a session on is its own; number it.
		n.owned(n.channels, f.Conn, f.Dir, "#").get(strconv.Itoa(int(f.Channel)))
	}
	linkTok := ""
	if f.lane.kind == laneLink {
		linkTok = n.names.get(f.lane.link)
	}
	for _, x := range f.Fields {
		y := x
		switch x.role {
		case roleLiteral, roleLoose, roleApprox:
			y.Value = n.replacer.Replace(x.Value)
		case roleContainer:
			y.Value = n.containers.get(x.Value)
		case roleName:
			y.Value = n.names.get(x.Value)
		case roleHandle:
			y.Value = n.owned(n.handles, f.Conn, x.owner, "#").get(x.Value)
		case roleChannel:
			y.Value = n.owned(n.channels, f.Conn, x.owner, "#").get(x.Value)
		case roleRel:
			y.Value = x.rel
		case roleBase:
			y.Value = "<n>"
		case roleTag:
			k := tagKey{f.Conn, f.Dir, f.lane.link}
			t := n.tags[k]
			if t == nil {
				t = newTokens("tag")
				n.tags[k] = t
			}
			y.Value = t.get(x.Value)
		case roleAddress:
			y.Value = n.replacer.Replace(x.Value)
		case roleMsgID:
			y.Value = n.ids.get(x.Value)
		case roleTime:
			y.Value = "<time>"
		case roleVolatile:
			y.Value = "<" + kindOf(x.Value) + ">"
		}
		out.Fields = append(out.Fields, y)
		if x.role == roleAddress && f.Dir == FromPeer && f.Type == "attach" && n.isDynamicReply(f, x.Name) {
			out.Fields = append(out.Fields, Field{Name: x.Name + ".shape", Value: n.shape(x.Value), role: roleShape})
		}
	}
	switch f.lane.kind {
	case laneConn:
		out.Lane = "connection"
	case laneSession:
		out.Lane = "session " + n.owned(n.channels, f.Conn, FromClient, "#").get(sessionChannel(f.lane.sess))
	case laneLink:
		out.Lane = "link " + linkTok
	}
	return out
}

// sessionChannel is the key of a session in the client's channel table.
func sessionChannel(sess int) string {
	if sess >= 1<<16 {
		return "peer-" + strconv.Itoa(sess-1<<16)
	}
	return strconv.Itoa(sess)
}

// kindOf names the kind of a volatile value: "int" for numbers, "string" otherwise.
func kindOf(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return "int"
	}
	return "string"
}

var (
	uuidRE     = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	alnumRunRE = regexp.MustCompile(`<[^<>]*>|[A-Za-z0-9+=_-]+`)
)

// shape shows how a generated address is built: known names replaced by their tokens
// (<container2>, <link3>), uuids by <uuid>, and runs of letters and digits that look
// generated by <x>.
func (n *normalizer) shape(addr string) string {
	s := n.shapeReplacer.Replace(addr)
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	return alnumRunRE.ReplaceAllStringFunc(s, func(run string) string {
		if strings.HasPrefix(run, "<") || !looksGenerated(run) {
			return run
		}
		return "<x>"
	})
}

// mixedName reports whether a name has digits or capitals among letters, as generated
// names (go-amqp's base64 link names) have and names written by people mostly do not.
func mixedName(s string) bool {
	return len(s) >= 8 && strings.ContainsAny(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// looksGenerated reports whether a run of letters and digits looks made up by a
// program rather than written by a person.
func looksGenerated(run string) bool {
	var letters, digits, upper, lower, other int
	for _, r := range run {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r >= 'A' && r <= 'Z':
			letters++
			upper++
		case r >= 'a' && r <= 'z':
			letters++
			lower++
		default:
			other++
		}
	}
	switch {
	case len(run) >= 16:
		return true
	case other > 0 && len(run) >= 6: // base64 and similar alphabets
		return true
	case digits > 0 && letters > 0 && len(run) >= 6:
		return true
	case letters == 0 && len(run) >= 6:
		return true
	case upper > 0 && lower > 0 && len(run) >= 10:
		return true
	}
	return false
}
