package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// Languages of a workload's client.
const (
	langGo     = "go"
	langPython = "python"
	langRaw    = "raw"
)

// workload is one kind of measurement.
type workload struct {
	name    string
	title   string
	unit    string
	latency bool // it reports p50 and p99
	lang    string
	targets []string
}

var (
	// RabbitMQ 3.10 with go-amqp 1.7 stops delivering to the pass-through's receiver after
	// a few thousand messages when the sender pipelines (credit outstanding, nothing sent,
	// for good; timing-dependent), so it has the round trip only.
	passTargets   = []string{"fakerouter", "qdrouterd", "fakebroker", "qpidd"}
	amqpTargets   = []string{"fakerouter", "qdrouterd", "fakebroker", "qpidd", "rabbitmq"}
	driverTargets = []string{"fakerouter", "qdrouterd", "fakebroker", "qpidd"} // RabbitMQ refuses dynamic sources: no oslo traffic
)

var workloads = []*workload{
	{name: "passthrough", title: "go-amqp sender → intermediary → go-amqp receiver, unsettled", unit: "msgs/s", lang: langGo, targets: passTargets},
	{name: "roundtrip", title: "go-amqp request, a consumer answers on a second address, one at a time", unit: "round trips/s", latency: true, lang: langGo, targets: amqpTargets},
	{name: "go-calls", title: "Go driver, sequential calls (echo server in the client's process)", unit: "calls/s", latency: true, lang: langGo, targets: driverTargets},
	{name: "go-calls16", title: "Go driver, 16 concurrent callers", unit: "calls/s", latency: true, lang: langGo, targets: driverTargets},
	{name: "go-casts", title: "Go driver, casts (until the server has them all)", unit: "casts/s", lang: langGo, targets: driverTargets},
	{name: "go-notify", title: "Go driver, notifications one at a time, each acknowledged", unit: "notifications/s", lang: langGo, targets: driverTargets},
	{name: "py-calls", title: "Python oslo.messaging driver, sequential calls (server in the same process)", unit: "calls/s", latency: true, lang: langPython, targets: driverTargets},
	{name: "py-calls16", title: "Python oslo.messaging driver, 16 threads calling", unit: "calls/s", latency: true, lang: langPython, targets: driverTargets},
	{name: "floor", title: "plain TCP request and reply through a relay, three processes", unit: "round trips/s", latency: true, lang: langRaw, targets: []string{"floor"}},
}

func workloadNames() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return names
}

func workloadByName(name string) *workload {
	for _, w := range workloads {
		if w.name == name {
			return w
		}
	}
	return nil
}

// cell is a workload on an intermediary.
type cell struct {
	wl     *workload
	target string
}

func (c cell) String() string { return c.wl.name + " on " + c.target }

// selectCells returns the cells --only selects, workload by workload: those whose
// workload is named (or no workload is) and whose intermediary is named (or none is).
// "floor" is both a workload and its intermediary: naming it adds the floor to what the
// other names select, and alone it selects the floor only.
func selectCells(only []string) []cell {
	var wls, tgs []string
	floor := len(only) == 0
	for _, o := range only {
		switch {
		case o == "floor":
			floor = true
		case workloadByName(o) != nil:
			wls = append(wls, o)
		default:
			tgs = append(tgs, o)
		}
	}
	var cells []cell
	for _, w := range workloads {
		if w.name == "floor" {
			if floor {
				cells = append(cells, cell{wl: w, target: "floor"})
			}
			continue
		}
		if len(only) > 0 && len(wls) == 0 && len(tgs) == 0 { // --only floor
			continue
		}
		if len(wls) > 0 && !slices.Contains(wls, w.name) {
			continue
		}
		for _, t := range w.targets {
			if len(tgs) > 0 && !slices.Contains(tgs, t) {
				continue
			}
			cells = append(cells, cell{wl: w, target: t})
		}
	}
	return cells
}

// result is one cell of one round.
type result struct {
	Round    int       `json:"round"`
	Workload string    `json:"workload"`
	Target   string    `json:"target"`
	Start    time.Time `json:"start"`
	Load1    float64   `json:"load1"` // 1-minute load average as the cell started
	Ops      int64     `json:"ops"`
	Seconds  float64   `json:"seconds"`
	Rate     float64   `json:"rate"`
	P50us    float64   `json:"p50_us,omitempty"`
	P99us    float64   `json:"p99_us,omitempty"`
	// Per operation over the measured window, from /proc: the intermediary's process
	// (for the floor, the relay) and the client's.
	InterCPUus  float64 `json:"intermediary_cpu_us_per_op"`
	InterCtxSw  float64 `json:"intermediary_ctxsw_per_op"`
	ClientCPUus float64 `json:"client_cpu_us_per_op"`
	ClientCtxSw float64 `json:"client_ctxsw_per_op"`
	// With --strace: the intermediary's system calls per operation, by name.
	Syscalls map[string]float64 `json:"syscalls_per_op,omitempty"`
	Info     string             `json:"info,omitempty"`
	Err      string             `json:"error,omitempty"`
}

// harness runs the matrix.
type harness struct {
	cfg    *config
	out    io.Writer
	log    io.Writer
	logMu  sync.Mutex
	commit string

	tmp           string
	builtAmqp1kit string

	targets     map[string]*target
	started     []*target
	unavailable map[string]string // intermediary or "python" → why it cannot run

	python, pyScript string
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.log, "benchmatrix: "+format+"\n", args...)
}

func (h *harness) tempDir() (string, error) {
	if h.tmp == "" {
		dir, err := os.MkdirTemp("", "amqp1kit-benchmatrix-")
		if err != nil {
			return "", err
		}
		h.tmp = dir
	}
	return h.tmp, nil
}

// stopAll stops every intermediary started, in reverse order, and removes the
// temporary directory.
func (h *harness) stopAll() {
	for i := len(h.started) - 1; i >= 0; i-- {
		t := h.started[i]
		if err := t.stop(); err != nil {
			h.logf("stopping %s: %v", t.spec.name, err)
		}
	}
	h.started = nil
	if h.tmp != "" {
		_ = os.RemoveAll(h.tmp)
		h.tmp = ""
	}
}

// run starts what the selected cells need and runs the rounds.
func (h *harness) run(ctx context.Context) (*report, error) {
	h.targets = map[string]*target{}
	h.unavailable = map[string]string{}
	h.commit = gitCommit()
	cells := selectCells(h.cfg.only)
	if len(cells) == 0 {
		return nil, errors.New("--only selects no cell (see --list)")
	}
	needPython := false
	for _, c := range cells {
		if c.wl.lang == langPython {
			needPython = true
		}
	}
	if needPython {
		py, err := pyoslo.Python()
		if err == nil {
			h.python = py
			h.pyScript, err = modroot.File("testdata/peers/oslo_bench.py")
		}
		if err != nil {
			h.unavailable["python"] = err.Error()
			h.logf("the Python driver's cells are skipped: %v", err)
		}
	}
	for _, spec := range targetSpecs {
		if !slices.ContainsFunc(cells, func(c cell) bool { return c.target == spec.name }) {
			continue
		}
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		t0 := time.Now()
		t, err := spec.start(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return nil, errors.New("interrupted")
			}
			h.unavailable[spec.name] = err.Error()
			h.logf("%s cannot run here, its cells are skipped: %v", spec.name, err)
			continue
		}
		t.spec = spec
		h.targets[spec.name] = t
		h.started = append(h.started, t)
		h.logf("%s ready at %s (pid %d) in %s", spec.name, t.url, t.pid, time.Since(t0).Round(time.Millisecond))
	}
	var runnable []cell
	for _, c := range cells {
		if _, ok := h.targets[c.target]; !ok {
			continue
		}
		if c.wl.lang == langPython && h.unavailable["python"] != "" {
			continue
		}
		runnable = append(runnable, c)
	}
	rep := &report{cfg: h.cfg, cells: runnable, unavailable: h.unavailable, commit: h.commit, began: time.Now()}
	for _, t := range h.started {
		rep.versions = append(rep.versions, [2]string{t.spec.name, t.version})
	}
	if len(runnable) == 0 {
		return rep, errors.New("no selected cell can run here")
	}
	perCell := h.cfg.warmup + h.cfg.duration
	total := len(runnable) * h.cfg.rounds
	h.logf("%d cells × %d rounds, %s warm-up + %s each (≥ %s in all)", len(runnable), h.cfg.rounds,
		h.cfg.warmup, h.cfg.duration, (time.Duration(total) * perCell).Round(time.Second))
	done := 0
	for round := 1; round <= h.cfg.rounds; round++ {
		for _, c := range runnable {
			if ctx.Err() != nil {
				rep.ended = time.Now()
				return rep, errors.New("interrupted: the report holds the cells measured so far")
			}
			r := h.runCell(ctx, c, round)
			if ctx.Err() != nil {
				rep.ended = time.Now()
				return rep, errors.New("interrupted: the report holds the cells measured so far")
			}
			done++
			rep.results = append(rep.results, r)
			if r.Err != "" {
				rep.failures++
			}
			h.progress(rep, r, done, total)
		}
	}
	rep.ended = time.Now()
	return rep, nil
}

func (h *harness) progress(rep *report, r *result, done, total int) {
	wl := workloadByName(r.Workload)
	var b strings.Builder
	fmt.Fprintf(&b, "[round %d/%d, %d/%d] %-11s on %-10s ", r.Round, h.cfg.rounds, done, total, r.Workload, r.Target)
	if r.Err != "" {
		fmt.Fprintf(&b, "FAILED: %s", r.Err)
	} else {
		fmt.Fprintf(&b, "%9s %s", fmtRate(r.Rate), wl.unit)
		if wl.latency {
			fmt.Fprintf(&b, ", p50 %s µs", fmtNum(r.P50us))
		}
		fmt.Fprintf(&b, "; intermediary %s µs CPU, %s ctx sw /op", fmtNum(r.InterCPUus), fmtFrac(r.InterCtxSw))
		if r.Syscalls != nil {
			fmt.Fprintf(&b, "; syscalls/op %s", fmtFrac(r.Syscalls["total"]))
		}
	}
	elapsed := time.Since(rep.began)
	left := time.Duration(float64(elapsed) / float64(done) * float64(total-done))
	fmt.Fprintf(&b, " (load %.2f; %s, ~%s left)", r.Load1, elapsed.Round(time.Second), left.Round(time.Second))
	h.logMu.Lock()
	fmt.Fprintln(h.log, b.String())
	h.logMu.Unlock()
}

// workerLine is a line a cell's process prints on stdout.
type workerLine struct {
	Event   string  `json:"event"`
	Addr    string  `json:"addr,omitempty"`
	Ops     int64   `json:"ops,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	P50us   float64 `json:"p50_us,omitempty"`
	P99us   float64 `json:"p99_us,omitempty"`
	Info    string  `json:"info,omitempty"`
	Message string  `json:"message,omitempty"`
}

// readLines sends the JSON lines of r on lines (a line that is not JSON becomes an
// "output" event) and closes it at EOF.
func readLines(r io.Reader, lines chan<- workerLine) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l workerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Event == "" {
			l = workerLine{Event: "output", Message: sc.Text()}
		}
		lines <- l
	}
	_, _ = io.Copy(io.Discard, r)
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cellCommand returns the client process of a cell.
func (h *harness) cellCommand(c cell, t *target) (*exec.Cmd, error) {
	d, w := h.cfg.duration, h.cfg.warmup
	if c.wl.lang == langPython {
		mode := "calls"
		if c.wl.name == "py-calls16" {
			mode = "concurrent"
		}
		cmd := exec.Command(h.python, "-u", h.pyScript, "--url", t.url, "--mode", mode,
			"--duration", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
			"--warmup", strconv.FormatFloat(w.Seconds(), 'f', -1, 64),
			"--size", strconv.Itoa(h.cfg.size), "--threads", strconv.Itoa(h.cfg.concurrency))
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		return cmd, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-workload", c.wl.name, "-url", t.url, "-kind", t.spec.kind,
		"-duration", d.String(), "-warmup", w.String(), "-size", strconv.Itoa(h.cfg.size),
		"-concurrency", strconv.Itoa(h.cfg.concurrency), "-id", randomID())
	cmd.Env = append(os.Environ(), roleEnv+"=client")
	return cmd, nil
}

// runCell runs one cell: its client process warms up, says "measuring", measures, and
// prints its result; the intermediary's and the client's processes are sampled at both
// ends of the measured window.
func (h *harness) runCell(ctx context.Context, c cell, round int) *result {
	t := h.targets[c.target]
	r := &result{Round: round, Workload: c.wl.name, Target: c.target, Start: time.Now(), Load1: load1()}
	fail := func(format string, args ...any) *result {
		r.Err = fmt.Sprintf(format, args...)
		return r
	}
	cmd, err := h.cellCommand(c, t)
	if err != nil {
		return fail("%v", err)
	}
	cmd.SysProcAttr = childAttr()
	stderr := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail("%v", err)
	}
	// The client waits for its stdin to end after its result: until then its process
	// is there to be sampled.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail("%v", err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		return fail("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	lines := make(chan workerLine, 16)
	go readLines(stdout, lines)
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.NewTimer(h.cfg.warmup + h.cfg.duration + 2*time.Minute)
	defer deadline.Stop()

	var before [2]procStat
	var tr *straceRun
	var measuring bool
	for {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			tr.stop()
			return fail("interrupted")
		case <-deadline.C:
			_ = cmd.Process.Kill()
			tr.stop()
			return fail("no result within %s%s", h.cfg.warmup+h.cfg.duration+2*time.Minute, stderrTail(stderr))
		case l, ok := <-lines:
			if !ok {
				<-exited
				tr.stop()
				return fail("the client exited without a result (%v)%s", cmd.ProcessState, stderrTail(stderr))
			}
			switch l.Event {
			case "measuring":
				measuring = true
				before = [2]procStat{readProc(t.pid), readProc(cmd.Process.Pid)}
				if h.cfg.strace {
					tr = h.startStrace(t.pid)
				}
			case "result":
				after := [2]procStat{readProc(t.pid), readProc(cmd.Process.Pid)}
				calls := tr.stop()
				stdin.Close()
				if !measuring || l.Ops <= 0 || l.Seconds <= 0 {
					return fail("a result without a measured window: %+v", l)
				}
				r.Ops, r.Seconds, r.P50us, r.P99us, r.Info = l.Ops, l.Seconds, l.P50us, l.P99us, l.Info
				r.Rate = float64(l.Ops) / l.Seconds
				ops := float64(l.Ops)
				if before[0].ok && after[0].ok {
					r.InterCPUus = float64(after[0].cpu-before[0].cpu) / float64(time.Microsecond) / ops
					r.InterCtxSw = float64(after[0].ctxsw-before[0].ctxsw) / ops
				}
				if before[1].ok && after[1].ok {
					r.ClientCPUus = float64(after[1].cpu-before[1].cpu) / float64(time.Microsecond) / ops
					r.ClientCtxSw = float64(after[1].ctxsw-before[1].ctxsw) / ops
				}
				if calls != nil {
					r.Syscalls = map[string]float64{}
					for name, n := range calls {
						r.Syscalls[name] = float64(n) / ops
					}
				}
				return r
			case "error":
				_ = cmd.Process.Kill()
				tr.stop()
				return fail("%s%s", l.Message, stderrTail(stderr))
			}
		}
	}
}

func stderrTail(w *lockedWriter) string {
	s := strings.TrimSpace(w.String())
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "; its stderr ends:\n\t" + strings.Join(lines, "\n\t")
}

// lockedWriter is a writer whose content may be read while a process writes it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.w.(fmt.Stringer); ok {
		return s.String()
	}
	return ""
}

// procStat is what /proc says of a process: CPU time (user + system, all its threads,
// 10 ms resolution) and context switches (voluntary + involuntary, summed over its
// threads alive at the time).
type procStat struct {
	cpu   time.Duration
	ctxsw int64
	ok    bool
}

// clockTick is USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

func readProc(pid int) procStat {
	var s procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s
	}
	s.cpu = time.Duration(utime+stime) * clockTick
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, task := range tasks {
		st, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				s.ctxsw += n
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				s.ctxsw += n
			}
		}
	}
	s.ok = true
	return s
}

// load1 returns the 1-minute load average.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// straceRun is strace -f -c attached to an intermediary.
type straceRun struct {
	cmd  *exec.Cmd
	out  string
	done chan struct{}
	h    *harness
}

func (h *harness) startStrace(pid int) *straceRun {
	dir, err := h.tempDir()
	if err != nil {
		h.logf("strace: %v", err)
		return nil
	}
	out := filepath.Join(dir, fmt.Sprintf("strace-%d-%s.txt", pid, randomID()))
	cmd := exec.Command("strace", "-f", "-c", "-q", "-o", out, "-p", strconv.Itoa(pid))
	cmd.SysProcAttr = childAttr()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		h.logf("strace: %v", err)
		return nil
	}
	s := &straceRun{cmd: cmd, out: out, done: make(chan struct{}), h: h}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	return s
}

// stop detaches strace and returns the system calls it counted (with "total"; the
// failed ones, EAGAIN mostly, as "NAME errors"), or nil.
func (s *straceRun) stop() map[string]int64 {
	if s == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	b, err := os.ReadFile(s.out)
	if err != nil {
		s.h.logf("strace: %v", err)
		return nil
	}
	return parseStraceSummary(string(b))
}

// parseStraceSummary reads strace -c's table: "% time seconds usecs/call calls errors
// syscall", the errors column empty for most rows, then a "total" row.
func parseStraceSummary(text string) map[string]int64 {
	calls := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(line, "%") || strings.HasPrefix(f[0], "-") {
			continue
		}
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		name := f[len(f)-1]
		calls[name] = n
		if len(f) == 6 {
			if e, err := strconv.ParseInt(f[4], 10, 64); err == nil {
				calls[name+" errors"] = e
			}
		}
	}
	if len(calls) == 0 {
		return nil
	}
	return calls
}

// gitCommit describes the checkout: its HEAD and whether it has local changes.
func gitCommit() string {
	root, err := modroot.Root()
	if err != nil {
		return "unknown"
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " with local changes"
	}
	return c
}
