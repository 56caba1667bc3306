package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs the command with a deadline and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// startServer serves methods on topic (as server name) over its own transport to url.
func startServer(t *testing.T, url, topic, name string, methods map[string]driver.Method) {
	t.Helper()
	tr, err := driver.NewTransport(url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	srv, err := driver.NewRPCServer(tr, driver.Target{Topic: topic, Server: name}, []driver.Endpoint{{Methods: methods}}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the test server did not attach")
	}
}

func calculatorMethods() map[string]driver.Method {
	return map[string]driver.Method{
		"add": func(_ context.Context, req *driver.Request) (any, error) {
			var a, b int
			if err := errors.Join(req.Arg("a", &a), req.Arg("b", &b)); err != nil {
				return nil, err
			}
			return map[string]any{"sum": a + b, "ctxt": req.Context["request_id"]}, nil
		},
		"fail": func(context.Context, *driver.Request) (any, error) {
			return nil, errors.New("the disk is full")
		},
		"divide": func(context.Context, *driver.Request) (any, error) {
			return nil, &driver.RemoteError{Module: "builtins", Class: "ZeroDivisionError", Message: "division by zero",
				Traceback: []string{"Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"}}
		},
	}
}

func TestCallPrintsTheJSONResult(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	startServer(t, r.URL(), "calc", "calc-1", calculatorMethods())
	code, out, errOut := runCmd(t, "call", "--url", r.URL(), "--context", `{"request_id": "req-1"}`, "calc", "add", `{"a": 2, "b": 3}`)
	require.Equal(t, 0, code, errOut)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Equal(t, map[string]any{"sum": 5.0, "ctxt": "req-1"}, got)
	require.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "one line: %q", out)

	// The same through the server's own address, with a version its endpoint serves.
	code, out, errOut = runCmd(t, "call", "--url", r.URL(), "--server", "calc-1", "--version", "1.0", "calc", "add", `{"a": 1, "b": 1}`)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"sum": 2`)
}

func TestCallRemoteExceptionExits1WithTypeAndMessage(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	startServer(t, r.URL(), "calc", "calc-1", calculatorMethods())
	code, out, errOut := runCmd(t, "call", "--url", r.URL(), "calc", "fail")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "remote exception builtins.RuntimeError: the disk is full")

	code, _, errOut = runCmd(t, "call", "--url", r.URL(), "--traceback", "calc", "divide", `{"a": 1, "b": 0}`)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Traceback (most recent call last):\nZeroDivisionError: division by zero\n")
	require.Contains(t, errOut, "remote exception builtins.ZeroDivisionError: division by zero")

	// Another namespace: the server's dispatcher refuses it, as oslo's does.
	code, _, errOut = runCmd(t, "call", "--url", r.URL(), "--namespace", "admin", "calc", "add", `{"a": 1, "b": 1}`)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "UnsupportedVersion")
}

func TestCallWithoutServerTimesOut(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	code, out, errOut := runCmd(t, "call", "--url", r.URL(), "--timeout", "300ms", "nobody", "ping")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "call ping on topic nobody: no reply within 300ms")
}

func TestUnreachableIntermediaryIsReported(t *testing.T) {
	// A port nobody listens on: the router's, once closed.
	r, err := fakerouter.Run(nil)
	require.NoError(t, err)
	url := r.URL()
	require.NoError(t, r.Close())
	for _, args := range [][]string{
		{"call", "--url", url, "--timeout", "500ms", "calc", "add"},
		{"stat", "--url", url, "--timeout", "500ms"},
	} {
		code, _, errOut := runCmd(t, args...)
		require.Equal(t, 1, code, args)
		require.Contains(t, errOut, "cannot connect to amqp://127.0.0.1:", args)
		require.Contains(t, errOut, "within 500ms", args)
	}
}

func TestCastReachesAServerAndFanoutReachesAll(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	got := make(chan string, 4)
	record := func(name string) map[string]driver.Method {
		return map[string]driver.Method{"record": func(_ context.Context, req *driver.Request) (any, error) {
			var event string
			_ = req.Arg("event", &event)
			got <- name + ":" + event
			return nil, nil
		}}
	}
	startServer(t, r.URL(), "audit", "a1", record("a1"))
	startServer(t, r.URL(), "audit", "a2", record("a2"))
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("the cast did not arrive")
			return ""
		}
	}

	code, out, errOut := runCmd(t, "cast", "--url", r.URL(), "--server", "a2", "audit", "record", `{"event": "login"}`)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)
	require.Equal(t, "a2:login", next())

	code, _, errOut = runCmd(t, "cast", "--url", r.URL(), "--fanout", "audit", "record", `{"event": "logout"}`)
	require.Equal(t, 0, code, errOut)
	require.ElementsMatch(t, []string{"a1:logout", "a2:logout"}, []string{next(), next()})
}

// listenLines parses listen's output.
func listenLines(t *testing.T, out string) []notificationLine {
	t.Helper()
	var lines []notificationLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var n notificationLine
		require.NoError(t, json.Unmarshal([]byte(l), &n), l)
		lines = append(lines, n)
	}
	return lines
}

func TestNotifyThenListenThroughTheBroker(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	// The broker keeps the notification until a listener comes.
	code, out, errOut := runCmd(t, "notify", "--url", b.URL(), "--priority", "error", "--publisher-id", "compute.host-1",
		"--context", `{"request_id": "req-7"}`, "notifications", "compute.instance.delete.end", `{"id": "i-1", "n": 12345678901234567890}`)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)

	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCmd(t, "listen", "--url", b.URL(), "--count", "1", "notifications")
		done <- result{code, out, errOut}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("listen --count 1 did not end")
	}
	require.Equal(t, 0, res.code, res.errOut)
	require.Contains(t, res.errOut, "listening on notifications at "+b.URL())
	lines := listenLines(t, res.out)
	require.Len(t, lines, 1)
	n := lines[0]
	require.Equal(t, driver.PriorityError, n.Priority)
	require.Equal(t, "compute.host-1", n.PublisherID)
	require.Equal(t, "compute.instance.delete.end", n.EventType)
	require.JSONEq(t, `{"id": "i-1", "n": 12345678901234567890}`, string(n.Payload))
	require.Contains(t, string(n.Payload), "12345678901234567890", "a big integer travels as written")
	require.Equal(t, map[string]any{"request_id": "req-7"}, n.Ctxt)
	require.NotEmpty(t, n.Metadata.MessageID)
	require.NotEmpty(t, n.Metadata.Timestamp)
}

func TestListenThenNotifyThroughTheRouter(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"listen", "--url", r.URL(), "--count", "2", "--priority", "info", "--priority", "warn", "--pool", "p", "notifications", "versioned"}, &out, &errOut)
	}()
	require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "listening on") }, 10*time.Second, 10*time.Millisecond, errOut.String())

	// The router has no storage: a priority nobody listens to fails the notify.
	code, _, e := runCmd(t, "notify", "--url", r.URL(), "--timeout", "1s", "--priority", "debug", "notifications", "ignored")
	require.Equal(t, 1, code, e)
	code, _, e = runCmd(t, "notify", "--url", r.URL(), "notifications", "first", `"a string payload"`)
	require.Equal(t, 0, code, e)
	code, _, e = runCmd(t, "notify", "--url", r.URL(), "--priority", "warn", "versioned", "second")
	require.Equal(t, 0, code, e)
	select {
	case code = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("listen --count 2 did not end")
	}
	require.Equal(t, 0, code, errOut.String())
	lines := listenLines(t, out.String())
	require.Len(t, lines, 2)
	require.Equal(t, "first", lines[0].EventType)
	require.Equal(t, `"a string payload"`, string(lines[0].Payload))
	require.Equal(t, "amqp1kit", lines[0].PublisherID)
	require.Equal(t, "second", lines[1].EventType)
	require.Equal(t, driver.PriorityWarn, lines[1].Priority)
	require.JSONEq(t, `{}`, string(lines[1].Payload))
}

func TestListenStopsWhenInterrupted(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	var out, errOut syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"listen", "--url", b.URL(), "notifications"}, &out, &errOut) }()
	require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "listening on") }, 10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errOut.String())
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop when interrupted")
	}
	require.Empty(t, out.String())
}

func TestStatTellsRouterFromBroker(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	b := fakebroker.RunT(t, nil)
	code, out, errOut := runCmd(t, "stat", "--url", r.URL())
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^product: +qpid-dispatch-router$`, out)
	require.Regexp(t, `(?m)^version: +\S+`, out)
	require.Regexp(t, `(?m)^addressing: +routable \(addressing_mode dynamic\)$`, out)
	require.Regexp(t, `(?m)^rpc anycast: +openstack.org/om/rpc/anycast/openstack/TOPIC$`, out)

	code, out, errOut = runCmd(t, "stat", "--url", b.URL())
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^product: +qpid-cpp$`, out)
	require.Regexp(t, `(?m)^addressing: +legacy \(addressing_mode dynamic\)$`, out)
	require.Regexp(t, `(?m)^notify anycast: +unicast.openstack.TOPIC.PRIORITY$`, out)

	// The URL's query sets options, as in Python.
	code, out, errOut = runCmd(t, "stat", "--url", r.URL()+"?addressing_mode=legacy")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^addressing: +legacy \(addressing_mode legacy\)$`, out)
}

func TestConfigFileGivesURLsAndOptions(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	b := fakebroker.RunT(t, nil)
	conf := filepath.Join(t.TempDir(), "nova.conf")
	require.NoError(t, os.WriteFile(conf, []byte("[DEFAULT]\ntransport_url = "+r.URL()+"\n"+
		"[oslo_messaging_notifications]\ntransport_url = "+b.URL()+"\n"+
		"[oslo_messaging_amqp]\naddressing_mode = legacy\nno_such_option = 1\n"), 0o600))
	code, out, errOut := runCmd(t, "stat", "--config", conf)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^product: +qpid-dispatch-router$`, out)
	require.Regexp(t, `(?m)^addressing: +legacy \(addressing_mode legacy\)$`, out)
	require.Contains(t, errOut, "oslo_messaging_amqp.no_such_option is not an option there")

	// Notifications go to the file's notification transport_url: the broker stores it.
	code, _, errOut = runCmd(t, "notify", "--config", conf, "notifications", "via.config")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runCmd(t, "listen", "--url", b.URL(), "--count", "1", "--config", conf, "notifications")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "via.config", listenLines(t, out)[0].EventType)

	// An explicit --url wins over the file.
	code, out, errOut = runCmd(t, "stat", "--config", conf, "--url", b.URL())
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^product: +qpid-cpp$`, out)
}

func TestBenchMeasuresCalls(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	code, out, errOut := runCmd(t, "bench", "--url", r.URL(), "--calls", "50", "--concurrency", "4", "--size", "100")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^50 calls in \S+: [0-9.]+ calls/s, latency p50 \S+, p99 \S+\n$`, out)
	require.Contains(t, errOut, "qpid-dispatch-router")
	require.Contains(t, errOut, "routable addresses")

	// Through the broker (legacy addresses) too.
	b := fakebroker.RunT(t, nil)
	code, out, errOut = runCmd(t, "bench", "--url", b.URL(), "--calls", "10")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "10 calls in ")
	require.Contains(t, errOut, "legacy addresses")
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	require.Equal(t, time.Duration(50), percentile(d, 50))
	require.Equal(t, time.Duration(99), percentile(d, 99))
	require.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 99))
	require.Equal(t, time.Duration(0), percentile(nil, 50))
}

func TestBadInputIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	badConf := filepath.Join(dir, "bad.conf")
	require.NoError(t, os.WriteFile(badConf, []byte("[oslo_messaging_amqp]\nrpc_server_credit = lots\n"), 0o600))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "calc", "add", `{"a": `}, "JSON-ARGS: invalid JSON"},
		{[]string{"call", "calc", "add", `[1, 2]`}, "JSON-ARGS: must be a JSON object"},
		{[]string{"cast", "calc", "add", `"x"`}, "JSON-ARGS: must be a JSON object"},
		{[]string{"call", "--context", `{oops}`, "calc", "add"}, "--context: invalid JSON"},
		{[]string{"call", "calc"}, "<method>"},
		{[]string{"notify", "notifications", "x", `{"a": tru}`}, "JSON-PAYLOAD: invalid JSON"},
		{[]string{"notify", "--priority", "loud", "notifications", "x"}, `--priority must be one of`},
		{[]string{"listen", "--priority", "warning", "notifications"}, `--priority must be one of`},
		{[]string{"listen", "--count=-1", "notifications"}, "--count must not be negative"},
		{[]string{"listen"}, "<topic>"},
		{[]string{"call", "--url", "http://127.0.0.1:5672", "calc", "add"}, "--url: amqp1kit driver: transport_url scheme"},
		{[]string{"stat", "--url", "amqp://127.0.0.1:99999"}, "transport_url port"},
		{[]string{"stat", "--url", "amqp://127.0.0.1/?no_such_option=1"}, "no_such_option"},
		{[]string{"stat", "--url", "amqp://127.0.0.1/?ssl_ca_file=/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{[]string{"stat", "--config", "/nonexistent/nova.conf"}, "/nonexistent/nova.conf"},
		{[]string{"stat", "--config", badConf}, "rpc_server_credit"},
		{[]string{"stat", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"bench", "--calls", "0"}, "--calls must be at least 1"},
		{[]string{"bench", "--concurrency", "0"}, "--concurrency must be at least 1"},
	} {
		code, out, errOut := runCmd(t, c.args...)
		require.Equal(t, 2, code, "%v: %s", c.args, errOut)
		require.Empty(t, out, c.args)
		require.Contains(t, errOut, c.want, c.args)
		require.True(t, strings.HasPrefix(errOut, "amqp1kit: "), "%v: %s", c.args, errOut)
		require.NotContains(t, errOut, "panic", c.args)
	}
}

func TestHelpListsTheBusCommands(t *testing.T) {
	code, out, _ := runCmd(t, "--help")
	require.Equal(t, 0, code)
	for _, cmd := range []string{"serve", "call", "cast", "notify", "listen", "stat", "bench"} {
		require.Regexp(t, regexp.MustCompile(`(?m)^  `+cmd+` `), out)
	}
	code, out, _ = runCmd(t, "notify", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "amqp://127.0.0.1:5673", "notifications default to the broker")
	code, out, _ = runCmd(t, "call", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "amqp://127.0.0.1:5672")
}
