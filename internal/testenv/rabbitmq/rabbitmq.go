// Package rabbitmq starts and stops private RabbitMQ 3.10 nodes (with the rabbitmq_amqp1_0
// plugin) for tests and benchmarks, through scripts/rabbitmq.sh.
//
// [Start] starts a node on a free port of 127.0.0.1 whose files all live in a fresh
// temporary directory; [Node.Stop] stops it and removes that directory. A process that dies
// without stopping its nodes (a panic, go test's -timeout) leaves them running: the next
// [Start] with the same prefix stops them, as it stops every node of that prefix whose owner
// process (owner.pid in the node's directory) is gone.
//
// [Shared] is the usual way for a test binary: one node, started by the first test or
// benchmark that asks for it, stopped by TestMain or on SIGINT/SIGTERM:
//
//	var rabbit = rabbitmq.Shared{Prefix: "amqp1kit-mypkg-rabbitmq-"}
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := rabbit.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		node, err := rabbit.Get()
//		if err != nil {
//			t.Skipf("RabbitMQ: %v", err) // under CI=true a test should fail instead
//		}
//		... node.URL ...
//	}
//
// What to do when RabbitMQ is missing or does not start is the caller's choice: tests skip
// with the reason, but fail under CI=true, where every peer must run; benchmarks skip with
// the reason printed.
//
// A start takes ~5–20 s (scripts/rabbitmq.sh waits until the port answers an AMQP 1.0
// protocol header). RabbitMQ comes from the Debian package rabbitmq-server.
package rabbitmq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
)

// Server is the RabbitMQ server program that scripts/rabbitmq.sh runs.
const Server = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// ScriptPath is where the start/stop script lives, relative to the module root.
const ScriptPath = "scripts/rabbitmq.sh"

// The environment variables through which a [Shared] with FromEnv set uses a node that
// already runs instead of starting one: EnvURL its amqp:// URL, EnvPID its (beam) pid.
const (
	EnvURL = "AMQP1KIT_BENCH_RABBITMQ_URL"
	EnvPID = "AMQP1KIT_BENCH_RABBITMQ_PID"
)

// ownerFile, in a node's directory, holds the pid of the process that started the node.
const ownerFile = "owner.pid"

// Installed returns nil when RabbitMQ is installed here, else an error that says which
// Debian package to install.
func Installed() error {
	if _, err := os.Stat(Server); err != nil {
		return fmt.Errorf("RabbitMQ is not installed (%v): install the Debian package rabbitmq-server (scripts/test.sh does)", err)
	}
	return nil
}

// Node is a running RabbitMQ node.
type Node struct {
	// URL is the node's AMQP address, amqp://127.0.0.1:PORT (AMQP 0-9-1 and 1.0 share
	// the port).
	URL string
	// PID is the pid of the node's Erlang VM (beam), or 0 if unknown.
	PID int
	// Dir is the directory that holds the node's files (log/ has its logs), or "" for a
	// node this package did not start, whose Stop does nothing.
	Dir string
	// Took is how long the start took.
	Took time.Duration

	script  string
	stopped bool
}

// Start starts a private node, with its files in a new directory under os.TempDir() named
// prefix followed by random characters, listening on a free port of 127.0.0.1. It first
// stops the nodes of earlier processes that used the same prefix and are gone. The error
// includes what scripts/rabbitmq.sh said. The caller must Stop the node.
func Start(prefix string) (*Node, error) {
	begin := time.Now()
	if err := Installed(); err != nil {
		return nil, err
	}
	script, err := Script()
	if err != nil {
		return nil, err
	}
	reap(script, prefix)
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: finding a free port: %w", err)
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	n := &Node{Dir: dir, script: script}
	// Whose node it is: a process that dies without stopping it leaves it for reap.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, "start", dir, strconv.Itoa(port))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		n.PID, err = strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || n.PID <= 0 {
			err = fmt.Errorf("it printed %q, not a pid", out)
		}
	}
	if err != nil {
		err = fmt.Errorf("rabbitmq: %s start %s %d: %v\n%s", ScriptPath, dir, port, err, strings.TrimSpace(stderr.String()))
		if serr := n.Stop(); serr != nil { // the script stops a node that failed; make sure
			err = fmt.Errorf("%w\n%v", err, serr)
		}
		return nil, err
	}
	n.URL = fmt.Sprintf("amqp://127.0.0.1:%d", port)
	n.Took = time.Since(begin)
	return n, nil
}

// Stop stops the node and removes its directory. If the node cannot be stopped, the
// directory is kept for a look and the error says where it is. Stop does nothing for a node
// without a Dir, or once it succeeded; it must not be called concurrently.
func (n *Node) Stop() error {
	if n.Dir == "" || n.stopped {
		return nil
	}
	script := n.script
	if script == "" {
		var err error
		if script, err = Script(); err != nil {
			return fmt.Errorf("rabbitmq: stopping the node in %s (kept): %w", n.Dir, err)
		}
	}
	if out, err := exec.Command("bash", script, "stop", n.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmq: %s stop %s: %v (directory kept)\n%s", ScriptPath, n.Dir, err, strings.TrimSpace(string(out)))
	}
	n.stopped = true
	if err := os.RemoveAll(n.Dir); err != nil {
		return fmt.Errorf("rabbitmq: node stopped, but removing its directory: %w", err)
	}
	return nil
}

// Script returns the absolute path of scripts/rabbitmq.sh, found by walking up from the
// working directory to the directory that holds go.mod.
func Script() (string, error) {
	p, err := modroot.File(ScriptPath)
	if err != nil {
		return "", fmt.Errorf("rabbitmq: %w", err)
	}
	return p, nil
}

// reap stops the nodes in os.TempDir()/prefix* whose owner process is gone, and removes
// their directories. Directories without an owner.pid are left alone.
func reap(script, prefix string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue // not ours to judge, or its process still runs
		}
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			if _, serr := os.Stat(dir); serr == nil { // else another process reaped it meanwhile
				fmt.Fprintf(os.Stderr, "rabbitmq: stopping a stale node in %s (owner pid %d gone): %v\n%s", dir, pid, err, out)
			}
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // EPERM and the like: it exists
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Shared is one node per process, started on first use. Its methods may be called from
// any goroutine. The zero value needs a Prefix before use.
type Shared struct {
	// Prefix names the node's directory, as for [Start].
	Prefix string
	// FromEnv makes Get use the node that EnvURL (and EnvPID) name, when EnvURL is set,
	// instead of starting one; Stop then leaves it running.
	FromEnv bool

	mu      sync.Mutex
	done    bool // Get tried
	stopped bool
	node    *Node
	err     error
	sig     chan os.Signal
}

// Get returns the node, starting it on the first call (later calls return the first call's
// node or error). Once a node is started, SIGINT or SIGTERM stops it and exits the process
// with status 2. After Stop, Get returns an error.
func (s *Shared) Get() (*Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("rabbitmq: Get after Stop")
	}
	if s.done {
		return s.node, s.err
	}
	s.done = true
	if url := os.Getenv(EnvURL); s.FromEnv && url != "" {
		n := &Node{URL: url}
		if v := os.Getenv(EnvPID); v != "" {
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				s.err = fmt.Errorf("rabbitmq: %s=%q is not a pid", EnvPID, v)
				return nil, s.err
			}
			n.PID = pid
		}
		s.node = n
		return n, nil
	}
	s.node, s.err = Start(s.Prefix)
	if s.err != nil {
		return nil, s.err
	}
	// An interrupted run stops the node too.
	s.sig = make(chan os.Signal, 1)
	signal.Notify(s.sig, os.Interrupt, syscall.SIGTERM)
	go func(sig <-chan os.Signal) {
		got, ok := <-sig
		if !ok {
			return // Stop
		}
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		fmt.Fprintln(os.Stderr, "rabbitmq: stopped the RabbitMQ node on", got)
		os.Exit(2)
	}(s.sig)
	return s.node, nil
}

// Stop stops the node if Get started one (see [Node.Stop]) and removes the signal handler.
// It is for TestMain, after m.Run; repeating it does nothing.
func (s *Shared) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.sig != nil {
		signal.Stop(s.sig)
		close(s.sig)
		s.sig = nil
	}
	if s.node == nil {
		return nil
	}
	return s.node.Stop()
}

// RSS returns the resident set size of process pid in bytes (VmRSS in /proc/PID/status).
func RSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS in /proc/%d/status: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
