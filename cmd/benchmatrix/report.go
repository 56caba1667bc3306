package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what a run measured.
type report struct {
	cfg         *config
	cells       []cell
	results     []*result
	unavailable map[string]string
	versions    [][2]string // intermediary → what runs
	commit      string
	began       time.Time
	ended       time.Time
	failures    int
}

// summary is a cell over the rounds: medians, and the range of the rate.
type summary struct {
	c                     cell
	n                     int // rounds that succeeded
	rate, rateMin, rateMx float64
	p50, p99              float64
	interCPU, interCtx    float64
	clientCPU, clientCtx  float64
	syscalls              map[string]float64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (rep *report) ok(wl, target string) []*result {
	var out []*result
	for _, r := range rep.results {
		if r.Workload == wl && r.Target == target && r.Err == "" {
			out = append(out, r)
		}
	}
	return out
}

func (rep *report) summaries() []summary {
	var out []summary
	for _, c := range rep.cells {
		rs := rep.ok(c.wl.name, c.target)
		s := summary{c: c, n: len(rs)}
		if len(rs) > 0 {
			col := func(f func(*result) float64) float64 {
				v := make([]float64, len(rs))
				for i, r := range rs {
					v[i] = f(r)
				}
				return median(v)
			}
			s.rate = col(func(r *result) float64 { return r.Rate })
			s.rateMin, s.rateMx = math.Inf(1), math.Inf(-1)
			for _, r := range rs {
				s.rateMin, s.rateMx = math.Min(s.rateMin, r.Rate), math.Max(s.rateMx, r.Rate)
			}
			s.p50 = col(func(r *result) float64 { return r.P50us })
			s.p99 = col(func(r *result) float64 { return r.P99us })
			s.interCPU = col(func(r *result) float64 { return r.InterCPUus })
			s.interCtx = col(func(r *result) float64 { return r.InterCtxSw })
			s.clientCPU = col(func(r *result) float64 { return r.ClientCPUus })
			s.clientCtx = col(func(r *result) float64 { return r.ClientCtxSw })
			if rs[0].Syscalls != nil {
				s.syscalls = map[string]float64{}
				for name := range rs[0].Syscalls {
					s.syscalls[name] = col(func(r *result) float64 { return r.Syscalls[name] })
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// ratioSpec is a ratio of two cells' rates, measured round by round.
type ratioSpec struct {
	label            string
	numWl, numTarget string
	denWl, denTarget string
	target           float64 // the design's target; 0: none
}

func fakeVsReal(fake, real string, targeted ...string) []ratioSpec {
	var out []ratioSpec
	for _, wl := range []string{"passthrough", "roundtrip", "go-calls", "go-calls16", "go-casts", "go-notify", "py-calls", "py-calls16"} {
		var target float64
		if slices.Contains(targeted, wl) {
			target = 2
		}
		out = append(out, ratioSpec{label: fake + " / " + real + ", " + wl, numWl: wl, numTarget: fake, denWl: wl, denTarget: real, target: target})
	}
	return out
}

var ratioSpecs = slices.Concat(
	fakeVsReal("fakerouter", "qdrouterd", "passthrough", "roundtrip"),
	fakeVsReal("fakebroker", "qpidd", "passthrough", "roundtrip"),
	[]ratioSpec{
		{label: "fakebroker / rabbitmq, roundtrip", numWl: "roundtrip", numTarget: "fakebroker", denWl: "roundtrip", denTarget: "rabbitmq"},
		{label: "Go driver sequential call on fakerouter / floor", numWl: "go-calls", numTarget: "fakerouter", denWl: "floor", denTarget: "floor", target: 0.7},
		{label: "Go driver sequential call on qdrouterd / floor", numWl: "go-calls", numTarget: "qdrouterd", denWl: "floor", denTarget: "floor"},
		{label: "go-amqp round trip on fakerouter / floor", numWl: "roundtrip", numTarget: "fakerouter", denWl: "floor", denTarget: "floor"},
		{label: "go-amqp round trip on qdrouterd / floor", numWl: "roundtrip", numTarget: "qdrouterd", denWl: "floor", denTarget: "floor"},
		{label: "Go / Python sequential calls, fakerouter", numWl: "go-calls", numTarget: "fakerouter", denWl: "py-calls", denTarget: "fakerouter", target: 5},
		{label: "Go / Python 16 callers, fakerouter", numWl: "go-calls16", numTarget: "fakerouter", denWl: "py-calls16", denTarget: "fakerouter", target: 15},
		{label: "Go / Python sequential calls, qdrouterd", numWl: "go-calls", numTarget: "qdrouterd", denWl: "py-calls", denTarget: "qdrouterd"},
		{label: "Go / Python 16 callers, qdrouterd", numWl: "go-calls16", numTarget: "qdrouterd", denWl: "py-calls16", denTarget: "qdrouterd"},
		{label: "Go / Python sequential calls, fakebroker", numWl: "go-calls", numTarget: "fakebroker", denWl: "py-calls", denTarget: "fakebroker"},
		{label: "Go / Python 16 callers, fakebroker", numWl: "go-calls16", numTarget: "fakebroker", denWl: "py-calls16", denTarget: "fakebroker"},
		{label: "Go / Python sequential calls, qpidd", numWl: "go-calls", numTarget: "qpidd", denWl: "py-calls", denTarget: "qpidd"},
		{label: "Go / Python 16 callers, qpidd", numWl: "go-calls16", numTarget: "qpidd", denWl: "py-calls16", denTarget: "qpidd"},
	},
)

// ratio is a ratioSpec measured: the median of the rounds' ratios and their range.
type ratio struct {
	spec          ratioSpec
	n             int
	med, min, max float64
}

func (rep *report) ratios() []ratio {
	var out []ratio
	for _, spec := range ratioSpecs {
		var v []float64
		for round := 1; round <= rep.cfg.rounds; round++ {
			num, den := rep.find(round, spec.numWl, spec.numTarget), rep.find(round, spec.denWl, spec.denTarget)
			if num != nil && den != nil && den.Rate > 0 {
				v = append(v, num.Rate/den.Rate)
			}
		}
		if len(v) == 0 {
			continue
		}
		out = append(out, ratio{spec: spec, n: len(v), med: median(v), min: slices.Min(v), max: slices.Max(v)})
	}
	return out
}

func (rep *report) find(round int, wl, target string) *result {
	for _, r := range rep.results {
		if r.Round == round && r.Workload == wl && r.Target == target && r.Err == "" {
			return r
		}
	}
	return nil
}

func (r ratio) verdict() string {
	if r.spec.target == 0 {
		return ""
	}
	if r.med >= r.spec.target {
		return "met"
	}
	return "not met"
}

func (r ratio) targetText() string {
	if r.spec.target == 0 {
		return "—"
	}
	return "≥ " + fmtRatio(r.spec.target)
}

// loadRange returns the lowest and highest 1-minute load average at the cells' starts.
func (rep *report) loadRange() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range rep.results {
		lo, hi = math.Min(lo, r.Load1), math.Max(hi, r.Load1)
	}
	return lo, hi
}

// Number formats: rates with thin groups of thousands, latencies and CPU in µs.
func fmtRate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	s := fmt.Sprintf("%.0f", v)
	if v < 100 {
		s = fmt.Sprintf("%.1f", v)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v) || v == 0:
		return "—"
	case v >= 100:
		return fmtRate(v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func fmtFrac(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtRatio(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.1f×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

// The system calls grouped in the --strace columns.
var syscallGroups = []struct {
	name  string
	calls []string
}{
	{"writes", []string{"write", "writev", "sendmsg", "sendto", "sendmmsg", "pwrite64"}},
	{"reads", []string{"read", "readv", "recvmsg", "recvfrom", "recvmmsg", "pread64"}},
	{"failed reads", []string{"read errors", "readv errors", "recvmsg errors", "recvfrom errors", "recvmmsg errors"}},
	{"futex", []string{"futex"}},
	{"epoll", []string{"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6"}},
	{"total", []string{"total"}},
}

func groupSyscalls(m map[string]float64, calls []string) float64 {
	var n float64
	for _, c := range calls {
		n += m[c]
	}
	return n
}

// write writes the report as Markdown (md) or as aligned text.
func (rep *report) write(w io.Writer, md bool) {
	lo, hi := rep.loadRange()
	sums := rep.summaries()
	ratios := rep.ratios()
	cmdline := "go run ./cmd/benchmatrix"
	if len(rep.cfg.args) > 0 {
		cmdline += " " + strings.Join(rep.cfg.args, " ")
	}
	if md {
		fmt.Fprintf(w, "Command: `%s` — %s, %d round(s), %s warm-up + %s per cell, %d-byte payloads, commit %s.\n",
			cmdline, rep.began.Format("2006-01-02 15:04 MST"), rep.cfg.rounds, rep.cfg.warmup, rep.cfg.duration, rep.cfg.size, rep.commit)
		fmt.Fprintf(w, "Machine: %s; 1-minute load average %.2f–%.2f at the cells' starts; the run took %s.\n\n",
			machine(), lo, hi, rep.ended.Sub(rep.began).Round(time.Second))
		fmt.Fprintln(w, "| workload | intermediary | rate (median) | range over rounds | p50 µs | p99 µs | intermediary CPU µs/op | intermediary ctx sw/op | client CPU µs/op |")
		fmt.Fprintln(w, "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
	} else {
		fmt.Fprintf(w, "\n%s — %d round(s), %s + %s per cell; load %.2f–%.2f; %s\n\n", cmdline, rep.cfg.rounds, rep.cfg.warmup, rep.cfg.duration, lo, hi, machine())
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !md {
		fmt.Fprintln(tw, "workload\tintermediary\trate\tunit\tmin–max\tp50 µs\tp99 µs\tinter CPU µs/op\tinter ctxsw/op\tclient CPU µs/op\t")
	}
	for _, s := range sums {
		if s.n == 0 {
			what := "not measured"
			if slices.ContainsFunc(rep.results, func(r *result) bool { return r.Workload == s.c.wl.name && r.Target == s.c.target }) {
				what = "failed"
			}
			if md {
				fmt.Fprintf(w, "| %s | %s | %s | | | | | | |\n", s.c.wl.name, s.c.target, what)
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t\t\t\n", s.c.wl.name, s.c.target, what)
			}
			continue
		}
		p50, p99 := "—", "—"
		if s.c.wl.latency {
			p50, p99 = fmtNum(s.p50), fmtNum(s.p99)
		}
		rng := fmtRate(s.rateMin) + "–" + fmtRate(s.rateMx)
		if md {
			fmt.Fprintf(w, "| %s | %s | %s %s | %s | %s | %s | %s | %s | %s |\n", s.c.wl.name, s.c.target, fmtRate(s.rate), s.c.wl.unit,
				rng, p50, p99, fmtNum(s.interCPU), fmtFrac(s.interCtx), fmtNum(s.clientCPU))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.c.wl.name, s.c.target, fmtRate(s.rate), s.c.wl.unit,
				rng, p50, p99, fmtNum(s.interCPU), fmtFrac(s.interCtx), fmtNum(s.clientCPU))
		}
	}
	_ = tw.Flush()

	if slices.ContainsFunc(sums, func(s summary) bool { return s.syscalls != nil }) {
		fmt.Fprintln(w)
		if md {
			fmt.Fprintln(w, "System calls of the intermediary per operation (strace -f -c over the measured window; rates of this run are not figures):")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| workload | intermediary | writes | reads | of which failed (EAGAIN) | futex | epoll/poll | all |")
			fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
		} else {
			fmt.Fprintln(tw, "workload\tintermediary\twrites/op\treads/op\tfailed reads/op\tfutex/op\tepoll/op\tall/op\t")
		}
		for _, s := range sums {
			if s.syscalls == nil {
				continue
			}
			v := make([]string, len(syscallGroups))
			for i, g := range syscallGroups {
				v[i] = fmtFrac(groupSyscalls(s.syscalls, g.calls))
			}
			if md {
				fmt.Fprintf(w, "| %s | %s | %s |\n", s.c.wl.name, s.c.target, strings.Join(v, " | "))
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t\n", s.c.wl.name, s.c.target, strings.Join(v, "\t"))
			}
		}
		_ = tw.Flush()
	}

	if len(ratios) > 0 {
		fmt.Fprintln(w)
		if md {
			fmt.Fprintln(w, "Ratios of rates, each the median of the same round's ratios (range over the rounds):")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| ratio | median | range | target | |")
			fmt.Fprintln(w, "| --- | ---: | --- | --- | --- |")
		} else {
			fmt.Fprintln(tw, "ratio\tmedian\trange\ttarget\t\t")
		}
		for _, r := range ratios {
			rng := fmtRatio(r.min) + "–" + fmtRatio(r.max)
			if md {
				fmt.Fprintf(w, "| %s | **%s** | %s | %s | %s |\n", r.spec.label, fmtRatio(r.med), rng, r.targetText(), r.verdict())
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.spec.label, fmtRatio(r.med), rng, r.targetText(), r.verdict())
			}
		}
		_ = tw.Flush()
	}

	fmt.Fprintln(w)
	if md {
		fmt.Fprintln(w, "Intermediaries:")
		fmt.Fprintln(w)
		for _, v := range rep.versions {
			fmt.Fprintf(w, "- %s: %s\n", v[0], v[1])
		}
	} else {
		for _, v := range rep.versions {
			fmt.Fprintf(w, "%s: %s\n", v[0], v[1])
		}
	}
	var missing []string
	for name, why := range rep.unavailable {
		missing = append(missing, name+": "+why)
	}
	slices.Sort(missing)
	for _, m := range missing {
		if md {
			fmt.Fprintf(w, "- not run: %s\n", firstLine(m))
		} else {
			fmt.Fprintf(w, "not run: %s\n", firstLine(m))
		}
	}
	if rep.failures > 0 {
		for _, r := range rep.results {
			if r.Err != "" {
				fmt.Fprintf(w, "failed: round %d, %s on %s: %s\n", r.Round, r.Workload, r.Target, firstLine(r.Err))
			}
		}
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// machine describes this machine in a line: CPU model, cores, Go and the kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d CPUs (runtime.NumCPU), %s%s", model, runtime.NumCPU(), runtime.Version(), kernel)
}

// writeReports prints the text report on stdout and writes --markdown and --json.
func (h *harness) writeReports(rep *report) error {
	rep.write(h.out, false)
	if h.cfg.markdown != "" {
		if h.cfg.markdown == "-" {
			fmt.Fprintln(h.out)
			rep.write(h.out, true)
		} else {
			f, err := os.Create(h.cfg.markdown)
			if err != nil {
				return err
			}
			rep.write(f, true)
			if err := f.Close(); err != nil {
				return err
			}
			h.logf("wrote %s", h.cfg.markdown)
		}
	}
	if h.cfg.jsonOut != "" {
		b, err := json.MarshalIndent(rep.results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(h.cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
		h.logf("wrote %s", h.cfg.jsonOut)
	}
	return nil
}
