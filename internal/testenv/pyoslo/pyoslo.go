package pyoslo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// EnvPython names the environment variable that chooses the Python interpreter.
const EnvPython = "AMQP1KIT_PYTHON"

// DefaultPython is the interpreter used when $AMQP1KIT_PYTHON is unset: Debian's, which sees
// the Debian packages (a pyenv python3 first on PATH does not).
const DefaultPython = "/usr/bin/python3"

// ScriptPath is the peer script's path relative to the module root.
const ScriptPath = "testdata/peers/oslo_peer.py"

// RunTimeout bounds [Run]: the script bounds itself with --timeout, this is the backstop.
const RunTimeout = 90 * time.Second

// ErrTimeout is returned (wrapped) by [Proc.Next], [Proc.WaitEvent] and [Proc.Wait] when
// nothing came within the timeout.
var ErrTimeout = errors.New("pyoslo: timed out")

const (
	stderrTailLines = 50
	stdoutKeepLines = 100
	maxLineBytes    = 64 << 20
	importCheck     = "import oslo_messaging, pyngus, proton"
	checkTimeout    = 60 * time.Second
	stopGrace       = 5 * time.Second
	termGrace       = 3 * time.Second
	killGrace       = 5 * time.Second
)

type pythonResult struct {
	path string
	err  error
}

var (
	pythonMu    sync.Mutex
	pythonCache = map[string]pythonResult{}
)

// Python returns the interpreter that runs the peer: $AMQP1KIT_PYTHON, or /usr/bin/python3.
// The error says exactly what is missing: the interpreter itself, or one of the modules
// (import oslo_messaging, pyngus, proton fails, with Python's own message). The check runs
// once per interpreter and process.
func Python() (string, error) {
	want := os.Getenv(EnvPython)
	from := "$" + EnvPython
	if want == "" {
		want, from = DefaultPython, "default"
	}
	pythonMu.Lock()
	defer pythonMu.Unlock()
	if r, ok := pythonCache[want]; ok {
		return r.path, r.err
	}
	path, err := checkPython(want, from)
	pythonCache[want] = pythonResult{path, err}
	return path, err
}

func checkPython(want, from string) (string, error) {
	path, err := exec.LookPath(want)
	if err != nil {
		return "", fmt.Errorf("pyoslo: Python interpreter %s (%s) not found: %v "+
			"(install python3, or set %s)", want, from, err, EnvPython)
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", importCheck)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		why := lastLine(stderr.String())
		if why == "" {
			why = err.Error()
		}
		if ctx.Err() != nil {
			why = fmt.Sprintf("timed out after %v", checkTimeout)
		}
		return "", fmt.Errorf("pyoslo: %s cannot %q: %s (install the Debian packages "+
			"python3-oslo.messaging python3-pyngus python3-qpid-proton, or set %s to an "+
			"interpreter that has them)", path, importCheck, why, EnvPython)
	}
	return path, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Require skips the test when the Python peer cannot run here, saying why; under CI=true it
// fails the test instead.
func Require(t testing.TB) {
	t.Helper()
	if _, err := Python(); err != nil {
		peers.Missing(t, "%v", err)
	}
}

// Script returns the absolute path of testdata/peers/oslo_peer.py, found from this source
// file's location, or else by walking up from the working directory to go.mod.
func Script() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, filepath.FromSlash(ScriptPath))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pyoslo: peer script: %w", err)
	}
	return p, nil
}

func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if fileExists(filepath.Join(root, "go.mod")) &&
			fileExists(filepath.Join(root, filepath.FromSlash(ScriptPath))) {
			return filepath.Clean(root), nil
		}
	}
	root, err := modroot.Root()
	if err != nil {
		return "", fmt.Errorf("pyoslo: %w", err)
	}
	return root, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Proc is a running oslo_peer.py. Its methods may be called from one goroutine at a time,
// except Stop, which may be called from any goroutine.
type Proc struct {
	args  []string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu       sync.Mutex
	queue    []map[string]any
	eof      bool
	stdout   []string // the last stdoutKeepLines raw lines
	stderr   []string // the last stderrTailLines lines
	reported bool     // an error with the output's tail was returned
	signal   chan struct{}
	done     chan struct{} // closed once the process has exited
	exitErr  error
	stopOnce sync.Once
	stopErr  error
}

// Start starts oslo_peer.py with args (a subcommand and its flags) and returns at once; it
// skips the test (fails it under CI=true) when the peer cannot run. The process is stopped
// by t.Cleanup, and when the test has failed its stderr and stdout tails are logged.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	Require(t)
	py, _ := Python()
	script, err := Script()
	if err != nil {
		t.Fatalf("%v", err)
	}
	cmd := exec.Command(py, append([]string{"-u", script}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	p := &Proc{args: args, cmd: cmd, signal: make(chan struct{}, 1), done: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("pyoslo: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("pyoslo: %v", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("pyoslo: %v", err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("pyoslo: starting %s: %v", p.name(), err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.readStdout(stdout)
	}()
	go func() {
		defer readers.Done()
		p.readStderr(stderr)
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
		p.notify()
	}()
	t.Cleanup(func() {
		_ = p.Stop()
		if !t.Failed() {
			return
		}
		p.mu.Lock()
		status, reported := exitText(p.exitErr), p.reported
		p.mu.Unlock()
		if reported {
			// An error carrying the output's tail was already handed to the test.
			t.Logf("%s: exit: %s", p.name(), status)
		} else {
			t.Logf("%s: exit: %s%s", p.name(), status, p.tails())
		}
	})
	return p
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func (p *Proc) name() string {
	return "oslo_peer.py " + strings.Join(p.args, " ")
}

func (p *Proc) notify() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *Proc) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	for sc.Scan() {
		line := sc.Text()
		var obj map[string]any
		err := json.Unmarshal([]byte(line), &obj)
		p.mu.Lock()
		p.stdout = appendTail(p.stdout, truncate(line, 2000), stdoutKeepLines)
		if err != nil || obj == nil {
			p.stderr = appendTail(p.stderr, "(stdout, not a JSON object) "+truncate(line, 500), stderrTailLines)
		} else {
			p.queue = append(p.queue, obj)
		}
		p.mu.Unlock()
		p.notify()
	}
	if err := sc.Err(); err != nil {
		p.mu.Lock()
		p.stderr = appendTail(p.stderr, "(reading stdout) "+err.Error(), stderrTailLines)
		p.mu.Unlock()
		_, _ = io.Copy(io.Discard, r)
	}
	p.mu.Lock()
	p.eof = true
	p.mu.Unlock()
	p.notify()
}

func (p *Proc) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	for sc.Scan() {
		p.mu.Lock()
		p.stderr = appendTail(p.stderr, truncate(sc.Text(), 500), stderrTailLines)
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func appendTail(lines []string, line string, max int) []string {
	lines = append(lines, line)
	if len(lines) > max {
		lines = append(lines[:0], lines[len(lines)-max:]...)
	}
	return lines
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Stderr returns the last lines (up to 50) the script wrote on stderr.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

func (p *Proc) tails() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- %s: stdout (last %d lines) ---\n%s", p.name(), len(p.stdout), strings.Join(p.stdout, "\n"))
	fmt.Fprintf(&b, "\n--- stderr (last %d lines) ---\n%s", len(p.stderr), strings.Join(p.stderr, "\n"))
	return b.String()
}

// fail is fmt.Errorf (so %w wraps) with the script's name before and its output's tail after.
func (p *Proc) fail(format string, args ...any) error {
	all := append(append([]any{p.name()}, args...), p.tails())
	p.mu.Lock()
	p.reported = true
	p.mu.Unlock()
	return fmt.Errorf("%s: "+format+"%s", all...)
}

// Next returns the next JSON line the script printed, waiting up to timeout. Once the script
// has exited and every line has been read, it returns an error wrapping io.EOF; after the
// timeout, one wrapping [ErrTimeout]. Errors include the tail of the script's output.
func (p *Proc) Next(timeout time.Duration) (map[string]any, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			obj := p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			p.mu.Unlock()
			return obj, nil
		}
		eof := p.eof
		p.mu.Unlock()
		if eof {
			select {
			case <-p.done:
			case <-time.After(time.Second):
			}
			return nil, p.fail("%w: the script's output ended (exit: %s)", io.EOF, p.exitStatus())
		}
		select {
		case <-p.signal:
		case <-timer.C:
			return nil, p.fail("%w: no output line within %v", ErrTimeout, timeout)
		}
	}
}

func (p *Proc) exitStatus() string {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return exitText(p.exitErr)
	default:
		return "still running"
	}
}

// WaitEvent reads lines until one has "event" equal to event and returns it, waiting up to
// timeout in all. Lines in between are consumed. A line {"event":"error"} or
// {"event":"watchdog"} (unless that is the event asked for) ends the wait: WaitEvent then
// returns that line together with an error.
func (p *Proc) WaitEvent(event string, timeout time.Duration) (map[string]any, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		obj, err := p.Next(left)
		if err != nil {
			return nil, fmt.Errorf("waiting for event %q: %w", event, err)
		}
		got, _ := obj["event"].(string)
		if got == event {
			return obj, nil
		}
		if got == "error" || got == "watchdog" {
			return obj, p.fail("waiting for event %q, got %s", event, compact(obj))
		}
	}
}

func compact(obj any) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprint(obj)
	}
	return truncate(string(b), 2000)
}

// Wait waits up to timeout for the script to exit by itself (its stdin stays open) and returns
// the lines not read yet. The error is non-nil when the exit status is not 0 or the timeout
// passed; in that case the script is stopped as by [Proc.Stop].
func (p *Proc) Wait(timeout time.Duration) ([]map[string]any, error) {
	var err error
	select {
	case <-p.done:
		p.mu.Lock()
		exitErr := p.exitErr
		p.mu.Unlock()
		if exitErr != nil {
			err = p.fail("exit: %v", exitErr)
		}
	case <-time.After(timeout):
		err = p.fail("%w: still running after %v", ErrTimeout, timeout)
		_ = p.Stop()
	}
	p.mu.Lock()
	rest := p.queue
	p.queue = nil
	p.mu.Unlock()
	return rest, err
}

// Stop stops the script: it closes its stdin (servers and listeners then stop cleanly), sends
// SIGTERM if it has not exited within 5 s, and SIGKILL 3 s later. It returns nil if the
// script exited with status 0, or an error with its output's tail. It is bounded (about 13 s
// at worst) and idempotent: later calls return the same result.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		_ = p.stdin.Close()
		if !p.waitDone(stopGrace) {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if !p.waitDone(termGrace) {
				_ = p.cmd.Process.Kill()
				if !p.waitDone(killGrace) {
					p.stopErr = p.fail("did not exit after SIGKILL")
					return
				}
			}
		}
		p.mu.Lock()
		err := p.exitErr
		p.mu.Unlock()
		if err != nil {
			p.stopErr = p.fail("exit: %v", err)
		}
	})
	return p.stopErr
}

func (p *Proc) waitDone(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Run runs oslo_peer.py with args to completion (bounded by [RunTimeout]) and returns all its
// JSON lines. It fails the test if the script exits with a non-zero status or does not exit
// in time, and skips it (fails it under CI=true) when the peer cannot run.
func Run(t testing.TB, args ...string) []map[string]any {
	t.Helper()
	p := Start(t, args...)
	lines, err := p.Wait(RunTimeout)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return lines
}
