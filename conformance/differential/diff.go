package differential

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Op says how a frame of one trace relates to the other trace.
type Op int

const (
	// Same: the frame is in both traces, equal in every compared field.
	Same Op = iota
	// Changed: both traces have a frame of this type here, with fields that differ.
	Changed
	// OnlyA: the frame is in trace A only (missing from B).
	OnlyA
	// OnlyB: the frame is in trace B only (extra in B).
	OnlyB
)

// String returns "same", "changed", "only-a" or "only-b".
func (o Op) String() string {
	switch o {
	case Same:
		return "same"
	case Changed:
		return "changed"
	case OnlyA:
		return "only-a"
	case OnlyB:
		return "only-b"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// FieldDiff is one field that differs between two aligned frames.
type FieldDiff struct {
	// Name is the field's name.
	Name string
	// A and B are the values; InA and InB say whether each frame has the field.
	A, B     string
	InA, InB bool
	// Loose marks a field that is shown but not compared (an error description);
	// a loose difference alone does not make the frames differ.
	Loose bool
}

// String formats the difference as "name: A=x B=y".
func (d FieldDiff) String() string {
	v := func(s string, in bool) string {
		if !in {
			return "(absent)"
		}
		return quote(s)
	}
	s := fmt.Sprintf("%s: A=%s B=%s", d.Name, v(d.A, d.InA), v(d.B, d.InB))
	if d.Loose {
		s += " (not compared)"
	}
	return s
}

// Row is one line of an aligned lane: a frame of A, of B, or both.
type Row struct {
	// Op says how the frames relate.
	Op Op
	// A and B are the frames (nil when the side has none).
	A, B *Frame
	// Fields lists the fields that differ (for Changed), or the loose fields that
	// differ between frames otherwise Same.
	Fields []FieldDiff
	// Moved marks a Same row whose frames sit at different places in their lanes
	// (a flow sent before a transfer in one run and after it in the other).
	Moved bool
}

// Dir is the direction of the row's frames.
func (r Row) Dir() Direction {
	if r.A != nil {
		return r.A.Dir
	}
	return r.B.Dir
}

// Type is the type of the row's frames.
func (r Row) Type() string {
	if r.A != nil {
		return r.A.Type
	}
	return r.B.Type
}

// differs reports whether the row is a difference in what the intermediaries sent.
func (r Row) differs(strict bool) bool {
	if r.Dir() != FromPeer {
		return false
	}
	return r.Op != Same || (strict && r.Moved)
}

// Lane is the aligned frames of one lane of a connection.
type Lane struct {
	// Name is "connection", "session <channel>" or "link <name>".
	Name string
	// Rows are the aligned frames, in the order of trace A.
	Rows []Row
}

// Conn is the aligned frames of one connection.
type Conn struct {
	// N numbers the connection, from 1, in the order the scenario opened them.
	N int
	// Lanes are the connection's lanes in the order they were first used.
	Lanes []Lane
}

// Report is the outcome of running one scenario against two intermediaries: their
// frames aligned connection by connection and lane by lane, and what differs.
type Report struct {
	// Scenario names the scenario.
	Scenario string
	// A and B are the intermediaries compared.
	A, B Target
	// ErrA and ErrB are the scenario's own errors on each side ("" when it ran to
	// its end): what the client saw go wrong, such as a message that never came.
	ErrA, ErrB string
	// NotesA and NotesB are what the scenario noted on each side (Env.Note).
	NotesA, NotesB []string
	// Conns are the aligned connections.
	Conns []Conn
	// StrictOrder is set when moved frames count as differences (Options.StrictOrder).
	StrictOrder bool
}

// Equal reports whether the intermediaries behaved alike: every frame they sent has
// its equal on the other side, and the scenario ended the same way on both. Frames
// the client sent are not compared (they follow from the intermediary's), nor are
// loose fields, nor (unless StrictOrder) the order of frames within a lane.
func (r Report) Equal() bool {
	return len(r.Differences()) == 0
}

// Differences lists what differs, one line each: a frame the intermediary sent in
// one trace only, or sent differently, or a scenario that ended otherwise.
func (r Report) Differences() []string {
	var out []string
	if r.ErrA != r.ErrB {
		out = append(out, fmt.Sprintf("scenario result: A=%s B=%s", errText(r.ErrA), errText(r.ErrB)))
	}
	for _, c := range r.Conns {
		for _, l := range c.Lanes {
			for _, row := range l.Rows {
				if !row.differs(r.StrictOrder) {
					continue
				}
				where := fmt.Sprintf("connection %d, %s: ", c.N, l.Name)
				switch {
				case row.Op == OnlyA:
					out = append(out, where+"only in A: "+row.A.body())
				case row.Op == OnlyB:
					out = append(out, where+"only in B: "+row.B.body())
				case row.Op == Changed:
					var fs []string
					for _, d := range row.Fields {
						if !d.Loose {
							fs = append(fs, d.String())
						}
					}
					out = append(out, where+row.Type()+" differs: "+strings.Join(fs, "; "))
				default:
					out = append(out, where+"moved: "+row.A.body())
				}
			}
		}
	}
	return out
}

func errText(s string) string {
	if s == "" {
		return "ok"
	}
	return strconv.Quote(s)
}

// String prints the report: a header, then every connection and lane with the
// frames of both sides aligned, marked
//
//	"  " same in both    "~ " changed (the differing fields follow)
//	"- " only in A       "+ " only in B       "> " same, but at another place in B
//	"? " same, but a field that is not compared (a description) differs
//
// followed by the list of differences.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s\n  A = %s (%s)\n  B = %s (%s)\n", r.Scenario, r.A.Name, r.A.URL, r.B.Name, r.B.URL)
	fmt.Fprintf(&b, "  scenario result: A=%s B=%s\n", errText(r.ErrA), errText(r.ErrB))
	notes := func(side string, ns []string) {
		for _, n := range ns {
			fmt.Fprintf(&b, "  note %s: %s\n", side, n)
		}
	}
	if !slices.Equal(r.NotesA, r.NotesB) {
		notes("A", r.NotesA)
		notes("B", r.NotesB)
	} else {
		notes("A,B", r.NotesA)
	}
	for _, c := range r.Conns {
		fmt.Fprintf(&b, "connection %d\n", c.N)
		for _, l := range c.Lanes {
			fmt.Fprintf(&b, "  %s\n", l.Name)
			for _, row := range l.Rows {
				writeRow(&b, row)
			}
		}
	}
	diffs := r.Differences()
	if len(diffs) == 0 {
		b.WriteString("EQUAL: the intermediaries sent the same frames\n")
	} else {
		fmt.Fprintf(&b, "DIFFERENT: %d differences\n", len(diffs))
		for _, d := range diffs {
			fmt.Fprintf(&b, "  * %s\n", d)
		}
	}
	return b.String()
}

func writeRow(b *strings.Builder, row Row) {
	mark := "  "
	f := row.A
	switch {
	case row.Op == Changed:
		mark = "~ "
	case row.Op == OnlyA:
		mark = "- "
	case row.Op == OnlyB:
		mark, f = "+ ", row.B
	case row.Moved:
		mark = "> "
	case len(row.Fields) > 0:
		mark = "? "
	}
	fmt.Fprintf(b, "    %s%s %s\n", mark, f.Dir.Arrow(), f.body())
	for _, d := range row.Fields {
		fmt.Fprintf(b, "          %s\n", d)
	}
}

// diffTraces aligns two normalized traces.
func diffTraces(a, b []Frame, keepEmpty, strict bool) []Conn {
	type laneFrames struct {
		name string
		a, b []Frame
	}
	type connFrames struct {
		lanes []*laneFrames
		by    map[string]*laneFrames
	}
	conns := map[int]*connFrames{}
	add := func(f Frame, side int) {
		if f.Type == "empty" && !keepEmpty {
			return
		}
		c := conns[f.Conn]
		if c == nil {
			c = &connFrames{by: map[string]*laneFrames{}}
			conns[f.Conn] = c
		}
		l := c.by[f.Lane]
		if l == nil {
			l = &laneFrames{name: f.Lane}
			c.by[f.Lane] = l
			c.lanes = append(c.lanes, l)
		}
		if side == 0 {
			l.a = append(l.a, f)
		} else {
			l.b = append(l.b, f)
		}
	}
	for _, f := range a {
		add(f, 0)
	}
	for _, f := range b {
		add(f, 1)
	}
	var ns []int
	for n := range conns {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	var out []Conn
	for _, n := range ns {
		c := Conn{N: n}
		lanes := conns[n].lanes
		// Lanes that A has first, in A's order; then B's own.
		slices.SortStableFunc(lanes, func(x, y *laneFrames) int {
			return cmpBool(len(x.a) == 0, len(y.a) == 0)
		})
		for _, l := range lanes {
			c.Lanes = append(c.Lanes, Lane{Name: l.name, Rows: alignLane(canonical(l.a, strict), canonical(l.b, strict))})
		}
		out = append(out, c)
	}
	return out
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// canonical rewrites each run of consecutive flow and disposition frames one side
// sent in a lane into a form that does not depend on timing: a disposition of a range
// of deliveries becomes one disposition per delivery (an intermediary settling
// several deliveries in one frame, or in one frame each, says the same thing), a
// link flow followed in the run by another of the same link is dropped unless it
// drains or asks for an echo (the later one supersedes it), and the run is sorted.
// Unless strict, which keeps the frames as sent. Frames that crossed frames of the
// other side at another moment are found by alignLane as moved.
func canonical(fs []Frame, strict bool) []Frame {
	if strict {
		return fs
	}
	var out []Frame
	free := func(f Frame) bool { return f.Type == "flow" || f.Type == "disposition" }
	for i := 0; i < len(fs); {
		if !free(fs[i]) {
			out = append(out, fs[i])
			i++
			continue
		}
		j := i
		for j < len(fs) && free(fs[j]) && fs[j].Dir == fs[i].Dir {
			j++
		}
		var run []Frame
		for k := i; k < j; k++ {
			f := fs[k]
			switch {
			case f.Type == "disposition":
				run = append(run, expandRange(f)...)
			case f.Type == "flow" && supersededFlow(f, fs[k+1:j]):
			default:
				run = append(run, f)
			}
		}
		slices.SortStableFunc(run, func(x, y Frame) int {
			return strings.Compare(compareKey(x), compareKey(y))
		})
		out = append(out, run...)
		i = j
	}
	return out
}

// expandRange turns a disposition of first..last into one disposition per delivery.
func expandRange(f Frame) []Frame {
	first, _ := f.Get("first")
	last, ok := f.Get("last")
	a, err1 := strconv.Atoi(strings.TrimPrefix(first, "+"))
	b, err2 := strconv.Atoi(strings.TrimPrefix(last, "+"))
	if !ok || err1 != nil || err2 != nil || b < a || b-a > 1000 {
		return []Frame{f}
	}
	out := make([]Frame, 0, b-a+1)
	for id := a; id <= b; id++ {
		g := f
		g.Fields = nil
		for _, x := range f.Fields {
			switch x.Name {
			case "last":
				continue
			case "first":
				x.Value = relativeInt(id)
			}
			g.Fields = append(g.Fields, x)
		}
		out = append(out, g)
	}
	return out
}

func relativeInt(d int) string {
	if d >= 0 {
		return "+" + strconv.Itoa(d)
	}
	return strconv.Itoa(d)
}

// supersededFlow reports whether a link flow is followed, in rest, by another flow of
// the same link, and neither drains nor asks for an echo itself.
func supersededFlow(f Frame, rest []Frame) bool {
	h, ok := f.Get("handle")
	if !ok {
		return false
	}
	if _, drain := f.Get("drain"); drain {
		return false
	}
	if _, echo := f.Get("echo"); echo {
		return false
	}
	for _, g := range rest {
		if g.Type == "flow" {
			if h2, ok := g.Get("handle"); ok && h2 == h {
				return true
			}
		}
	}
	return false
}

// compareKey is the frame's compared content as text.
func compareKey(f Frame) string {
	var b strings.Builder
	b.WriteString(f.Dir.Arrow() + " " + f.Type)
	for _, x := range f.Fields {
		if x.Loose || x.role == roleApprox {
			continue
		}
		b.WriteString(" " + x.Name + "=" + x.Value)
	}
	return b.String()
}

// fieldsDiffer compares two frames' fields; it returns every difference, loose ones
// included, and whether any compared field differs.
func fieldsDiffer(a, b Frame) ([]FieldDiff, bool) {
	var out []FieldDiff
	hard := false
	bi := map[string]Field{}
	for _, x := range b.Fields {
		bi[x.Name] = x
	}
	seen := map[string]bool{}
	for _, x := range a.Fields {
		seen[x.Name] = true
		y, ok := bi[x.Name]
		switch {
		case !ok:
			out = append(out, FieldDiff{Name: x.Name, A: x.Value, InA: true, Loose: x.Loose})
			hard = hard || !x.Loose
		case !sameValue(x, y):
			loose := x.Loose || y.Loose
			out = append(out, FieldDiff{Name: x.Name, A: x.Value, B: y.Value, InA: true, InB: true, Loose: loose})
			hard = hard || !loose
		}
	}
	for _, y := range b.Fields {
		if !seen[y.Name] {
			out = append(out, FieldDiff{Name: y.Name, B: y.Value, InB: true, Loose: y.Loose})
			hard = hard || !y.Loose
		}
	}
	return out, hard
}

// sameValue compares two values of one field; a remaining ttl compares within a
// tolerance (the time a broker held the message).
func sameValue(x, y Field) bool {
	if x.role == roleApprox && y.role == roleApprox {
		d := x.num - y.num
		if d < 0 {
			d = -d
		}
		return d <= max(2000, max(x.num, y.num)/20)
	}
	return x.Value == y.Value
}

// equalFrames reports whether two frames are the same in every compared field.
func equalFrames(a, b Frame) bool {
	if a.Dir != b.Dir || a.Type != b.Type || a.Problem != b.Problem {
		return false
	}
	_, hard := fieldsDiffer(a, b)
	return !hard
}

// maxAligned bounds the lanes aligned by longest common subsequence (its table is
// len(a)*len(b)); longer lanes are aligned position by position.
const maxAligned = 4 << 20

// alignLane aligns the frames of one lane of A and B: a longest common subsequence
// of equal frames; then frames equal but at other places (moved); then, between the
// common frames, frames of the same direction and type paired in order (changed);
// the rest are in one trace only.
func alignLane(a, b []Frame) []Row {
	pairs := lcs(a, b)
	matchA := make([]int, len(a))
	matchB := make([]int, len(b))
	for i := range matchA {
		matchA[i] = -1
	}
	for j := range matchB {
		matchB[j] = -1
	}
	for _, p := range pairs {
		matchA[p[0]], matchB[p[1]] = p[1], p[0]
	}
	movedA := make([]int, len(a))
	for i := range movedA {
		movedA[i] = -1
	}
	movedB := make([]bool, len(b))
	for i := range a {
		if matchA[i] >= 0 {
			continue
		}
		for j := range b {
			if matchB[j] < 0 && !movedB[j] && equalFrames(a[i], b[j]) {
				movedA[i], movedB[j] = j, true
				break
			}
		}
	}
	var rows []Row
	gap := func(a0, a1, b0, b1 int) {
		pairedB := map[int]bool{}
		for i := a0; i < a1; i++ {
			if movedA[i] >= 0 {
				fa, fb := a[i], b[movedA[i]]
				d, _ := fieldsDiffer(fa, fb)
				rows = append(rows, Row{Op: Same, A: &fa, B: &fb, Fields: d, Moved: true})
				continue
			}
			paired := -1
			for j := b0; j < b1; j++ {
				if !movedB[j] && !pairedB[j] && a[i].Dir == b[j].Dir && a[i].Type == b[j].Type {
					paired = j
					break
				}
			}
			fa := a[i]
			if paired < 0 {
				rows = append(rows, Row{Op: OnlyA, A: &fa})
				continue
			}
			pairedB[paired] = true
			fb := b[paired]
			d, _ := fieldsDiffer(fa, fb)
			rows = append(rows, Row{Op: Changed, A: &fa, B: &fb, Fields: d})
		}
		for j := b0; j < b1; j++ {
			if !movedB[j] && !pairedB[j] {
				fb := b[j]
				rows = append(rows, Row{Op: OnlyB, B: &fb})
			}
		}
	}
	pa, pb := 0, 0
	for _, p := range pairs {
		gap(pa, p[0], pb, p[1])
		fa, fb := a[p[0]], b[p[1]]
		d, _ := fieldsDiffer(fa, fb)
		rows = append(rows, Row{Op: Same, A: &fa, B: &fb, Fields: d})
		pa, pb = p[0]+1, p[1]+1
	}
	gap(pa, len(a), pb, len(b))
	return rows
}

// lcs returns the index pairs of a longest common subsequence of equal frames.
func lcs(a, b []Frame) [][2]int {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return nil
	}
	if n*m > maxAligned {
		var out [][2]int
		for i := 0; i < min(n, m); i++ {
			if equalFrames(a[i], b[i]) {
				out = append(out, [2]int{i, i})
			}
		}
		return out
	}
	eq := make([][]bool, n)
	for i := range eq {
		eq[i] = make([]bool, m)
		for j := range eq[i] {
			eq[i][j] = equalFrames(a[i], b[j])
		}
	}
	t := make([][]int32, n+1)
	for i := range t {
		t[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case eq[i][j]:
				t[i][j] = t[i+1][j+1] + 1
			case t[i+1][j] >= t[i][j+1]:
				t[i][j] = t[i+1][j]
			default:
				t[i][j] = t[i][j+1]
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case eq[i][j]:
			out = append(out, [2]int{i, j})
			i++
			j++
		case t[i+1][j] >= t[i][j+1]:
			i++
		default:
			j++
		}
	}
	return out
}
