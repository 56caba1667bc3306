package realpeer_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

func dial(t *testing.T, ctx context.Context, url string) (*amqp.Conn, *amqp.Session) {
	t.Helper()
	conn, err := amqp.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	return conn, sess
}

// The real qdrouterd runs the guide's address table on 127.0.0.1: it says who it is,
// and broadcast is multicast (each of two consumers gets a copy).
func TestQdrouterd(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := realpeer.StartQdrouterd(t, nil)
	t.Logf("qdrouterd ready in %v at %s", time.Since(start).Round(time.Millisecond), r.URL())
	require.Equal(t, realpeer.Qdrouterd, r.Program())
	require.True(t, strings.HasPrefix(r.Addr(), "127.0.0.1:"), r.Addr())
	require.Equal(t, "amqp://"+r.Addr(), r.URL())
	conf, err := os.ReadFile(filepath.Join(r.Dir(), "qdrouterd.conf"))
	require.NoError(t, err)
	require.Contains(t, string(conf), "port: "+strconv.Itoa(r.Port()))
	require.Contains(t, string(conf), "host: 127.0.0.1")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, sess := dial(t, ctx, r.URL())
	require.Equal(t, "qpid-dispatch-router", conn.Properties()["product"])
	require.Equal(t, "1.19.0", conn.Properties()["version"])
	var rcvs []*amqp.Receiver
	for range 2 {
		rcv, err := sess.NewReceiver(ctx, "broadcast.realpeer.all", &amqp.ReceiverOptions{Credit: 1})
		require.NoError(t, err)
		rcvs = append(rcvs, rcv)
	}
	snd, err := sess.NewSender(ctx, "broadcast.realpeer.all", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("fanout")), &amqp.SendOptions{Settled: true}))
	for _, rcv := range rcvs {
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, "fanout", string(m.GetData()))
	}
	require.Contains(t, r.Log(), "Router started", "the log is qdrouterd's stderr")
}

// The real qpidd runs the guide's patterns on 127.0.0.1: it says it is qpid-cpp, and a
// message sent to a unicast queue before anyone listens is stored, then delivered.
func TestQpidd(t *testing.T) {
	t.Parallel()
	start := time.Now()
	b := realpeer.StartQpidd(t, nil)
	t.Logf("qpidd ready in %v at %s", time.Since(start).Round(time.Millisecond), b.URL())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, sess := dial(t, ctx, b.URL())
	require.Equal(t, "qpid-cpp", conn.Properties()["product"])
	snd, err := sess.NewSender(ctx, "unicast.realpeer.q", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("stored")), nil), "qpidd settles once stored")
	rcv, err := sess.NewReceiver(ctx, "unicast.realpeer.q", &amqp.ReceiverOptions{Credit: 1})
	require.NoError(t, err)
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "stored", string(m.GetData()))
	require.NoError(t, rcv.AcceptMessage(ctx, m))
	require.Contains(t, b.Log(), "Listening on TCP/TCP6 port "+strconv.Itoa(b.Port()))
}

// Options.Config replaces the whole file, with ${PORT} and ${DIR} filled in: without
// the guide's topic pattern qpidd has no node for broadcast.
func TestQpiddConfig(t *testing.T) {
	t.Parallel()
	conf := "port=${PORT}\ninterface=127.0.0.1\nauth=no\nno-data-dir=yes\npid-dir=${DIR}\nqueue-patterns=unicast\n"
	b := realpeer.StartQpidd(t, &realpeer.Options{Config: conf})
	written, err := os.ReadFile(filepath.Join(b.Dir(), "qpidd.conf"))
	require.NoError(t, err)
	require.Equal(t, strings.NewReplacer("${PORT}", strconv.Itoa(b.Port()), "${DIR}", b.Dir()).Replace(conf), string(written))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, sess := dial(t, ctx, b.URL())
	_, err = sess.NewReceiver(ctx, "broadcast.realpeer.all", nil)
	require.Error(t, err, "no topic pattern, no node")
}

// A port that another process holds is not taken for the peer's: with Options.Port
// fixed, Start fails, saying so and quoting the program's log.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	for _, p := range []realpeer.Program{realpeer.Qdrouterd, realpeer.Qpidd} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			if _, err := p.Binary(); err != nil {
				peers.Missing(t, "%v", err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			port := l.Addr().(*net.TCPAddr).Port
			peer, err := realpeer.Start(p, &realpeer.Options{Port: port, Dir: t.TempDir()})
			require.Nil(t, peer)
			require.ErrorContains(t, err, "exited")
			require.ErrorContains(t, err, "its port was taken")
			require.ErrorContains(t, err, "in use", "the error quotes the log")
		})
	}
}

// Start without a test: the peer's own temporary directory goes with Close; a second
// Close returns the first one's result.
func TestStartAndClose(t *testing.T) {
	t.Parallel()
	if _, err := realpeer.Qpidd.Binary(); err != nil {
		peers.Missing(t, "%v", err)
	}
	b, err := realpeer.Start(realpeer.Qpidd, nil)
	require.NoError(t, err)
	dir := b.Dir()
	require.DirExists(t, dir)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	require.NoDirExists(t, dir)
}

// Binary takes the environment variable's file, and says how to build a missing one.
func TestBinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-qdrouterd")
	t.Setenv(realpeer.EnvQdrouterd, missing)
	_, err := realpeer.Qdrouterd.Binary()
	require.ErrorContains(t, err, "$"+realpeer.EnvQdrouterd)
	require.ErrorContains(t, err, "bash scripts/real-peers.sh build qdrouterd")

	exe := filepath.Join(t.TempDir(), "qpidd")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv(realpeer.EnvQpidd, exe)
	got, err := realpeer.Qpidd.Binary()
	require.NoError(t, err)
	require.Equal(t, exe, got)

	_, err = realpeer.Program("activemq").Binary()
	require.ErrorContains(t, err, "unknown program")
}

// A configuration must say where the port goes when Start picks it.
func TestConfigWithoutPort(t *testing.T) {
	if _, err := realpeer.Qdrouterd.Binary(); err != nil {
		peers.Missing(t, "%v", err)
	}
	_, err := realpeer.Start(realpeer.Qdrouterd, &realpeer.Options{Config: "router {\n    mode: standalone\n}\n"})
	require.ErrorContains(t, err, "${PORT}")
}

// The default configurations are the guide's, on 127.0.0.1.
func TestDefaultConfigs(t *testing.T) {
	for _, want := range []string{"host: 127.0.0.1", "port: ${PORT}", "prefix: openstack.org/om/rpc/anycast", "distribution: balanced", "prefix: broadcast"} {
		require.Contains(t, realpeer.Qdrouterd.DefaultConfig(), want)
	}
	require.NotContains(t, realpeer.Qdrouterd.DefaultConfig(), "0.0.0.0")
	for _, want := range []string{"port=${PORT}\n", "interface=127.0.0.1\n", "auth=no\n", "queue-patterns=exclusive\n",
		"queue-patterns=unicast\n", "topic-patterns=broadcast\n", "no-data-dir=yes\n", "pid-dir=${DIR}\n"} {
		require.Contains(t, realpeer.Qpidd.DefaultConfig(), want)
	}
}

// qdstat, qdrouterd's own tool, reads the router's statistics.
func TestQdstat(t *testing.T) {
	t.Parallel()
	r := realpeer.StartQdrouterd(t, nil)
	cmd, err := realpeer.QdstatCommand("-b", r.Addr(), "-g")
	require.NoError(t, err)
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "No module named 'proton'") {
		peers.Missing(t, "qdstat needs Proton's Python binding (Debian python3-qpid-proton): %s", out)
	}
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Router Statistics")
	require.Regexp(t, `Version\s+1\.19\.0`, string(out))
	require.Regexp(t, `Mode\s+standalone`, string(out))

	cmd, err = realpeer.QdmanageCommand("-b", r.Addr(), "query", "--type=address")
	require.NoError(t, err)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"prefix": "openstack.org/om/notify/multicast"`)
}
