package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
)

func TestServeRouterAndBrokerUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--router-addr", "127.0.0.1:0", "--broker-addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	rd := bufio.NewReader(pr)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	var conn *amqp.Conn
	for _, product := range []string{"qpid-dispatch-router", "qpid-cpp"} {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		url := strings.TrimSpace(line[strings.Index(line, "amqp://"):])
		c, err := amqp.Dial(dctx, url, nil)
		require.NoError(t, err)
		require.Equal(t, product, c.Properties()["product"], line)
		if conn == nil {
			conn = c
		} else {
			c.Close()
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop when cancelled")
	}
	conn.Close()
}

func TestBadArgumentsAreClearErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"serve", "--no-such-flag"}, &out, &errOut))
	require.Contains(t, errOut.String(), "no-such-flag")
	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"serve", "--router-config", "/nonexistent/q.conf"}, &out, &errOut))
	require.Contains(t, errOut.String(), "/nonexistent/q.conf")
	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"--help"}, &out, &errOut))
	require.Contains(t, out.String(), "serve")
	errOut.Reset()
	require.Equal(t, 1, run(context.Background(), []string{"serve", "--no-router", "--no-broker"}, &out, &errOut))
	require.Contains(t, errOut.String(), "nothing to serve")
}

func TestGuideQpiddConfHasNoPortSoTheDefaultAddressApplies(t *testing.T) {
	dir := t.TempDir()
	guide := dir + "/qpidd.conf"
	require.NoError(t, os.WriteFile(guide, []byte("queue-patterns=exclusive\nqueue-patterns=unicast\ntopic-patterns=broadcast\n"), 0o600))
	require.False(t, configHasPort(guide), "the guide's qpidd.conf names no port: serve keeps 127.0.0.1:5673")
	withPort := dir + "/port.conf"
	require.NoError(t, os.WriteFile(withPort, []byte("port=5999\n"), 0o600))
	require.True(t, configHasPort(withPort))
}

// serve --cpu-profile writes a CPU profile (gzipped, as runtime/pprof writes it) of
// the whole serve, flushed at shutdown; an unwritable path is an error before serving.
func TestServeWritesACPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.out")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--no-router", "--broker-addr", "127.0.0.1:0", "--cpu-profile", path}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "amqp://")
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	require.Equal(t, 0, <-done, stderr.String())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(data), 2)
	require.Equal(t, []byte{0x1f, 0x8b}, data[:2], "a pprof profile is gzipped")

	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{"serve", "--no-router", "--broker-addr", "127.0.0.1:0", "--cpu-profile", "/nonexistent/dir/cpu.out"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--cpu-profile")
}
