package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSmoke runs every probe but fuzz once against the fakes with tiny sizes and
// checks that each gives a result row: no figure is checked (they are for
// RELIABILITY.md, measured by hand).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds amqp1kit and starts the fakes")
	}
	bin := filepath.Join(t.TempDir(), "amqp1kit")
	if out, err := exec.Command("go", "build", "-o", bin, "../amqp1kit").CombinedOutput(); err != nil {
		t.Fatalf("building amqp1kit: %v\n%s", err, out)
	}
	cfg, err := parseFlags([]string{"--no-real", "--amqp1kit", bin,
		"--probes", "stuck,leave,killed,conns,badinput,journal,memory",
		"--sample", "100ms", "--quiet", "500ms", "--flood", "500ms", "--credit", "100",
		"--leave-runs", "1", "--leave-at", "200ms", "--leave-for", "200ms",
		"--inflight", "3", "--conns", "10", "--bad-wait", "1s", "--bad-good", "50ms",
		"--journal-sends", "100", "--journal-runs", "1",
		"--memory-for", "500ms", "--memory-delay", "1ms"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var progress lockedBuffer // the fakes' stderr and the probes' progress both write it
	e := &env{cfg: cfg, progress: &progress, starter: &starter{amqp1kit: bin, log: &progress}}
	results := runProbes(context.Background(), e)
	t.Log(progress.String())
	for _, probe := range cfg.probes {
		for _, target := range probeTargets[probe] {
			if _, fake := realOf[target]; !fake {
				continue
			}
			var r *result
			for _, x := range results {
				if x.probe == probe && x.target == target {
					r = x
				}
			}
			if r == nil || len(r.measures) == 0 {
				t.Errorf("%s on %s: no result", probe, target)
				continue
			}
			if r.err != nil {
				t.Errorf("%s on %s: %v", probe, target, r.err)
			}
		}
	}
	var md bytes.Buffer
	writeMarkdown(&md, results)
	for _, probe := range cfg.probes {
		if !strings.Contains(md.String(), "**"+probe+"**") {
			t.Errorf("no %s table in the Markdown output:\n%s", probe, md.String())
		}
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags([]string{"--probes", "stuck,nope"}, &bytes.Buffer{}); err == nil {
		t.Error("an unknown probe was taken")
	}
	cfg, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.probes) != len(allProbes) || !cfg.real {
		t.Errorf("defaults: probes %v, real %v", cfg.probes, cfg.real)
	}
}

// lockedBuffer is a bytes.Buffer that several goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
