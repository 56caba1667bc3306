package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// An intermediary's kind decides the addresses a workload uses on it.
const (
	kindRouter = "router"
	kindBroker = "broker"
	kindRabbit = "rabbitmq"
	kindFloor  = "floor"
)

// targetSpec is an intermediary the harness can start.
type targetSpec struct {
	name  string
	title string
	kind  string
	start func(ctx context.Context, h *harness) (*target, error)
}

// target is a running intermediary.
type target struct {
	spec    *targetSpec
	url     string // amqp://127.0.0.1:PORT, or 127.0.0.1:PORT for the floor's relay
	pid     int    // the process measured
	version string // what runs, for the report
	stop    func() error
}

var targetSpecs = []*targetSpec{
	{name: "fakerouter", title: "amqp1kit's fake router: `amqp1kit serve --no-broker`, its own process", kind: kindRouter, start: startFakeRouter},
	{name: "qdrouterd", title: "the real qdrouterd 1.19.0, the guide's configuration (internal/testenv/realpeer)", kind: kindRouter, start: startReal(realpeer.Qdrouterd)},
	{name: "fakebroker", title: "amqp1kit's fake broker: `amqp1kit serve --no-router`, its own process", kind: kindBroker, start: startFakeBroker},
	{name: "qpidd", title: "the real qpidd 1.39.0, the guide's configuration, no data directory (internal/testenv/realpeer)", kind: kindBroker, start: startReal(realpeer.Qpidd)},
	{name: "rabbitmq", title: "a private RabbitMQ node with rabbitmq_amqp1_0 (internal/testenv/rabbitmq)", kind: kindRabbit, start: startRabbit},
	{name: "floor", title: "plain TCP: client → relay → server → relay → client, three processes", kind: kindFloor, start: startFloor},
}

func targetNames() []string {
	names := make([]string, len(targetSpecs))
	for i, t := range targetSpecs {
		names[i] = t.name
	}
	return names
}

func targetByName(name string) *targetSpec {
	for _, t := range targetSpecs {
		if t.name == name {
			return t
		}
	}
	return nil
}

// childAttr makes a child process die with the harness even when the harness is killed
// without a chance to stop it (SIGKILL).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// amqp1kitBinary returns the amqp1kit binary: --amqp1kit, else one built from this
// checkout into the harness's temporary directory (once).
func (h *harness) amqp1kitBinary(ctx context.Context) (string, error) {
	if h.cfg.amqp1kit != "" {
		return h.cfg.amqp1kit, nil
	}
	if h.builtAmqp1kit != "" {
		return h.builtAmqp1kit, nil
	}
	root, err := modroot.Root()
	if err != nil {
		return "", err
	}
	dir, err := h.tempDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "amqp1kit")
	h.logf("building amqp1kit from %s (go build ./amqp1kit in cmd/)", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./amqp1kit")
	cmd.Dir = filepath.Join(root, "cmd") // a module of its own
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./amqp1kit in %s/cmd: %v\n%s(a tree that does not build: pass --amqp1kit PATH, built from a worktree of HEAD)",
			root, err, out)
	}
	h.builtAmqp1kit = bin
	return bin, nil
}

// serveProc is an `amqp1kit serve` process.
type serveProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startServe runs amqp1kit serve with args and returns once it has printed its URL.
func startServe(ctx context.Context, h *harness, what string, args ...string) (*target, error) {
	bin, err := h.amqp1kitBinary(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s serve: %w", bin, err)
	}
	p := &serveProc{cmd: cmd, exited: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "amqp://"); i >= 0 && !sent {
				urls <- strings.TrimSpace(sc.Text()[i:])
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	stop := func() error {
		select {
		case <-p.exited:
			return fmt.Errorf("%s (amqp1kit serve, pid %d) had exited by itself: %s", what, cmd.Process.Pid, strings.TrimSpace(stderr.String()))
		default:
		}
		_ = cmd.Process.Signal(os.Interrupt) // serve closes its connections cleanly
		select {
		case <-p.exited:
			return nil
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("%s (amqp1kit serve) did not stop within 10 s of SIGINT: killed", what)
		}
	}
	select {
	case url := <-urls:
		return &target{url: url, pid: cmd.Process.Pid, version: "amqp1kit serve (" + h.commit + ")", stop: stop}, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s: amqp1kit serve exited before it served: %s", what, strings.TrimSpace(stderr.String()))
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-p.exited
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%s: amqp1kit serve printed no URL within 30 s", what)
}

func startFakeRouter(ctx context.Context, h *harness) (*target, error) {
	return startServe(ctx, h, "fake router", "--no-broker", "--router-addr", "127.0.0.1:0")
}

func startFakeBroker(ctx context.Context, h *harness) (*target, error) {
	return startServe(ctx, h, "fake broker", "--no-router", "--broker-addr", "127.0.0.1:0")
}

func startReal(p realpeer.Program) func(context.Context, *harness) (*target, error) {
	return func(ctx context.Context, h *harness) (*target, error) {
		peer, err := realpeer.Start(p, nil)
		if err != nil {
			return nil, err
		}
		bin, _ := p.Binary()
		version := "1.19.0"
		if p == realpeer.Qpidd {
			version = "1.39.0"
		}
		return &target{url: peer.URL(), pid: peer.Pid(), version: string(p) + " " + version + " (" + bin + ")", stop: peer.Close}, nil
	}
}

func startRabbit(ctx context.Context, h *harness) (*target, error) {
	if err := rabbitmq.Installed(); err != nil {
		return nil, err
	}
	h.logf("starting RabbitMQ (takes ~5–20 s)")
	node, err := rabbitmq.Start("amqp1kit-benchmatrix-rabbitmq-")
	if err != nil {
		return nil, err
	}
	version := "RabbitMQ"
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server").Output(); err == nil {
		version += " " + strings.TrimSpace(string(out)) + " (Debian rabbitmq-server), rabbitmq_amqp1_0"
	}
	return &target{url: node.URL, pid: node.PID, version: version, stop: node.Stop}, nil
}

// startFloor starts the floor's server and its relay, two processes of this program.
func startFloor(ctx context.Context, h *harness) (*target, error) {
	srv, err := h.startRoleProcess(ctx, "tcp-server", "-size", fmt.Sprint(h.cfg.size))
	if err != nil {
		return nil, err
	}
	relay, err := h.startRoleProcess(ctx, "relay", "-to", srv.addr)
	if err != nil {
		_ = srv.stop()
		return nil, err
	}
	return &target{url: relay.addr, pid: relay.cmd.Process.Pid, version: "this program's relay and server (Go, plain TCP, a 32 KiB buffer per direction)",
		stop: func() error { return errors.Join(relay.stop(), srv.stop()) }}, nil
}

// roleProc is a long-lived process of this program in a role (relay, tcp-server).
type roleProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

func (p *roleProc) stop() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had exited by itself", strings.Join(p.cmd.Args, " "))
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return nil
}

// startRoleProcess starts this program as role with args and waits for the address it
// prints (its first stdout line: {"event":"listening","addr":...}).
func (h *harness) startRoleProcess(ctx context.Context, role string, args ...string) (*roleProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.SysProcAttr = childAttr()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &roleProc{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan workerLine, 1)
	go func() {
		readLines(stdout, lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	select {
	case l, ok := <-lines:
		if ok && l.Event == "listening" && l.Addr != "" {
			p.addr = l.Addr
			return p, nil
		}
		_ = p.stop()
		return nil, fmt.Errorf("%s: printed %+v, not its address", role, l)
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	_ = p.stop()
	return nil, fmt.Errorf("%s: no address within 10 s", role)
}
