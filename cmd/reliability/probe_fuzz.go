package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// fuzzPackages hold the fuzz targets of the read path: the engine's (frames from a
// peer into a connection) and the codec's.
var fuzzPackages = []string{"internal/engine", "internal/wire"}

var (
	fuzzFunc  = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	fuzzStats = regexp.MustCompile(`execs: (\d+) \([^)]*\), new interesting: (\d+) \(total: (\d+)\)`)
)

// probeFuzz runs each fuzz target for --fuzztime with one worker (the machine is
// shared) and reports executions, new corpus entries and failures. New interesting
// inputs stay in the fuzz cache ($(go env GOCACHE)/fuzz); a failing input is written
// by go test to the package's testdata/fuzz/, where it becomes a regression case.
func probeFuzz(ctx context.Context, e *env) []*result {
	root := e.cfg.fuzzRoot
	if root == "" {
		out, err := exec.Command("go", "env", "GOWORK").Output()
		if w := strings.TrimSpace(string(out)); err == nil && w != "" && w != "off" {
			root = filepath.Dir(w)
		}
	}
	if root == "" {
		return []*result{{probe: "fuzz", target: "—", err: fmt.Errorf("the repository's root is unknown: run from the checkout or give --repo")}}
	}
	var rs []*result
	for _, pkg := range fuzzPackages {
		files, _ := filepath.Glob(filepath.Join(root, pkg, "*_test.go"))
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
				if ctx.Err() != nil {
					return rs
				}
				name := string(m[1])
				e.logf("fuzz %s %s for %v (load average %s)", pkg, name, e.cfg.fuzzTime, loadavg())
				rs = append(rs, fuzzOne(ctx, e, root, pkg, name))
			}
		}
	}
	return rs
}

func fuzzOne(ctx context.Context, e *env, root, pkg, name string) *result {
	r := &result{probe: "fuzz", target: pkg + " " + name}
	cmd := exec.CommandContext(ctx, "go", "test", "./"+pkg, "-run=^$", "-fuzz=^"+name+"$",
		"-fuzztime="+e.cfg.fuzzTime.String(), "-parallel=1")
	cmd.Dir = root
	var out bytes.Buffer
	w := io.MultiWriter(&out, &fuzzProgress{e: e, name: name})
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	stats := fuzzStats.FindAllStringSubmatch(out.String(), -1)
	r.add(txt("time", e.cfg.fuzzTime.String()+", 1 worker"))
	if len(stats) > 0 {
		last := stats[len(stats)-1]
		r.add(txt("executions", last[1]), txt("new interesting inputs (corpus total)", last[2]+" ("+last[3]+")"))
	}
	switch {
	case err != nil && strings.Contains(out.String(), "context deadline exceeded") && !strings.Contains(out.String(), "Failing input written"):
		// Go's fuzz coordinator may report its own -fuzztime deadline as a failure
		// (go.dev/issue/75804, fixed in Go 1.27): no input failed.
		r.add(txt("result", "no failure (go test reported its fuzztime deadline as one: go.dev/issue/75804, no input written)"))
	case err != nil:
		r.add(txt("result", "FAIL"))
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		r.err = fmt.Errorf("%s %s: %v\n%s", pkg, name, err, tail)
	default:
		r.add(txt("result", "no failure"))
	}
	return r
}

// fuzzProgress passes every tenth of go test's "fuzz: elapsed" lines (written every
// 3 s) on as progress.
type fuzzProgress struct {
	e    *env
	name string
	seen int
	line []byte
}

func (p *fuzzProgress) Write(b []byte) (int, error) {
	p.line = append(p.line, b...)
	for {
		i := bytes.IndexByte(p.line, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(p.line[:i])
		p.line = p.line[i+1:]
		if strings.HasPrefix(line, "fuzz: elapsed") {
			if p.seen%10 == 0 {
				p.e.logf("  %s: %s", p.name, line)
			}
			p.seen++
		}
	}
}
