package rabbitmq_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
)

// needRabbitMQ skips the test when RabbitMQ is not installed, saying why; under CI=true,
// where every peer must run, it fails the test instead.
func needRabbitMQ(t *testing.T) {
	t.Helper()
	if err := rabbitmq.Installed(); err != nil {
		peers.Missing(t, "%v", err)
	}
}

func TestInstalled(t *testing.T) {
	err := rabbitmq.Installed()
	if _, serr := os.Stat(rabbitmq.Server); serr == nil {
		require.NoError(t, err)
	} else {
		require.ErrorContains(t, err, "rabbitmq-server", "the error must name the Debian package")
	}
}

func TestRSS(t *testing.T) {
	n, err := rabbitmq.RSS(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, n, uint64(1<<20), "the test process's resident set, in bytes")
	_, err = rabbitmq.RSS(-1)
	require.Error(t, err)
}

func TestScript(t *testing.T) {
	p, err := rabbitmq.Script()
	require.NoError(t, err)
	require.True(t, filepath.IsAbs(p), p)
	require.Equal(t, filepath.FromSlash(rabbitmq.ScriptPath), p[len(p)-len(rabbitmq.ScriptPath):])
}

// deadPID returns the pid of a process that has exited and been waited for.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// TestRabbitMQStartStop starts a node (after planting a stale node directory of a dead
// owner with the same prefix, which Start must reap), checks it, stops it twice.
func TestRabbitMQStartStop(t *testing.T) {
	needRabbitMQ(t)
	const prefix = "amqp1kit-rabbitmq-test-"
	stale, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(stale) })
	require.NoError(t, os.WriteFile(filepath.Join(stale, "owner.pid"), []byte(strconv.Itoa(deadPID(t))), 0o644))

	n, err := rabbitmq.Start(prefix)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = n.Stop()
		}
	})
	t.Logf("node %s, pid %d, dir %s, started in %v", n.URL, n.PID, n.Dir, n.Took.Round(time.Millisecond))
	require.NoDirExists(t, stale, "Start must reap the stale node directory of a dead owner")

	require.True(t, strings.HasPrefix(filepath.Base(n.Dir), prefix), n.Dir)
	owner, err := os.ReadFile(filepath.Join(n.Dir, "owner.pid"))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid()), string(owner))
	require.Positive(t, n.Took)
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(n.PID) + "/comm")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(comm), "beam"), "pid %d is %q, not a beam", n.PID, comm)
	rss, err := rabbitmq.RSS(n.PID)
	require.NoError(t, err)
	require.Positive(t, rss)

	// The port answers AMQP 1.0.
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.URL, "amqp://"), 5*time.Second)
	require.NoError(t, err)
	hdr := []byte("AMQP\x03\x01\x00\x00")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Write(hdr)
	require.NoError(t, err)
	got := make([]byte, len(hdr))
	_, err = c.Read(got)
	require.NoError(t, err)
	require.Equal(t, hdr, got)
	_ = c.Close()

	require.NoError(t, n.Stop())
	stopped = true
	require.NoDirExists(t, n.Dir)
	require.ErrorIs(t, syscall.Kill(n.PID, 0), syscall.ESRCH, "the beam must be gone")
	require.NoError(t, n.Stop(), "a second Stop does nothing")
}

// TestRabbitMQShared: Get starts one node and returns it again; Stop stops it; Get after
// Stop fails.
func TestRabbitMQShared(t *testing.T) {
	needRabbitMQ(t)
	t.Setenv(rabbitmq.EnvURL, "") // FromEnv must start a node when it is unset
	s := &rabbitmq.Shared{Prefix: "amqp1kit-rabbitmq-test-shared-", FromEnv: true}
	t.Cleanup(func() { _ = s.Stop() })
	n, err := s.Get()
	require.NoError(t, err)
	require.NotEmpty(t, n.Dir)
	n2, err := s.Get()
	require.NoError(t, err)
	require.Same(t, n, n2, "one node per Shared")
	require.NoError(t, s.Stop())
	require.NoDirExists(t, n.Dir)
	require.ErrorIs(t, syscall.Kill(n.PID, 0), syscall.ESRCH, "the beam must be gone")
	require.NoError(t, s.Stop())
	_, err = s.Get()
	require.Error(t, err)
}

// TestSharedFromEnv: with EnvURL set, Get starts nothing and Stop stops nothing.
func TestSharedFromEnv(t *testing.T) {
	t.Setenv(rabbitmq.EnvURL, "amqp://127.0.0.1:1")
	t.Setenv(rabbitmq.EnvPID, strconv.Itoa(os.Getpid()))
	s := &rabbitmq.Shared{Prefix: "amqp1kit-rabbitmq-test-env-", FromEnv: true}
	n, err := s.Get()
	require.NoError(t, err)
	require.Equal(t, &rabbitmq.Node{URL: "amqp://127.0.0.1:1", PID: os.Getpid()}, n)
	require.NoError(t, s.Stop())

	t.Setenv(rabbitmq.EnvPID, "x")
	_, err = (&rabbitmq.Shared{FromEnv: true}).Get()
	require.ErrorContains(t, err, rabbitmq.EnvPID)
}

// TestRabbitMQStartFails: a start that fails says what scripts/rabbitmq.sh said and
// leaves neither a node nor a directory behind.
func TestRabbitMQStartFails(t *testing.T) {
	needRabbitMQ(t)
	t.Setenv("AMQP1KIT_RABBITMQ_START_TIMEOUT", "0")
	const prefix = "amqp1kit-rabbitmq-test-fails-"
	n, err := rabbitmq.Start(prefix)
	if err == nil {
		_ = n.Stop()
		t.Fatal("Start succeeded with a start timeout of 0 s")
	}
	t.Log(err)
	require.ErrorContains(t, err, "did not accept an AMQP 1.0 connection", "the script's stderr")
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	require.Empty(t, dirs)
}
