package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The harness re-executes its own binary for a cell's processes: in tests, this one.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestSelectCells(t *testing.T) {
	names := func(cells []cell) []string {
		var out []string
		for _, c := range cells {
			out = append(out, c.wl.name+"@"+c.target)
		}
		return out
	}
	all := selectCells(nil)
	if !slices.Contains(names(all), "floor@floor") || !slices.Contains(names(all), "py-calls16@qpidd") ||
		!slices.Contains(names(all), "roundtrip@rabbitmq") || slices.Contains(names(all), "passthrough@rabbitmq") {
		t.Errorf("no --only: %v", names(all))
	}
	for _, tc := range []struct {
		only []string
		want []string
	}{
		{[]string{"floor"}, []string{"floor@floor"}},
		{[]string{"passthrough", "floor"}, []string{"passthrough@fakerouter", "passthrough@qdrouterd", "passthrough@fakebroker", "passthrough@qpidd", "floor@floor"}},
		{[]string{"roundtrip", "fakerouter", "rabbitmq"}, []string{"roundtrip@fakerouter", "roundtrip@rabbitmq"}},
		{[]string{"qdrouterd", "py-calls", "go-calls"}, []string{"go-calls@qdrouterd", "py-calls@qdrouterd"}},
	} {
		if got := names(selectCells(tc.only)); !slices.Equal(got, tc.want) {
			t.Errorf("--only %v: %v, want %v", tc.only, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	for _, bad := range [][]string{
		{"--rounds", "0"}, {"--duration", "0s"}, {"--only", "nosuch"}, {"--size", "0"}, {"extra"},
	} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	c, err := parseFlags([]string{"--only", "fakerouter,qdrouterd", "--only", "roundtrip"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.only, []string{"fakerouter", "qdrouterd", "roundtrip"}) {
		t.Errorf("--only: %v", c.only)
	}
}

func TestParseStraceSummary(t *testing.T) {
	const text = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.512345          10     51234           write
 30.00    0.300000           5     60000     12000 read
 20.00    0.200000          20     10000       100 futex
  4.90    0.049000           4     12000           epoll_pwait
------ ----------- ----------- --------- --------- ----------------
100.00    1.061345           8    133234     12100 total
`
	got := parseStraceSummary(text)
	want := map[string]int64{"write": 51234, "read": 60000, "read errors": 12000, "futex": 10000, "futex errors": 100,
		"epoll_pwait": 12000, "total": 133234, "total errors": 12100}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d", k, got[k], v)
		}
	}
	if parseStraceSummary("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n") != nil {
		t.Error("an error text parsed as a summary")
	}
}

func TestFormats(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1 234 567", 999: "999", 12.34: "12.3", 1000: "1 000"} {
		if got := fmtRate(v); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", v, got, want)
		}
	}
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(lat, 50); p != 5 {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(lat, 99); p != 10 {
		t.Errorf("p99 %v", p)
	}
}

// children returns the pids of this process's children, from /proc.
func children(t *testing.T) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	me := os.Getpid()
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			out = append(out, pid)
		}
	}
	return out
}

// smoke runs the harness with args (tiny cells, Markdown and JSON written) and returns
// the cells' results; it checks that nothing the harness started is left running.
func smoke(t *testing.T, args ...string) []result {
	t.Helper()
	dir := t.TempDir()
	md, js := filepath.Join(dir, "m.md"), filepath.Join(dir, "r.json")
	var stdout, stderr bytes.Buffer
	args = append(args, "--rounds", "2", "--duration", "150ms", "--warmup", "50ms", "--markdown", md, "--json", js)
	code := run(context.Background(), args, &stdout, &stderr)
	t.Logf("stderr:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if left := children(t); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var results []result
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != "" || r.Ops <= 0 || r.Rate <= 0 {
			t.Errorf("round %d, %s on %s: %+v", r.Round, r.Workload, r.Target, r)
		}
		if !strings.Contains(string(mdText), "| "+r.Workload+" | "+r.Target+" |") {
			t.Errorf("the Markdown has no row for %s on %s", r.Workload, r.Target)
		}
	}
	return results
}

func TestSmokeFloor(t *testing.T) {
	results := smoke(t, "--only", "floor")
	if len(results) != 2 {
		t.Fatalf("%d results, want 2 (one per round)", len(results))
	}
	if results[0].P50us <= 0 || results[0].InterCPUus <= 0 {
		t.Errorf("no latency or CPU figure: %+v", results[0])
	}
}

// TestSmokeFakeRouter builds amqp1kit from this checkout and runs the Go workloads (and
// the Python driver's, when it is installed) through `amqp1kit serve` and the ratio of
// the driver's calls to the floor.
func TestSmokeFakeRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds amqp1kit and starts processes")
	}
	results := smoke(t, "--only", "fakerouter,floor")
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Workload] = true
	}
	for _, w := range []string{"passthrough", "roundtrip", "go-calls", "go-calls16", "go-casts", "go-notify", "floor"} {
		if !seen[w] {
			t.Errorf("no %s result", w)
		}
	}
}
