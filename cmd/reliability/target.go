package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// The intermediaries a probe runs against, each in a process of its own.
const (
	fakeRouter = "fakerouter"
	fakeBroker = "fakebroker"
	qdrouterd  = "qdrouterd"
	qpidd      = "qpidd"
)

// realOf names the real program a fake imitates.
var realOf = map[string]string{fakeRouter: qdrouterd, fakeBroker: qpidd}

// isRouter reports whether name is one of the routers.
func isRouter(name string) bool { return name == fakeRouter || name == qdrouterd }

// target is one running intermediary.
type target struct {
	name string
	addr string // host:port
	pid  int
	stop func() error
	kill func() error // SIGKILL, waits for the process to be gone
}

func (t *target) url() string { return "amqp://" + t.addr }

// rssKiB returns the process's resident set size in KiB, from /proc.
func (t *target) rssKiB() (int, error) { return rssKiB(t.pid) }

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// starter starts targets: the fakes through `amqp1kit serve`, the real programs
// through realpeer with the deployment guide's configuration.
type starter struct {
	amqp1kit string    // the amqp1kit binary
	log      io.Writer // where the fakes' log goes
}

// start starts the named intermediary. brokerDir is the fake broker's journal
// directory (empty: none).
func (s *starter) start(name, brokerDir string) (*target, error) {
	switch name {
	case fakeRouter:
		return s.serve(name, "--no-broker", "--router-addr", "127.0.0.1:0")
	case fakeBroker:
		args := []string{"--no-router", "--broker-addr", "127.0.0.1:0"}
		if brokerDir != "" {
			args = append(args, "--broker-dir", brokerDir)
		}
		return s.serve(name, args...)
	case qdrouterd, qpidd:
		return s.startReal(name, "")
	}
	return nil, fmt.Errorf("unknown intermediary %q", name)
}

// startReal starts qdrouterd or qpidd with the deployment guide's configuration and
// extra lines at its end.
func (s *starter) startReal(name, extra string) (*target, error) {
	p, err := realpeer.Start(realpeer.Program(name), &realpeer.Options{Config: realpeer.Program(name).DefaultConfig() + extra})
	if err != nil {
		return nil, err
	}
	kill := func() error { return p.Close() }
	return &target{name: name, addr: p.Addr(), pid: p.Pid(), stop: kill, kill: kill}, nil
}

// available reports why the named intermediary cannot be started, or nil.
func (s *starter) available(name string) error {
	switch name {
	case qdrouterd, qpidd:
		_, err := realpeer.Program(name).Binary()
		return err
	}
	return nil
}

// serve runs `amqp1kit serve ARGS` and reads the address it listens on from its
// output.
func (s *starter) serve(name string, args ...string) (*target, error) {
	cmd := exec.Command(s.amqp1kit, append([]string{"serve"}, args...)...)
	cmd.Stderr = s.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), "amqp://"); ok {
				select {
				case addrc <- strings.TrimSpace(url):
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		return nil, fmt.Errorf("%s serve exited before listening", s.amqp1kit)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s serve printed no address within 30s", s.amqp1kit)
	}
	waitGone := func() error {
		select {
		case <-exited:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) still running 10s after it was told to stop", name, cmd.Process.Pid)
		}
	}
	signal := func(sig syscall.Signal) func() error {
		return func() error {
			if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				return err
			}
			return waitGone()
		}
	}
	kill := signal(syscall.SIGKILL)
	stop := func() error {
		if err := signal(syscall.SIGTERM)(); err != nil {
			_ = kill()
			return err
		}
		return nil
	}
	return &target{name: name, addr: addr, pid: cmd.Process.Pid, stop: stop, kill: kill}, nil
}
