package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
)

func TestServeRouterUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--router-addr", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	url := line[strings.Index(line, "amqp://"):]
	url = strings.TrimSpace(url)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	conn, err := amqp.Dial(dctx, url, nil)
	require.NoError(t, err)
	require.Equal(t, "qpid-dispatch-router", conn.Properties()["product"])
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
}
