// Package protonbroker runs Qpid Proton's C++ example broker for tests: a real AMQP 1.0
// peer that stores messages in queues created on attach and supports dynamic reply
// sources.
//
// [Binary] finds the broker: the file that $AMQP1KIT_PROTON_BROKER names, else what
// scripts/proton-broker.sh build compiles (from Debian's example sources, into the user's
// cache). [Start] runs it on a free port of 127.0.0.1 and returns once it listens;
// [Broker.Close] kills it. In a test, [StartT] does both and decides what a missing broker
// means:
//
//	func TestX(t *testing.T) {
//		b := protonbroker.StartT(t, &protonbroker.Options{
//			Output: func(line string) { trace.add("broker: " + line) },
//		})
//		... b.URL() ...
//	}
//
// The broker prints "broker listening on PORT" as its first line on stdout, then one line
// per attach ("sending from ADDR", "receiving to ADDR") and per protocol error. It sends no
// product in its open frame, offers SASL ANONYMOUS only (and accepts a bare AMQP header),
// does not redeliver released messages, and has no topics: each message of a queue goes to
// one receiver.
package protonbroker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// EnvBinary is the environment variable that names a prebuilt broker binary; when set,
// [Binary] returns it and builds nothing.
const EnvBinary = "AMQP1KIT_PROTON_BROKER"

// ScriptPath is the script that builds the broker, relative to the module root.
const ScriptPath = "scripts/proton-broker.sh"

// StartTimeout bounds how long [Start] waits for the broker to say it listens.
const StartTimeout = 15 * time.Second

// closeTimeout bounds how long Close waits for the killed broker to exit.
const closeTimeout = 10 * time.Second

// keepLines is how many lines of the broker's output (the first and the last ones) the
// errors quote.
const keepLines = 20

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the broker binary: $AMQP1KIT_PROTON_BROKER if set (it must
// exist), else the path that scripts/proton-broker.sh build prints on its last line of
// stdout after compiling the broker if needed; the script is found by walking up from
// the working directory to the directory that holds go.mod. The work is done once per
// process: later calls return the first call's result, even if the environment changed.
// A failed build's error includes what the script wrote on stderr.
func Binary() (string, error) {
	binary.once.Do(func() { binary.path, binary.err = findBinary() })
	return binary.path, binary.err
}

func findBinary() (string, error) {
	if bin := os.Getenv(EnvBinary); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("protonbroker: $%s: %w", EnvBinary, err)
		}
		return bin, nil
	}
	script, err := findScript()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, "build")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("protonbroker: %s build: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := strings.TrimSpace(lines[len(lines)-1])
	if bin == "" {
		return "", fmt.Errorf("protonbroker: %s build printed no path: %s", script, strings.TrimSpace(stderr.String()))
	}
	return bin, nil
}

// findScript returns the absolute path of scripts/proton-broker.sh in the module that
// holds the working directory.
func findScript() (string, error) {
	p, err := modroot.File(ScriptPath)
	if err != nil {
		return "", fmt.Errorf("protonbroker: %w (or set $%s)", err, EnvBinary)
	}
	return p, nil
}

// Options configure [Start]. The zero value (or nil) is valid.
type Options struct {
	// Output, if set, gets each line the broker writes on stdout or stderr, without the
	// newline, including the first "broker listening on PORT". Calls never overlap, and
	// none comes after Close has returned nil; Output must not call Close.
	Output func(line string)
}

// Broker is a running broker. Its methods may be called from any goroutine.
type Broker struct {
	bin  string
	addr string
	cmd  *exec.Cmd

	outMu  sync.Mutex
	output func(string)
	head   []string // the first keepLines lines of output
	tail   []string // the last keepLines lines of output
	first  chan string
	stdout *lineWriter
	stderr *lineWriter

	exited  chan struct{} // closed once the process has exited and its output is read
	waitErr error         // cmd.Wait's error, set before exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start starts the broker ([Binary]) listening on a free port of 127.0.0.1 and returns
// once it says so. It gives up after [StartTimeout]; its errors include the first lines
// of the broker's output. The caller must Close the broker.
func Start(opts *Options) (*Broker, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	return start(bin, opts, StartTimeout)
}

func start(bin string, opts *Options, timeout time.Duration) (*Broker, error) {
	b := &Broker{
		bin:    bin,
		first:  make(chan string, 1),
		exited: make(chan struct{}),
	}
	if opts != nil {
		b.output = opts.Output
	}
	b.stdout = &lineWriter{line: b.stdoutLine}
	b.stderr = &lineWriter{line: b.addLine}
	b.cmd = exec.Command(bin, "-a", "127.0.0.1:0")
	b.cmd.Stdout = b.stdout
	b.cmd.Stderr = b.stderr
	// Should anything inherit the broker's stdout or stderr, Wait still returns soon
	// after the broker exits.
	b.cmd.WaitDelay = 2 * time.Second
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("protonbroker: starting %s: %w", bin, err)
	}
	go func() {
		err := b.cmd.Wait()
		b.stdout.flush()
		b.stderr.flush()
		b.waitErr = err
		close(b.exited)
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why string
	select {
	case line := <-b.first:
		// "broker listening on 41217"
		port, ok := strings.CutPrefix(line, "broker listening on ")
		if n, err := strconv.Atoi(strings.TrimSpace(port)); ok && err == nil && n > 0 && n < 65536 {
			b.addr = "127.0.0.1:" + strconv.Itoa(n)
			return b, nil
		}
		why = fmt.Sprintf("printed %q, not \"broker listening on PORT\"", line)
	case <-b.exited:
		why = fmt.Sprintf("exited (%v) before it listened", b.waitErr)
	case <-timer.C:
		why = fmt.Sprintf("did not say it listens within %v", timeout)
	}
	err := fmt.Errorf("protonbroker: %s %s; its first lines of output:\n%s", bin, why, b.lines(true))
	if cerr := b.Close(); cerr != nil && !errors.Is(cerr, errExited) {
		err = fmt.Errorf("%w\n%v", err, cerr)
	}
	return nil, err
}

// StartT starts a broker for a test, as [Start] does, and closes it in t.Cleanup; the
// cleanup fails the test if the broker had exited by itself or did not stop. When there is
// no broker (the error of [Binary]), StartT skips the test with the reason, but fails it
// under CI=true, where every peer must run. A broker that does not start fails the test.
func StartT(t testing.TB, opts *Options) *Broker {
	t.Helper()
	if _, err := Binary(); err != nil {
		peers.Missing(t, "Proton C++ example broker: %v", err)
	}
	b, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// URL returns the broker's address as amqp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "amqp://" + b.addr }

// Addr returns the broker's address as 127.0.0.1:PORT.
func (b *Broker) Addr() string { return b.addr }

// errExited is in the error of Close when the broker had exited before it.
var errExited = errors.New("the broker had exited by itself")

// Close kills the broker and waits (at most 10 s) until it has exited and its output has
// been handed to Options.Output. It returns an error if the broker had already exited by
// itself (a crash; the error includes its last lines of output) or did not exit in time.
// Later calls return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		select {
		case <-b.exited:
			b.closeErr = fmt.Errorf("protonbroker: %s at %s: %w (%v); its last lines of output:\n%s",
				b.bin, b.addr, errExited, b.waitErr, b.lines(false))
			return
		default:
		}
		if err := b.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			b.closeErr = fmt.Errorf("protonbroker: killing %s (pid %d): %w", b.bin, b.cmd.Process.Pid, err)
			return
		}
		select {
		case <-b.exited:
		case <-time.After(closeTimeout):
			b.closeErr = fmt.Errorf("protonbroker: %s (pid %d) did not exit within %v of SIGKILL", b.bin, b.cmd.Process.Pid, closeTimeout)
		}
	})
	return b.closeErr
}

// stdoutLine handles a line of stdout: the first one also goes to Start.
func (b *Broker) stdoutLine(line string) {
	b.addLine(line)
	select {
	case b.first <- line:
	default:
	}
}

// addLine keeps a line of output for errors and hands it to Options.Output.
func (b *Broker) addLine(line string) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	if len(b.head) < keepLines {
		b.head = append(b.head, line)
	}
	if len(b.tail) == keepLines {
		b.tail = append(b.tail[:0], b.tail[1:]...)
	}
	b.tail = append(b.tail, line)
	if b.output != nil {
		b.output(line)
	}
}

// lines returns the first (head) or last lines of output, indented, one a line.
func (b *Broker) lines(head bool) string {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	l := b.tail
	if head {
		l = b.head
	}
	if len(l) == 0 {
		return "\t(none)"
	}
	return "\t" + strings.Join(l, "\n\t")
}

// lineWriter splits what is written to it into lines (without "\n" or "\r\n") and hands
// each to line. It is used by one goroutine at a time (exec's copying goroutine, then
// the waiting one for flush).
type lineWriter struct {
	line    func(string)
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		w.partial = append(w.partial, p[:i]...)
		w.line(strings.TrimSuffix(string(w.partial), "\r"))
		w.partial = w.partial[:0]
		p = p[i+1:]
	}
	w.partial = append(w.partial, p...)
	return n, nil
}

// flush hands on a last line that has no newline.
func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.line(strings.TrimSuffix(string(w.partial), "\r"))
		w.partial = nil
	}
}
