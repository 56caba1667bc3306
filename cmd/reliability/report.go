package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// measure is one figure of a result: a number (with its unit), or a text when the
// figure is not a number (an outcome, a condition).
type measure struct {
	name  string
	value float64
	unit  string
	text  string
	cmp   bool // fake/real is worth showing
}

func num(name string, v float64, unit string) measure {
	return measure{name: name, value: v, unit: unit}
}
func txt(name, s string) measure { return measure{name: name, text: s, value: math.NaN()} }

// cmp marks a figure whose ratio fake/real means something.
func cmp(m measure) measure {
	m.cmp = true
	return m
}

func (m measure) String() string {
	if m.text != "" || math.IsNaN(m.value) {
		return m.text
	}
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", m.value), "0"), ".")
	if m.value >= 100 || m.value == math.Trunc(m.value) {
		s = fmt.Sprintf("%.0f", m.value)
	}
	if m.unit != "" {
		s += " " + m.unit
	}
	return s
}

// result is what one probe measured on one intermediary.
type result struct {
	probe    string
	target   string
	measures []measure
	err      error // the probe could not run (its figures are partial)
}

func (r *result) add(ms ...measure) { r.measures = append(r.measures, ms...) }

func (r *result) get(name string) (measure, bool) {
	for _, m := range r.measures {
		if m.name == name {
			return m, true
		}
	}
	return measure{}, false
}

// writeText prints results as lines: probe, target, then each figure.
func writeText(w io.Writer, rs []*result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%s on %s:\n", r.probe, r.target)
		for _, m := range r.measures {
			fmt.Fprintf(w, "  %-40s %s\n", m.name, m)
		}
		if r.err != nil {
			fmt.Fprintf(w, "  error: %v\n", r.err)
		}
	}
}

// writeMarkdown prints one table per probe: a row per figure, a column per
// intermediary, and fake/real where both figures are numbers.
func writeMarkdown(w io.Writer, rs []*result) {
	var probes []string
	byProbe := map[string][]*result{}
	for _, r := range rs {
		if _, ok := byProbe[r.probe]; !ok {
			probes = append(probes, r.probe)
		}
		byProbe[r.probe] = append(byProbe[r.probe], r)
	}
	for _, p := range probes {
		cols := byProbe[p]
		fmt.Fprintf(w, "**%s**\n\n", p)
		head := []string{"figure"}
		for _, c := range cols {
			head = append(head, c.target)
		}
		var pairs [][2]int
		if slices.ContainsFunc(cols, func(r *result) bool { return slices.ContainsFunc(r.measures, func(m measure) bool { return m.cmp }) }) {
			pairs = ratioPairs(cols)
		}
		for _, pr := range pairs {
			head = append(head, fmt.Sprintf("%s / %s", cols[pr[0]].target, cols[pr[1]].target))
		}
		row(w, head)
		sep := make([]string, len(head))
		for i := range sep {
			sep[i] = "---"
		}
		row(w, sep)
		for _, name := range measureNames(cols) {
			cells := []string{name}
			for _, c := range cols {
				m, ok := c.get(name)
				if !ok {
					cells = append(cells, "—")
					continue
				}
				cells = append(cells, strings.ReplaceAll(m.String(), "|", `\|`))
			}
			for _, pr := range pairs {
				cells = append(cells, ratio(cols[pr[0]], cols[pr[1]], name))
			}
			row(w, cells)
		}
		for _, c := range cols {
			if c.err != nil {
				fmt.Fprintf(w, "\n%s: error: %v\n", c.target, c.err)
			}
		}
		fmt.Fprintln(w)
	}
}

// ratioPairs returns the indexes of (fake, real) columns present in cols, for the
// figures marked cmp.
func ratioPairs(cols []*result) [][2]int {
	var out [][2]int
	for i, c := range cols {
		real, ok := realOf[c.target]
		if !ok {
			continue
		}
		for j, d := range cols {
			if d.target == real {
				out = append(out, [2]int{i, j})
			}
		}
	}
	return out
}

func ratio(a, b *result, name string) string {
	x, ok1 := a.get(name)
	y, ok2 := b.get(name)
	if !ok1 || !ok2 || !x.cmp || !y.cmp || x.text != "" || y.text != "" || math.IsNaN(x.value) || math.IsNaN(y.value) || y.value == 0 || x.unit != y.unit {
		return ""
	}
	return fmt.Sprintf("%.2f", x.value/y.value)
}

func measureNames(cols []*result) []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range cols {
		for _, m := range c.measures {
			if !seen[m.name] {
				seen[m.name] = true
				names = append(names, m.name)
			}
		}
	}
	return names
}

func row(w io.Writer, cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
