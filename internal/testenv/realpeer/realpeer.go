// Package realpeer runs the real Qpid Dispatch Router 1.19.0 (qdrouterd) and Qpid C++
// broker 1.39.0 (qpidd), the programs the fakes imitate, natively for tests and
// benchmarks: each in a directory of its own, on a port of 127.0.0.1, configured as the
// oslo.messaging AMQP 1.0 deployment guide configures it unless told otherwise.
//
// scripts/real-peers.sh builds both from Apache's source releases into /opt/amqp1kit
// (scripts/test.sh runs it and exports $AMQP1KIT_QDROUTERD and $AMQP1KIT_QPIDD). [Program.Binary]
// finds a program: the file its environment variable names, else the script's install path.
//
//	func TestX(t *testing.T) {
//		r := realpeer.StartQdrouterd(t, nil) // the guide's address table; killed by t.Cleanup
//		conn, err := amqp.Dial(ctx, r.URL(), nil)
//		...
//	}
//
// [StartQdrouterd] and [StartQpidd] skip a test when the program is not built (with the
// reason; under CI=true they fail it instead), fail it when the program does not start
// (with its log), and kill the program when the test ends. [Start] is the same for code
// that has no test to bind to, such as a benchmark's setup shared by several runs.
//
// A peer is ready once it answers an AMQP 1.0 protocol header with one of its own on its
// port, and that port's listening socket is its own: a program that lost its port to
// another process does not pass for ready by the other's answer. With Options.Port 0 a
// free port is picked, and picked again when the program finds it taken meanwhile.
// qdrouterd is ready ~0.25 s after it is started, qpidd ~0.05 s (2 cores).
//
// [QdstatCommand] and [QdmanageCommand] run qdrouterd's management tools (Python, on
// Proton's Python binding), which work against any qdrouterd-compatible router.
package realpeer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/guideconf"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo"
)

// Program is one of the real intermediaries.
type Program string

// The programs.
const (
	Qdrouterd Program = "qdrouterd"
	Qpidd     Program = "qpidd"
)

// Where scripts/real-peers.sh installs the programs (AMQP1KIT_REAL_PEERS_PREFIX unset).
const (
	DefaultQdrouterd = "/opt/amqp1kit/qdrouterd-1.19.0/sbin/qdrouterd"
	DefaultQpidd     = "/opt/amqp1kit/qpidd-1.39.0/sbin/qpidd"
)

// The environment variables that name the programs' binaries.
const (
	EnvQdrouterd = "AMQP1KIT_QDROUTERD"
	EnvQpidd     = "AMQP1KIT_QPIDD"
)

// StartTimeout is how long Start waits for a program to be ready unless
// Options.StartTimeout says otherwise.
const StartTimeout = 30 * time.Second

// closeTimeout bounds how long Close waits for the killed program to exit.
const closeTimeout = 10 * time.Second

// portAttempts is how many free ports Start tries when each is found taken.
const portAttempts = 5

// logTailLines is how many last lines of a program's log its errors quote.
const logTailLines = 40

// The placeholders of a configuration that Start replaces.
const (
	PortPlaceholder = "${PORT}"
	DirPlaceholder  = "${DIR}"
)

// DefaultQdrouterdConfig is the configuration StartQdrouterd and Start(Qdrouterd, ...) write
// when Options.Config is empty: the deployment guide's, as containers/qdrouterd writes it
// for a container, with its listener on 127.0.0.1.
var DefaultQdrouterdConfig = mustReplace(guideconf.Qdrouterd,
	"host: 0.0.0.0", "host: 127.0.0.1",
	"port: 5672", "port: "+PortPlaceholder)

// DefaultQpiddConfig is the configuration StartQpidd and Start(Qpidd, ...) write when
// Options.Config is empty: the deployment guide's (no authentication, queues for the
// exclusive and unicast prefixes, topics for broadcast), as containers/qpidd writes it
// for a container, on 127.0.0.1, with nothing stored on disk (no data directory) and the
// pid file in the peer's directory.
var DefaultQpiddConfig = mustReplace(guideconf.Qpidd,
	"port=5672\n", "port="+PortPlaceholder+"\n",
	"interface=0.0.0.0\n", "interface=127.0.0.1\n") +
	"no-data-dir=yes\npid-dir=" + DirPlaceholder + "\n"

// mustReplace replaces each old by its new in s, each exactly once.
func mustReplace(s string, oldNew ...string) string {
	for i := 0; i < len(oldNew); i += 2 {
		if strings.Count(s, oldNew[i]) != 1 {
			panic(fmt.Sprintf("realpeer: %q is not once in the configuration it adapts", oldNew[i]))
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	return s
}

// EnvVar returns the environment variable that names p's binary.
func (p Program) EnvVar() string {
	if p == Qpidd {
		return EnvQpidd
	}
	return EnvQdrouterd
}

// DefaultPath returns where scripts/real-peers.sh installs p's binary.
func (p Program) DefaultPath() string {
	if p == Qpidd {
		return DefaultQpidd
	}
	return DefaultQdrouterd
}

// DefaultConfig returns the configuration p runs with when Options.Config is empty.
func (p Program) DefaultConfig() string {
	if p == Qpidd {
		return DefaultQpiddConfig
	}
	return DefaultQdrouterdConfig
}

// args returns p's command-line arguments for the configuration file conf, which the
// programs read as they do in their images (qdrouterd -c FILE, qpidd --config FILE).
func (p Program) args(conf string) []string {
	if p == Qpidd {
		return []string{"--config", conf}
	}
	return []string{"-c", conf}
}

func (p Program) valid() error {
	if p != Qdrouterd && p != Qpidd {
		return fmt.Errorf("realpeer: unknown program %q (want qdrouterd or qpidd)", string(p))
	}
	return nil
}

// Binary returns the path of p's binary: the file $AMQP1KIT_QDROUTERD (or $AMQP1KIT_QPIDD)
// names if set, else DefaultPath. The error says how to build it.
func (p Program) Binary() (string, error) {
	if err := p.valid(); err != nil {
		return "", err
	}
	bin, from := os.Getenv(p.EnvVar()), "$"+p.EnvVar()
	if bin == "" {
		bin, from = p.DefaultPath(), "default path"
	}
	st, err := os.Stat(bin)
	if err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		return "", fmt.Errorf("realpeer: no %s at %s (%s): %w; build it with bash scripts/real-peers.sh build %s, or set $%s",
			p, bin, from, err, p, p.EnvVar())
	}
	return bin, nil
}

// Options configure a peer. The zero value (or nil) is valid.
type Options struct {
	// Config is the whole configuration file (qdrouterd.conf, qpidd.conf); empty means
	// the program's DefaultConfig. Every "${PORT}" in it becomes the port the peer
	// listens on and every "${DIR}" the peer's directory. With Port 0 it must say
	// ${PORT} where the listener's port goes.
	Config string
	// Port is the port of 127.0.0.1 the peer listens on; 0 picks a free one.
	Port int
	// Dir is the peer's directory (configuration file, log, anything the program
	// writes); empty means a new temporary one, removed by Close (StartQdrouterd and
	// StartQpidd use t.TempDir).
	Dir string
	// StartTimeout bounds the wait for the program to be ready; 0 means StartTimeout.
	StartTimeout time.Duration
}

// Peer is a running qdrouterd or qpidd. Its methods may be called from any goroutine.
type Peer struct {
	program Program
	bin     string
	dir     string
	ownDir  bool
	logPath string
	port    int
	cmd     *exec.Cmd
	logFile *os.File

	exited  chan struct{} // closed once the process has exited
	waitErr error         // cmd.Wait's error, set before exited is closed

	closeOnce sync.Once
	closeErr  error
}

// errPortTaken is in the error of a start that failed because the port was taken.
var errPortTaken = errors.New("its port was taken")

// pickPort returns a port of 127.0.0.1 that was free a moment ago (a variable for tests).
var pickPort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("realpeer: picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts p as Options say and returns once it is ready: it answers an AMQP 1.0
// header on its port, which it listens on itself. Its errors quote the end of the
// program's log. The caller must Close the peer.
func Start(p Program, opts *Options) (*Peer, error) {
	bin, err := p.Binary()
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Config == "" {
		o.Config = p.DefaultConfig()
	}
	if o.Port == 0 && !strings.Contains(o.Config, PortPlaceholder) {
		return nil, fmt.Errorf("realpeer: %s: Options.Port is 0 and Options.Config does not say %s", p, PortPlaceholder)
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("realpeer: %s: Options.Port %d out of range", p, o.Port)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = StartTimeout
	}
	ownDir := o.Dir == ""
	if ownDir {
		if o.Dir, err = os.MkdirTemp("", "amqp1kit-"+string(p)+"-"); err != nil {
			return nil, fmt.Errorf("realpeer: %w", err)
		}
	}
	attempts := 1
	if o.Port == 0 {
		attempts = portAttempts
	}
	for i := 1; ; i++ {
		port := o.Port
		if port == 0 {
			if port, err = pickPort(); err != nil {
				break
			}
		}
		var peer *Peer
		peer, err = launch(p, bin, &o, port)
		if err == nil {
			peer.ownDir = ownDir
			return peer, nil
		}
		if !errors.Is(err, errPortTaken) || i == attempts {
			break
		}
	}
	if ownDir {
		os.RemoveAll(o.Dir)
	}
	return nil, err
}

// launch starts one process of p on port and waits until it is ready or has failed.
func launch(p Program, bin string, o *Options, port int) (*Peer, error) {
	peer := &Peer{
		program: p,
		bin:     bin,
		dir:     o.Dir,
		port:    port,
		logPath: filepath.Join(o.Dir, string(p)+".log"),
		exited:  make(chan struct{}),
	}
	conf := filepath.Join(o.Dir, string(p)+".conf")
	text := strings.NewReplacer(PortPlaceholder, strconv.Itoa(port), DirPlaceholder, o.Dir).Replace(o.Config)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("realpeer: %w", err)
	}
	var err error
	if peer.logFile, err = os.Create(peer.logPath); err != nil {
		return nil, fmt.Errorf("realpeer: %w", err)
	}
	peer.cmd = exec.Command(bin, p.args(conf)...)
	peer.cmd.Dir = o.Dir
	peer.cmd.Stdout = peer.logFile
	peer.cmd.Stderr = peer.logFile
	start := time.Now()
	if err := peer.cmd.Start(); err != nil {
		peer.logFile.Close()
		return nil, fmt.Errorf("realpeer: starting %s: %w", bin, err)
	}
	go func() {
		peer.waitErr = peer.cmd.Wait()
		peer.logFile.Close()
		close(peer.exited)
	}()

	timer := time.NewTimer(o.StartTimeout)
	defer timer.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastProbe error
	for {
		if listens(peer.cmd.Process.Pid, port) {
			if lastProbe = amqpAnswers(peer.Addr()); lastProbe == nil {
				return peer, nil
			}
		}
		select {
		case <-peer.exited:
			log := peer.Log()
			why := fmt.Errorf("exited (%v) before it was ready", peer.waitErr)
			if portTaken(log) {
				why = fmt.Errorf("%w: %w", errPortTaken, why)
			}
			return nil, fmt.Errorf("realpeer: %s on %s %w; the end of its log:\n%s", p, peer.Addr(), why, tail(log))
		case <-timer.C:
			why := "it does not listen on the port"
			if lastProbe != nil {
				why = "its port does not answer an AMQP 1.0 header: " + lastProbe.Error()
			}
			err := fmt.Errorf("realpeer: %s on %s was not ready within %v (%s); the end of its log:\n%s",
				p, peer.Addr(), time.Since(start).Round(time.Millisecond), why, tail(peer.Log()))
			if cerr := peer.kill(); cerr != nil {
				err = fmt.Errorf("%w\n%v", err, cerr)
			}
			return nil, err
		case <-tick.C:
		}
	}
}

// portTaken reports whether a program's log says its port was in use.
func portTaken(log string) bool {
	return strings.Contains(strings.ToLower(log), "address already in use")
}

// StartQdrouterd starts qdrouterd for a test, as Start does, in t.TempDir, and kills it in
// t.Cleanup (which fails the test if it had exited by itself, and shows the end of its log
// if the test failed). When qdrouterd is not built it skips t with the reason, or fails it
// under CI=true, where every peer must run; when it does not start it fails t.
func StartQdrouterd(t testing.TB, opts *Options) *Peer { t.Helper(); return startT(t, Qdrouterd, opts) }

// StartQpidd is StartQdrouterd for qpidd.
func StartQpidd(t testing.TB, opts *Options) *Peer { t.Helper(); return startT(t, Qpidd, opts) }

func startT(t testing.TB, p Program, opts *Options) *Peer {
	t.Helper()
	if _, err := p.Binary(); err != nil {
		peers.Missing(t, "%v", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	peer, err := Start(p, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the end of %s's log (%s):\n%s", p, peer.logPath, tail(peer.Log()))
		}
		if err := peer.Close(); err != nil {
			t.Error(err)
		}
	})
	return peer
}

// Program returns which program the peer runs.
func (p *Peer) Program() Program { return p.program }

// URL returns the peer's address as amqp://127.0.0.1:PORT.
func (p *Peer) URL() string { return "amqp://" + p.Addr() }

// Addr returns the peer's address as 127.0.0.1:PORT.
func (p *Peer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Port returns the port the peer listens on.
func (p *Peer) Port() int { return p.port }

// Dir returns the peer's directory, which holds its configuration file (PROGRAM.conf)
// and its log (PROGRAM.log).
func (p *Peer) Dir() string { return p.dir }

// Pid returns the program's process id.
func (p *Peer) Pid() int { return p.cmd.Process.Pid }

// Log returns what the program wrote on stdout and stderr so far: its log, unless its
// configuration sends the log to a file of its own.
func (p *Peer) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// errExited is in the error of Close when the program had exited before it.
var errExited = errors.New("it had exited by itself")

// Close kills the program (SIGKILL), waits (at most 10 s) until it has exited, and
// removes the peer's directory if Start made it. It returns an error if the program had
// already exited by itself (a crash; the error quotes the end of its log) or did not exit
// in time. Later calls return the first call's result.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		select {
		case <-p.exited:
			p.closeErr = fmt.Errorf("realpeer: %s on %s: %w (%v); the end of its log:\n%s",
				p.program, p.Addr(), errExited, p.waitErr, tail(p.Log()))
		default:
			p.closeErr = p.kill()
		}
		if p.ownDir {
			if err := os.RemoveAll(p.dir); err != nil && p.closeErr == nil {
				p.closeErr = fmt.Errorf("realpeer: %w", err)
			}
		}
	})
	return p.closeErr
}

// kill kills the process and waits until it has exited.
func (p *Peer) kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("realpeer: killing %s (pid %d): %w", p.program, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("realpeer: %s (pid %d) did not exit within %v of SIGKILL", p.program, p.cmd.Process.Pid, closeTimeout)
	}
}

// tail returns the last lines of log, indented.
func tail(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "\t(empty)"
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// The AMQP 1.0 protocol headers: SASL (protocol id 3) and plain (0).
var (
	saslHeader  = []byte("AMQP\x03\x01\x00\x00")
	plainHeader = []byte("AMQP\x00\x01\x00\x00")
)

// amqpAnswers sends an AMQP 1.0 SASL protocol header to addr and returns nil if an AMQP
// 1.0 header (SASL or plain) comes back.
func amqpAnswers(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write(saslHeader); err != nil {
		return err
	}
	got := make([]byte, len(saslHeader))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("no AMQP header back: %w", err)
	}
	if !bytes.Equal(got, saslHeader) && !bytes.Equal(got, plainHeader) {
		return fmt.Errorf("answered %q, not an AMQP 1.0 header", got)
	}
	return nil
}

// listens reports whether process pid holds a socket that listens on TCP port (of any
// address, IPv4 or IPv6), from /proc: its fds against the listening sockets' inodes.
func listens(pid, port int) bool {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(n) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
}

// QdstatCommand returns the command that runs qdrouterd's qdstat with args, as the
// deployment guide's readers run it:
//
//	PYTHONPATH=<prefix>/lib/qpid-dispatch/python /usr/bin/python3 <prefix>/bin/qdstat args...
//
// where <prefix> is the install prefix of Qdrouterd.Binary and the interpreter is
// $AMQP1KIT_PYTHON if set. It needs Proton's Python binding (Debian python3-qpid-proton).
// Example: QdstatCommand("-b", peer.Addr(), "-g") for the router's statistics.
func QdstatCommand(args ...string) (*exec.Cmd, error) { return toolCommand("qdstat", args) }

// QdmanageCommand is QdstatCommand for qdrouterd's qdmanage, e.g.
// QdmanageCommand("-b", peer.Addr(), "query", "--type=address").
func QdmanageCommand(args ...string) (*exec.Cmd, error) { return toolCommand("qdmanage", args) }

func toolCommand(tool string, args []string) (*exec.Cmd, error) {
	bin, err := Qdrouterd.Binary()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Dir(filepath.Dir(bin))
	script := filepath.Join(prefix, "bin", tool)
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("realpeer: no %s beside %s: %w", tool, bin, err)
	}
	python := os.Getenv(pyoslo.EnvPython)
	if python == "" {
		python = pyoslo.DefaultPython
	}
	cmd := exec.Command(python, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(prefix, "lib", "qpid-dispatch", "python"))
	return cmd, nil
}
