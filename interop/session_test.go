package interop

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// lineLog keeps the last lines of some output (a frame trace, a process's stderr, a
// driver log) with absolute line numbers, so that a test can show what was written
// while it ran.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	first int // absolute number of lines[0]
	max   int
	label func(string) string // optional: rewrites a line when shown

	partial []byte // an unfinished line given to Write
}

func newLineLog(max int) *lineLog { return &lineLog{max: max} }

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		drop := len(l.lines) - l.max/2
		l.lines = append(l.lines[:0:0], l.lines[drop:]...)
		l.first += drop
	}
}

// Write makes a lineLog an io.Writer (for slog handlers and process output, which may
// come in pieces that split lines).
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	data := append(l.partial, p...)
	l.partial = nil
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		l.partial = data
		l.mu.Unlock()
		return len(p), nil
	}
	l.partial = append([]byte(nil), data[i+1:]...)
	l.mu.Unlock()
	for _, line := range strings.Split(string(data[:i]), "\n") {
		l.add(line)
	}
	return len(p), nil
}

// mark returns the number of lines written so far.
func (l *lineLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first + len(l.lines)
}

// since returns the lines written after mark, at most the last n of them.
func (l *lineLog) since(mark, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := max(mark-l.first, 0)
	lines := l.lines[min(i, len(l.lines)):]
	var b strings.Builder
	if mark < l.first {
		fmt.Fprintf(&b, "(%d earlier lines lost)\n", l.first-mark)
	}
	if len(lines) > n {
		fmt.Fprintf(&b, "(%d lines left out)\n", len(lines)-n)
		lines = lines[len(lines)-n:]
	}
	for _, line := range lines {
		if l.label != nil {
			line = l.label(line)
		}
		b.WriteString(truncate(line, 600))
		b.WriteByte('\n')
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}

// pySession is one long-lived `oslo_peer.py session` process: the Python RPC servers,
// clients, notifier and listeners of a backend, each role on a connection of its own.
// Commands go in as JSON lines on its stdin; each gets one reply line with its id;
// other lines (a server's "call" and "cast", a listener's "notification", "batch",
// "requeued") are events.
type pySession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lineLog

	wmu sync.Mutex // serialises writes to stdin

	mu      sync.Mutex
	nextID  int
	replies map[int]chan map[string]any
	events  []map[string]any
	changed chan struct{} // closed and replaced on every event
	done    chan struct{} // closed once the process has exited
	exitErr error
}

// startSession starts the Python session against url and returns at once (see
// waitReady: Python takes a second or more to start); t.Cleanup stops it (stdin EOF: it stops every server and listener and cleans up
// every transport).
func startSession(t *testing.T, url string, extra ...string) *pySession {
	t.Helper()
	pyoslo.Require(t)
	py, err := pyoslo.Python()
	if err != nil {
		t.Fatal(err)
	}
	script, err := pyoslo.Script()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-u", script, "session", "--url", url, "--timeout", "900"}, extra...)
	s := &pySession{
		cmd:     exec.Command(py, args...),
		stderr:  newLineLog(5000),
		replies: map[int]chan map[string]any{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	s.cmd.Stderr = s.stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the Python session: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.read(stdout)
	}()
	go func() {
		<-read
		err := s.cmd.Wait()
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(s.done)
	}()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("python session: %v", err)
		}
		if t.Failed() {
			t.Logf("python session: exit %v; stderr (last lines):\n%s", s.exitStatus(), s.stderr.since(0, 60))
		}
	})
	return s
}

// waitReady waits until the session has imported oslo.messaging and reads commands.
func (s *pySession) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.waitEvent(ctx, func(e map[string]any) bool { return e["event"] == "ready" }); err != nil {
		t.Fatalf("python session did not get ready: %v\nstderr:\n%s", err, s.stderr.since(0, 40))
	}
}

func (s *pySession) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil || obj == nil {
			s.stderr.add("(stdout, not a JSON object) " + truncate(sc.Text(), 300))
			continue
		}
		s.mu.Lock()
		if id, ok := obj["id"].(float64); ok {
			if ch := s.replies[int(id)]; ch != nil {
				delete(s.replies, int(id))
				ch <- obj
				s.mu.Unlock()
				continue
			}
		}
		s.events = append(s.events, obj)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		s.stderr.add("(reading stdout) " + err.Error())
		_, _ = io.Copy(io.Discard, r)
	}
}

func (s *pySession) exitStatus() string {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.exitErr == nil {
			return "status 0"
		}
		return s.exitErr.Error()
	default:
		return "still running"
	}
}

// stop closes stdin and waits for a clean exit, then kills the process.
func (s *pySession) stop() error {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(45 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("the session did not stop within 45s of stdin EOF: killed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exitErr != nil {
		return fmt.Errorf("exit: %w", s.exitErr)
	}
	return nil
}

// do runs one command ({"op": ..., ...}) and returns its reply line.
func (s *pySession) do(ctx context.Context, cmd map[string]any) (map[string]any, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	ch := make(chan map[string]any, 1)
	s.replies[id] = ch
	s.mu.Unlock()
	c := make(map[string]any, len(cmd)+1)
	for k, v := range cmd {
		c[k] = v
	}
	c["id"] = id
	line, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	_, err = s.stdin.Write(append(line, '\n'))
	s.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("python session: writing %s: %w", cmd["op"], err)
	}
	select {
	case out := <-ch:
		if out["crash"] == true {
			return out, fmt.Errorf("python session: %s crashed: %v", cmd["op"], out["error"])
		}
		return out, nil
	case <-s.done:
		return nil, fmt.Errorf("python session exited (%s) during %s", s.exitStatus(), cmd["op"])
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.replies, id)
		s.mu.Unlock()
		return nil, fmt.Errorf("python session: no answer to %s: %w", truncate(string(line), 300), ctx.Err())
	}
}

// waitEvent returns the first event (in order of output) that match accepts, waiting
// for it until ctx ends.
func (s *pySession) waitEvent(ctx context.Context, match func(map[string]any) bool) (map[string]any, error) {
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if match(e) {
				s.mu.Unlock()
				return e, nil
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.done:
			return nil, fmt.Errorf("python session exited (%s) while waited on", s.exitStatus())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// waitUntil waits until cond (which may look at the events) holds.
func (s *pySession) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return fmt.Errorf("python session exited (%s) while waited on", s.exitStatus())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitEvents waits until match accepts n events and returns them.
func (s *pySession) waitEvents(ctx context.Context, n int, match func(map[string]any) bool) ([]map[string]any, error) {
	for {
		got := s.eventsWhere(match)
		if len(got) >= n {
			return got, nil
		}
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.done:
			return got, fmt.Errorf("python session exited (%s) while waited on", s.exitStatus())
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d events: %w", len(got), n, ctx.Err())
		}
	}
}

func (s *pySession) eventsWhere(match func(map[string]any) bool) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, e := range s.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// pyError returns the "error" object of a reply line, or nil.
func pyError(out map[string]any) map[string]any {
	e, _ := out["error"].(map[string]any)
	return e
}
