package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServeStatusPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--router-addr", "127.0.0.1:0", "--broker-addr", "127.0.0.1:0", "--http", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	rd := bufio.NewReader(pr)
	var page string
	for range 3 {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		if i := strings.Index(line, "http://"); i >= 0 {
			require.True(t, strings.HasPrefix(line, "status page"), line)
			page = strings.TrimSpace(line[i:])
		}
	}
	require.NotEmpty(t, page, "serve did not print the status page's URL")
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	resp, err := http.Get(page + "api/status")
	require.NoError(t, err)
	var s struct{ Router, Broker struct{ URL string } }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	resp.Body.Close()
	require.Contains(t, s.Router.URL, "amqp://127.0.0.1:")
	require.Contains(t, s.Broker.URL, "amqp://127.0.0.1:")

	resp, err = http.Get(page + "metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), "amqp1kit_router_connections 0")
	require.Contains(t, string(body), "amqp1kit_broker_connections 0")

	resp, err = http.Post(page+"api/status", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// A request for another host name (DNS rebinding) is refused.
	req, err := http.NewRequest(http.MethodGet, page+"api/status", nil)
	require.NoError(t, err)
	req.Host = "attacker.example:8672"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	req.Host = "localhost:8672"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop when cancelled")
	}
	_, err = http.Get(page)
	require.Error(t, err, "the status page outlived serve")
}

func TestServeStatusPageIsLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8672", ":8672", "[::]:8672", "192.0.2.1:8672", "example.com:8672", "8672"} {
		var out, errOut bytes.Buffer
		require.Equal(t, 2, run(context.Background(), []string{"serve", "--router-addr", "127.0.0.1:0", "--broker-addr", "127.0.0.1:0", "--http", addr}, &out, &errOut), addr)
		require.Contains(t, errOut.String(), "--http", addr)
		require.Empty(t, out.String(), "serve started something for %s", addr)
	}
	for _, addr := range []string{"127.0.0.1:8672", "127.1.2.3:0", "[::1]:8672", "localhost:8672"} {
		require.NoError(t, loopbackAddr(addr), addr)
	}
}
