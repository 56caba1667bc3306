package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
)

// TestInterop is the Go ↔ Python matrix: backends (columns) one after the other, each
// with every scenario (rows). See the package documentation.
func TestInterop(t *testing.T) {
	t.Parallel() // with TestRabbitMQ, whose node takes seconds to boot
	// How long each column takes (measured, never asserted), one line per column.
	var timings []string
	t.Cleanup(func() {
		if len(timings) > 0 {
			t.Logf("matrix timings (one column after another, 2 cores shared):\n\t%s", strings.Join(timings, "\n\t"))
		}
	})
	for _, spec := range backends {
		t.Run(spec.name, func(t *testing.T) {
			start := time.Now()
			var ready time.Duration
			defer func() {
				status := "passed"
				if t.Failed() {
					status = "FAILED"
				} else if t.Skipped() {
					status = "skipped"
				}
				timings = append(timings, fmt.Sprintf("%-10s %8v (intermediary and fixture %v) %s",
					spec.name, time.Since(start).Round(10*time.Millisecond), ready.Round(10*time.Millisecond), status))
			}()
			b := spec.start(t)
			var err error
			b.maxFrameSize, err = announcedMaxFrameSize(b.url)
			require.NoError(t, err)
			f := newFixture(t, b)
			ready = time.Since(start)
			t.Logf("%s: fixture ready in %v", b.name, ready.Round(time.Millisecond))
			b.run(t, "GoClientPythonServer", f.goClientPythonServer)
			b.run(t, "PythonClientGoServer", f.pythonClientGoServer)
			b.run(t, "GoNotifierPythonListener", f.goNotifierPythonListener)
			b.run(t, "PythonNotifierGoListener", f.pythonNotifierGoListener)
			b.run(t, "DynamicAddressing", f.dynamicAddressing)
			b.run(t, "CallTimeoutNoServer", f.callTimeoutNoServer)
			b.run(t, "Payloads", f.payloads)
			t.Logf("%s: all scenarios in %v", b.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

const (
	pyTopic = "interop-py" // the Python RPC servers py1 and py2
	goTopic = "interop-go" // the Go RPC servers go1 and go2
)

// fixture is what the scenarios of one backend share: the Python session with two
// RPC servers, two Go RPC servers, and a Go RPC client, all ready.
type fixture struct {
	b        *backend
	py       *pySession
	client   *driver.RPCClient // Go, to pyTopic, on its own connection
	clientTr *driver.Transport
	casts    *collector[goRecord] // what the Go servers' record method saw
}

// goRecord is one call of a Go server's record method.
type goRecord struct {
	server string
	kw     map[string]json.RawMessage
}

func (r goRecord) tag() string {
	var s string
	_ = json.Unmarshal(r.kw["tag"], &s)
	return s
}

func newFixture(t *testing.T, b *backend) *fixture {
	t.Helper()
	ctx := testCtx(t, 90*time.Second)
	f := &fixture{b: b, casts: newCollector[goRecord]()}

	// Python first: it takes a second or more to start; the Go servers start meanwhile.
	f.py = startSession(t, b.url, "--opt", "link_retry_delay=1")
	b.py = f.py
	for _, name := range []string{"go1", "go2"} {
		f.startGoServer(t, driver.Target{Topic: goTopic, Server: name})
	}
	f.py.waitReady(t)
	for _, name := range []string{"py1", "py2"} {
		out, err := f.py.do(ctx, map[string]any{"op": "rpc-server", "name": name, "topic": pyTopic, "server": name})
		require.NoError(t, err)
		require.Nil(t, pyError(out), "python rpc-server %s: %v", name, out)
	}
	f.clientTr = b.transport(t, nil)
	f.client = driver.NewRPCClient(f.clientTr, driver.Target{Topic: pyTopic}, &driver.ClientOptions{Timeout: 20 * time.Second})

	// Wait at the intermediary for every server link; where it cannot be inspected,
	// a first call to each server, retried with a short timeout, says it is there.
	for _, s := range []struct{ topic, name string }{{pyTopic, "py1"}, {pyTopic, "py2"}, {goTopic, "go1"}, {goTopic, "go2"}} {
		addrs := rpcAddresses(b.legacy, "", s.topic, s.name)
		b.waitConsumers(ctx, t, 1, addrs[0])
		b.waitConsumers(ctx, t, 2, addrs[1:]...)
	}
	for _, name := range []string{"py1", "py2"} {
		f.firstGoCall(ctx, t, driver.Target{Topic: pyTopic, Server: name})
	}
	for _, name := range []string{"go1", "go2"} {
		f.firstPythonCall(ctx, t, "", goTopic, name)
	}
	if b.multicast && b.inspect == nil {
		f.fanoutProbes(ctx, t)
	}
	return f
}

// fanoutProbes sends fanout casts, Go to the Python servers and Python to the Go
// servers, until every server has recorded one. It is for a broker whose topic
// subscribers cannot be seen (qpidd): a fanout reaches only the subscriptions that
// exist when it is sent, and a server that answered a call (its unicast link) may not
// have its fanout link attached yet (the Python driver's listen returns before its
// links are attached). The cases then look for their own tags only.
func (f *fixture) fanoutProbes(ctx context.Context, t *testing.T) {
	t.Helper()
	isProbe := func(e map[string]any) bool {
		kw, _ := e["kw"].(map[string]any)
		s, _ := kw["tag"].(string)
		return e["event"] == "cast" && strings.HasPrefix(s, "fanout-probe-")
	}
	pyReady := func() bool {
		seen := map[any]bool{}
		for _, e := range f.py.eventsWhere(isProbe) {
			seen[e["server"]] = true
		}
		return seen["py1"] && seen["py2"]
	}
	goReady := func() bool {
		seen := map[string]bool{}
		for _, r := range f.casts.all() {
			if strings.HasPrefix(r.tag(), "fanout-probe-") {
				seen[r.server] = true
			}
		}
		return seen["go1"] && seen["go2"]
	}
	start := time.Now()
	for n := 1; !pyReady() || !goReady(); n++ {
		if !pyReady() {
			err := f.client.Prepare(driver.Target{Topic: pyTopic, Fanout: true}).Cast(ctx, nil, "record", map[string]any{"tag": tag("fanout-probe")})
			require.NoError(t, err, "a Go fanout probe to the Python servers")
		}
		if !goReady() {
			out := f.pyCall(ctx, t, map[string]any{"op": "cast", "fanout": true, "topic": goTopic, "method": "record", "args": map[string]any{"tag": tag("fanout-probe")}})
			require.Nil(t, pyError(out), "a Python fanout probe to the Go servers: %s", errorText(pyError(out)))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("fanout probes: not every server got one (both Python servers: %v, both Go servers: %v): %v", pyReady(), goReady(), ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if pyReady() && goReady() {
			t.Logf("%s: every server got a fanout probe after %d round(s), %v", f.b.name, n, time.Since(start).Round(time.Millisecond))
		}
	}
}

// firstGoCall calls whoami on a Python server from Go, retrying with a short timeout
// a few times: where the intermediary cannot be inspected, this says the server is
// there.
func (f *fixture) firstGoCall(ctx context.Context, t *testing.T, target driver.Target) {
	t.Helper()
	var err error
	for attempt := range 5 {
		var who string
		c := driver.NewRPCClient(f.clientTr, target, &driver.ClientOptions{Timeout: 3 * time.Second})
		if err = c.CallInto(ctx, nil, "whoami", nil, &who); err == nil {
			require.Equal(t, target.Server, who)
			return
		}
		t.Logf("first Go call to the Python server %+v, attempt %d: %v", target, attempt+1, err)
	}
	require.NoError(t, err, "the Python server %+v never answered a Go call", target)
}

// firstPythonCall is firstGoCall the other way round.
func (f *fixture) firstPythonCall(ctx context.Context, t *testing.T, exchange, topic, server string) {
	t.Helper()
	var out map[string]any
	for attempt := range 5 {
		cmd := map[string]any{"op": "call", "topic": topic, "server": server, "method": "whoami", "timeout": 3}
		if exchange != "" {
			cmd["exchange"] = exchange
		}
		var err error
		out, err = f.py.do(ctx, cmd)
		require.NoError(t, err)
		if pyError(out) == nil {
			require.Equal(t, server, out["result"])
			return
		}
		t.Logf("first Python call to the Go server %s (exchange %q), attempt %d: %v", server, exchange, attempt+1, errorText(pyError(out)))
	}
	require.Nil(t, pyError(out), "the Go server %s never answered a Python call", server)
}

// startGoServer starts a Go RPC server on its own connection.
func (f *fixture) startGoServer(t *testing.T, target driver.Target) *driver.RPCServer {
	t.Helper()
	name := target.Server
	ep := driver.Endpoint{Methods: map[string]driver.Method{
		"echo": func(ctx context.Context, req *driver.Request) (any, error) {
			// As the Python peer's echo: the value argument as it is, else all of them.
			if v, ok := req.Args["value"]; ok && len(req.Args) == 1 {
				return v, nil
			}
			return req.Args, nil
		},
		"fail": func(ctx context.Context, req *driver.Request) (any, error) {
			var msg string
			_ = req.Arg("message", &msg)
			return nil, &driver.RemoteError{Module: "builtins", Class: "ValueError", Message: msg, Args: []any{msg},
				Traceback: []string{"Traceback (most recent call last):\n", "  Go server " + name + "\n", "ValueError: " + msg + "\n"}}
		},
		"boom": func(ctx context.Context, req *driver.Request) (any, error) {
			var msg string
			_ = req.Arg("message", &msg)
			return nil, &driver.RemoteError{Module: "interop", Class: "CustomError", Message: msg, Args: []any{msg}}
		},
		"whoami": func(ctx context.Context, req *driver.Request) (any, error) { return name, nil },
		"record": func(ctx context.Context, req *driver.Request) (any, error) {
			f.casts.add(goRecord{server: name, kw: req.Args})
			return nil, nil
		},
		"context": func(ctx context.Context, req *driver.Request) (any, error) { return req.Context, nil },
		"sleep": func(ctx context.Context, req *driver.Request) (any, error) {
			var s float64
			_ = req.Arg("seconds", &s)
			time.Sleep(time.Duration(s * float64(time.Second)))
			return s, nil
		},
	}}
	srv, err := driver.NewRPCServer(f.b.transport(t, nil), target, []driver.Endpoint{ep}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	select {
	case <-srv.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("the Go server %s did not attach its links within 30s", name)
	}
	return srv
}

// pyCall runs a Python call (or cast) and fails the test if the session itself failed.
func (f *fixture) pyCall(ctx context.Context, t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	if _, ok := cmd["op"]; !ok {
		cmd["op"] = "call"
	}
	if _, ok := cmd["timeout"]; !ok {
		cmd["timeout"] = 20
	}
	out, err := f.py.do(ctx, cmd)
	require.NoError(t, err)
	return out
}

// pyResult runs a Python call that must succeed and returns its result.
func (f *fixture) pyResult(ctx context.Context, t *testing.T, cmd map[string]any) any {
	t.Helper()
	out := f.pyCall(ctx, t, cmd)
	require.Nil(t, pyError(out), "the Python client's %s %v raised %s", cmd["op"], cmd["method"], errorText(pyError(out)))
	return out["result"]
}

func isEvent(kind string, match func(map[string]any) bool) func(map[string]any) bool {
	return func(e map[string]any) bool { return e["event"] == kind && (match == nil || match(e)) }
}

func castTagged(tg string) func(map[string]any) bool {
	return isEvent("cast", func(e map[string]any) bool {
		kw, _ := e["kw"].(map[string]any)
		return kw["tag"] == tg
	})
}

// ----------------------------------------------------------------------------------
// Go client → Python RPC server

func (f *fixture) goClientPythonServer(t *testing.T) {
	b := f.b
	b.run(t, "call", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		value := map[string]any{"x": 1, "s": "text", "l": []any{true, nil, 2.5}}
		res, err := f.client.Call(ctx, map[string]any{"user": "u1"}, "echo", map[string]any{"value": value})
		require.NoError(t, err, "Go client → Python server echo")
		sameJSON(t, value, res, "the Python server's echo of the Go client's value")

		// Keyword arguments other than value come back as a dict.
		res, err = f.client.Call(ctx, nil, "echo", map[string]any{"a": 1, "b": "two"})
		require.NoError(t, err)
		sameJSON(t, map[string]any{"a": 1, "b": "two"}, res, "the Python server's echo of the Go client's kwargs")

		// The request context arrives as the Go client sent it.
		rpcCtx := map[string]any{"user": "u1", "project_id": "p1", "roles": []any{"admin", "member"}, "is_admin": true}
		res, err = f.client.Call(ctx, rpcCtx, "context", nil)
		require.NoError(t, err)
		sameJSON(t, rpcCtx, res, "the request context the Python server received from the Go client")

		// Concurrent calls on one connection: each reply reaches its own caller.
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() {
				res, err := f.client.Call(ctx, nil, "echo", map[string]any{"value": i})
				if err == nil && string(res) != fmt.Sprint(i) {
					err = fmt.Errorf("call %d got the reply %s", i, res)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...), "concurrent Go calls to the Python servers")
	})
	b.run(t, "remote_exception", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		_, err := f.client.Call(ctx, nil, "fail", map[string]any{"message": "Oopsie!"})
		var re *driver.RemoteError
		require.ErrorAs(t, err, &re, "a ValueError raised by the Python server")
		require.Equal(t, "builtins", re.Module)
		require.Equal(t, "ValueError", re.Class)
		require.Equal(t, "Oopsie!", re.Message)
		require.Equal(t, []any{"Oopsie!"}, re.Args)
		require.NotEmpty(t, re.Traceback, "Python sends its traceback")
		require.Contains(t, strings.Join(re.Traceback, ""), "ValueError: Oopsie!")
		require.False(t, errors.Is(err, driver.ErrTimeout))

		// An exception of a module of the server's own.
		_, err = f.client.Call(ctx, nil, "boom", map[string]any{"message": "custom boom"})
		require.ErrorAs(t, err, &re)
		require.Equal(t, "__main__", re.Module)
		require.Equal(t, "CustomError", re.Class)
		require.Equal(t, "custom boom", re.Message)

		// A method the server does not have: oslo's dispatcher raises NoSuchMethod.
		_, err = f.client.Call(ctx, nil, "no_such_method", nil)
		require.ErrorAs(t, err, &re)
		require.Equal(t, "NoSuchMethod", re.Class)
		require.Equal(t, "oslo_messaging.rpc.dispatcher", re.Module)
	})
	b.run(t, "cast", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		tg := tag("cast")
		require.NoError(t, f.client.Cast(ctx, map[string]any{"user": "u1"}, "record", map[string]any{"tag": tg, "n": 7}))
		e, err := f.py.waitEvent(ctx, castTagged(tg))
		require.NoError(t, err, "no Python server recorded the Go client's cast")
		require.Equal(t, map[string]any{"tag": tg, "n": 7.0}, e["kw"])
		require.Contains(t, []any{"py1", "py2"}, e["server"])
	})
	fanout := func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		tg := tag("fanout")
		require.NoError(t, f.client.Prepare(driver.Target{Topic: pyTopic, Fanout: true}).Cast(ctx, nil, "record", map[string]any{"tag": tg}))
		want := 2
		if !b.multicast {
			want = 1
		}
		got, err := f.py.waitEvents(ctx, want, castTagged(tg))
		require.NoError(t, err, "Python servers that recorded the Go client's fanout: %v", got)
		servers := map[any]bool{}
		for _, e := range got {
			servers[e["server"]] = true
		}
		require.Len(t, servers, want, "a fanout reaches each server once: %v", got)
	}
	if b.multicast {
		b.run(t, "fanout", fanout)
	} else {
		// The broker keeps one queue for the fanout address, whose servers compete.
		b.run(t, "fanout_reaches_one_server_no_multicast", fanout)
	}
	b.run(t, "server", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		for _, name := range []string{"py1", "py2", "py2", "py1"} {
			var who string
			require.NoError(t, f.client.Prepare(driver.Target{Topic: pyTopic, Server: name}).CallInto(ctx, nil, "whoami", nil, &who))
			require.Equal(t, name, who, "a Go call to the Python server %s was served by %s", name, who)
		}
		tg := tag("server-cast")
		require.NoError(t, f.client.Prepare(driver.Target{Topic: pyTopic, Server: "py2"}).Cast(ctx, nil, "record", map[string]any{"tag": tg}))
		e, err := f.py.waitEvent(ctx, castTagged(tg))
		require.NoError(t, err)
		require.Equal(t, "py2", e["server"], "a Go cast to the Python server py2")
	})
	b.run(t, "call_monitor_heartbeats", func(t *testing.T) {
		// The method runs longer than the call-monitor timeout: only the Python
		// server's heartbeats (body-less messages to the reply address) keep the Go
		// call alive.
		ctx := testCtx(t, 30*time.Second)
		// call_monitor_timeout=3: the Python server beats every int(3)/2 = 1.5 s.
		c := driver.NewRPCClient(f.clientTr, driver.Target{Topic: pyTopic}, &driver.ClientOptions{Timeout: 20 * time.Second, CallMonitorTimeout: 3 * time.Second})
		res, err := c.Call(ctx, nil, "sleep", map[string]any{"seconds": 4.5})
		require.NoError(t, err, "a Go call with call_monitor_timeout=3 to a Python method that takes 4.5 s")
		require.JSONEq(t, "4.5", string(res))
	})
}

// ----------------------------------------------------------------------------------
// Python client → Go RPC server

func (f *fixture) pythonClientGoServer(t *testing.T) {
	b := f.b
	b.run(t, "call", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		value := map[string]any{"x": 1, "s": "text", "l": []any{true, nil, 2.5}}
		got := f.pyResult(ctx, t, map[string]any{"topic": goTopic, "method": "echo", "args": map[string]any{"value": value}, "context": map[string]any{"user": "u1"}})
		sameJSON(t, value, got, "the Go server's echo of the Python client's value")

		got = f.pyResult(ctx, t, map[string]any{"topic": goTopic, "method": "echo", "args": map[string]any{"a": 1, "b": "two"}})
		sameJSON(t, map[string]any{"a": 1, "b": "two"}, got, "the Go server's echo of the Python client's kwargs")

		rpcCtx := map[string]any{"user": "u1", "project_id": "p1", "roles": []any{"admin", "member"}, "is_admin": true}
		got = f.pyResult(ctx, t, map[string]any{"topic": goTopic, "method": "context", "context": rpcCtx})
		sameJSON(t, rpcCtx, got, "the request context the Go server received from the Python client")

		// Concurrent Python calls (each in a thread of the session, on one connection).
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() {
				out, err := f.py.do(ctx, map[string]any{"op": "call", "topic": goTopic, "method": "echo", "args": map[string]any{"value": i}, "timeout": 20})
				if err == nil && (pyError(out) != nil || out["result"] != float64(i)) {
					err = fmt.Errorf("call %d: %v", i, out)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...), "concurrent Python calls to the Go servers")
	})
	b.run(t, "remote_exception", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		out := f.pyCall(ctx, t, map[string]any{"topic": goTopic, "method": "fail", "args": map[string]any{"message": "Oopsie!"}})
		e := pyError(out)
		require.NotNil(t, e, "the Python client got %v, want the Go server's ValueError", out)
		// A builtin exception is rebuilt as itself; its text gets the remote traceback.
		require.Equal(t, "ValueError", e["class"], errorText(e))
		require.Equal(t, "builtins", e["module"], errorText(e))
		require.True(t, strings.HasPrefix(fmt.Sprint(e["message"]), "Oopsie!"), errorText(e))
		require.Contains(t, fmt.Sprint(e["message"]), "Go server", "the Go server's traceback reaches Python")

		// Not in allowed_remote_exmods: the Python caller gets oslo's RemoteError.
		out = f.pyCall(ctx, t, map[string]any{"topic": goTopic, "method": "boom", "args": map[string]any{"message": "custom boom"}})
		e = pyError(out)
		require.NotNil(t, e, "the Python client got %v", out)
		require.Equal(t, "RemoteError", e["class"], errorText(e))
		require.Equal(t, "CustomError", e["exc_type"], errorText(e))
		require.Equal(t, "custom boom", e["value"], errorText(e))

		out = f.pyCall(ctx, t, map[string]any{"topic": goTopic, "method": "no_such_method"})
		e = pyError(out)
		require.NotNil(t, e, "the Python client got %v", out)
		require.Equal(t, "RemoteError", e["class"], errorText(e))
		require.Equal(t, "NoSuchMethod", e["exc_type"], errorText(e))
	})
	b.run(t, "cast", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		tg := tag("cast")
		out := f.pyCall(ctx, t, map[string]any{"op": "cast", "topic": goTopic, "method": "record", "args": map[string]any{"tag": tg, "n": 7}})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		got, err := f.casts.count(ctx, "the Python client's cast", 1, func(r goRecord) bool { return r.tag() == tg })
		require.NoError(t, err, "no Go server recorded the Python client's cast")
		require.JSONEq(t, "7", string(got[0].kw["n"]))
	})
	fanout := func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		tg := tag("fanout")
		out := f.pyCall(ctx, t, map[string]any{"op": "cast", "fanout": true, "topic": goTopic, "method": "record", "args": map[string]any{"tag": tg}})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		want := 2
		if !b.multicast {
			want = 1
		}
		got, err := f.casts.count(ctx, "the Python client's fanout", want, func(r goRecord) bool { return r.tag() == tg })
		require.NoError(t, err)
		servers := map[string]bool{}
		for _, r := range got {
			servers[r.server] = true
		}
		require.Len(t, servers, want, "a fanout reaches each server once: %v", got)
	}
	if b.multicast {
		b.run(t, "fanout", fanout)
	} else {
		b.run(t, "fanout_reaches_one_server_no_multicast", fanout)
	}
	b.run(t, "server", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		for _, name := range []string{"go1", "go2", "go2", "go1"} {
			got := f.pyResult(ctx, t, map[string]any{"topic": goTopic, "server": name, "method": "whoami"})
			require.Equal(t, name, got, "a Python call to the Go server %s was served by %v", name, got)
		}
		tg := tag("server-cast")
		out := f.pyCall(ctx, t, map[string]any{"op": "cast", "topic": goTopic, "server": "go2", "method": "record", "args": map[string]any{"tag": tg}})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		got, err := f.casts.count(ctx, "the Python client's cast to go2", 1, func(r goRecord) bool { return r.tag() == tg })
		require.NoError(t, err)
		require.Equal(t, "go2", got[0].server)
	})
	b.run(t, "call_monitor_heartbeats", func(t *testing.T) {
		// The Go server's heartbeats (every int(2)/2 = 1 s) keep the Python call alive
		// (Python's monitor timer fires 2 to 3 s after the last one).
		ctx := testCtx(t, 30*time.Second)
		got := f.pyResult(ctx, t, map[string]any{"topic": goTopic, "method": "sleep", "args": map[string]any{"seconds": 3.5}, "call_monitor_timeout": 2})
		require.Equal(t, 3.5, got)
	})
}

// ----------------------------------------------------------------------------------
// Go notifier → Python listener

// pyListen starts a Python listener (cmd names it) and returns the session's answer;
// a listener that started is stopped at the end of the test.
func (f *fixture) pyListen(ctx context.Context, t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	cmd["op"] = "listen"
	out, err := f.py.do(ctx, cmd)
	require.NoError(t, err)
	if pyError(out) == nil {
		name := cmd["name"]
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := f.py.do(ctx, map[string]any{"op": "stop", "name": name}); err != nil {
				t.Errorf("stopping the Python listener %v: %v", name, err)
			}
		})
	}
	return out
}

func (f *fixture) notifyAddresses(topic string, ps ...driver.Priority) []string {
	var out []string
	for _, p := range ps {
		out = append(out, notifyAddress(f.b.legacy, topic, p))
	}
	return out
}

func fromListener(name string, kinds ...string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		if e["listener"] != name {
			return false
		}
		for _, k := range kinds {
			if e["event"] == k {
				return true
			}
		}
		return false
	}
}

func (f *fixture) goNotifierPythonListener(t *testing.T) {
	b := f.b
	notifier := func(t *testing.T, topic string) *driver.Notifier {
		return driver.NewNotifier(b.transport(t, nil), &driver.NotifierOptions{PublisherID: "go.host1", Topics: []string{topic}})
	}
	b.run(t, "all_priorities", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "gn-all"
		out := f.pyListen(ctx, t, map[string]any{"name": topic, "topic": topic})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.Priorities()...)...)
		n := notifier(t, topic)
		rpcCtx := map[string]any{"request_id": "req-1", "user": "üser"}
		for _, p := range driver.Priorities() {
			payload := map[string]any{"p": string(p), "value": nonASCIIValue(), "nested": map[string]any{"l": []any{1, nil, true}}}
			require.NoError(t, n.Notify(ctx, rpcCtx, p, "compute.instance."+string(p), payload), "Go notify %s", p)
		}
		got, err := f.py.waitEvents(ctx, len(driver.Priorities()), fromListener(topic, "notification"))
		require.NoError(t, err, "the Python listener got %d of %d notifications", len(got), len(driver.Priorities()))
		seen := map[any]bool{}
		for _, e := range got {
			p := fmt.Sprint(e["priority"])
			seen[p] = true
			require.Equal(t, "compute.instance."+p, e["event_type"], "the event type the Python listener got for priority %s", p)
			require.Equal(t, "go.host1", e["publisher_id"])
			sameJSON(t, map[string]any{"p": p, "value": nonASCIIValue(), "nested": map[string]any{"l": []any{1, nil, true}}}, e["payload"],
				"the payload the Python listener got from the Go notifier")
			ctxt, _ := e["ctxt"].(map[string]any)
			require.Equal(t, "req-1", ctxt["request_id"], "the context the Python listener got: %v", e["ctxt"])
			require.Equal(t, "üser", ctxt["user"])
			require.NotEmpty(t, e["message_id"])
			require.NotEmpty(t, e["timestamp"])
		}
		require.Len(t, seen, len(driver.Priorities()), "each priority once: %v", seen)
	})
	b.run(t, "v1_messaging_driver", func(t *testing.T) {
		// The raw notification dict (oslo's "messaging" driver), without the
		// oslo.version 2.0 envelope.
		ctx := testCtx(t, 30*time.Second)
		const topic = "gn-v1"
		out := f.pyListen(ctx, t, map[string]any{"name": topic, "topic": topic, "priorities": []string{"error"}})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityError)...)
		n := driver.NewNotifier(b.transport(t, nil), &driver.NotifierOptions{PublisherID: "go.v1", Topics: []string{topic}, V1: true})
		require.NoError(t, n.Error(ctx, map[string]any{"user": "ü"}, "v1.event", map[string]any{"value": nonASCIIValue()}))
		e, err := f.py.waitEvent(ctx, fromListener(topic, "notification"))
		require.NoError(t, err)
		require.Equal(t, "error", e["priority"])
		require.Equal(t, "v1.event", e["event_type"])
		require.Equal(t, "go.v1", e["publisher_id"])
		sameJSON(t, map[string]any{"value": nonASCIIValue()}, e["payload"], "the v1 payload the Python listener got from the Go notifier")
	})
	b.run(t, "pool_NotImplementedError_in_python_driver", func(t *testing.T) {
		// The Python AMQP 1.0 driver refuses listener pools outright
		// (ProtonDriver.listen_for_notifications); the Go listener accepts them
		// (PythonNotifierGoListener/pool).
		ctx := testCtx(t, 30*time.Second)
		out := f.pyListen(ctx, t, map[string]any{"name": "gn-pool", "topic": "gn-pool", "pool": "workers"})
		e := pyError(out)
		require.NotNil(t, e, "the Python listener with a pool started: %v", out)
		require.Equal(t, "NotImplementedError", e["class"], errorText(e))
		require.Contains(t, fmt.Sprint(e["message"]), "pool")
	})
	b.run(t, "batch", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "gn-batch"
		out := f.pyListen(ctx, t, map[string]any{"name": topic, "topic": topic, "priorities": []string{"info"}, "batch_size": 4, "batch_timeout": 5})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityInfo)...)
		n := notifier(t, topic)
		// At once: through a router each notifier waits for the listener's
		// acknowledgement, which comes only when its batch is handled.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range 4 {
			wg.Go(func() { errs[i] = n.Info(ctx, nil, "batch.event", map[string]any{"n": i}) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...), "Go notify")
		var items []any
		var sizes []int
		err := f.py.waitUntil(ctx, func() bool {
			items, sizes = nil, nil
			for _, e := range f.py.eventsWhere(fromListener(topic, "batch")) {
				l, _ := e["items"].([]any)
				items = append(items, l...)
				sizes = append(sizes, len(l))
			}
			return len(items) >= 4
		})
		require.NoError(t, err, "the Python batch listener got %d of 4 notifications, in batches of %v", len(items), sizes)
		require.Len(t, items, 4, "batch sizes %v", sizes)
		ns := map[float64]bool{}
		for _, it := range items {
			m, _ := it.(map[string]any)
			p, _ := m["payload"].(map[string]any)
			n, _ := p["n"].(float64)
			ns[n] = true
			require.Equal(t, "batch.event", m["event_type"])
		}
		require.Len(t, ns, 4, "every notification once: %v", items)
		require.Greater(t, slicesMax(sizes), 1, "the Python listener got the notifications one by one, not in a batch: sizes %v", sizes)
	})
	requeue := func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "gn-requeue"
		out := f.pyListen(ctx, t, map[string]any{"name": topic, "topic": topic, "priorities": []string{"info"}, "requeue_first": 1})
		require.Nil(t, pyError(out), errorText(pyError(out)))
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityInfo)...)
		tg := tag("requeue")
		require.NoError(t, notifier(t, topic).Info(ctx, nil, "requeue.event", map[string]any{"tag": tg}), "Go notify")
		first, err := f.py.waitEvent(ctx, fromListener(topic, "requeued"))
		require.NoError(t, err, "the Python listener did not requeue")
		if !b.redelivery {
			// The broker accepted the notification when it stored it, and drops what a
			// consumer releases: there is nothing more to see.
			return
		}
		// A router hands the release back to the Go notifier, which sends again; a
		// broker delivers the message again.
		again, err := f.py.waitEvent(ctx, fromListener(topic, "notification"))
		require.NoError(t, err, "the requeued notification did not come back to the Python listener")
		require.Equal(t, first["message_id"], again["message_id"], "the same notification comes back")
		require.Equal(t, map[string]any{"tag": tg}, again["payload"])
	}
	if b.redelivery {
		b.run(t, "requeue", requeue)
	} else {
		b.run(t, "requeue_not_redelivered_by_"+b.name+"_broker", requeue)
	}
}

// ----------------------------------------------------------------------------------
// Python notifier → Go listener

// goListener starts a Go listener on its own connection, collecting what it gets.
func (f *fixture) goListener(t *testing.T, topic string, opts *driver.ListenerOptions, h driver.Handler, bh driver.BatchHandler) {
	t.Helper()
	tr := f.b.transport(t, nil)
	var l *driver.Listener
	var err error
	if bh != nil {
		l, err = driver.NewBatchListener(tr, []driver.Target{{Topic: topic}}, bh, opts)
	} else {
		l, err = driver.NewListener(tr, []driver.Target{{Topic: topic}}, h, opts)
	}
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = l.Stop(ctx)
	})
	select {
	case <-l.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("the Go listener on %s did not attach its links within 30s", topic)
	}
}

func (f *fixture) pyNotify(ctx context.Context, t *testing.T, cmd map[string]any) {
	t.Helper()
	cmd["op"] = "notify"
	if _, ok := cmd["publisher_id"]; !ok {
		cmd["publisher_id"] = "py.host1"
	}
	out, err := f.py.do(ctx, cmd)
	require.NoError(t, err)
	// The Python notifier swallows send errors; the session reports what it logged.
	require.Nil(t, out["errors"], "the Python notifier logged send errors: %v", out["errors"])
}

func (f *fixture) pythonNotifierGoListener(t *testing.T) {
	b := f.b
	b.run(t, "all_priorities", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "pn-all"
		got := newCollector[*driver.Notification]()
		f.goListener(t, topic, nil, func(ctx context.Context, n *driver.Notification) driver.Result {
			got.add(n)
			return driver.Handled
		}, nil)
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.Priorities()...)...)
		rpcCtx := map[string]any{"request_id": "req-1", "user": "üser"}
		for _, p := range driver.Priorities() {
			f.pyNotify(ctx, t, map[string]any{"topic": topic, "priority": string(p), "event_type": "compute.instance." + string(p),
				"payload": map[string]any{"p": string(p), "value": nonASCIIValue()}, "context": rpcCtx})
		}
		all, err := got.count(ctx, "notifications", len(driver.Priorities()), func(*driver.Notification) bool { return true })
		require.NoError(t, err, "the Go listener got %d of %d notifications from Python", len(all), len(driver.Priorities()))
		seen := map[driver.Priority]bool{}
		for _, n := range all {
			seen[n.Priority] = true
			require.Equal(t, "compute.instance."+string(n.Priority), n.EventType, "the event type the Go listener got for priority %s", n.Priority)
			require.Equal(t, "py.host1", n.PublisherID)
			sameJSON(t, map[string]any{"p": string(n.Priority), "value": nonASCIIValue()}, n.Payload, "the payload the Go listener got from the Python notifier")
			require.Equal(t, "req-1", n.Context["request_id"], "the context the Go listener got: %v", n.Context)
			require.Equal(t, "üser", n.Context["user"])
			require.Len(t, n.MessageID, 36, "a uuid with dashes: %q", n.MessageID)
			require.NotEmpty(t, n.Timestamp)
		}
		require.Len(t, seen, len(driver.Priorities()), "each priority once: %v", seen)
	})
	b.run(t, "v1_messaging_driver", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		const topic = "pn-v1"
		got := newCollector[*driver.Notification]()
		f.goListener(t, topic, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityError}}, func(ctx context.Context, n *driver.Notification) driver.Result {
			got.add(n)
			return driver.Handled
		}, nil)
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityError)...)
		f.pyNotify(ctx, t, map[string]any{"topic": topic, "priority": "error", "event_type": "v1.event", "driver": "messaging",
			"payload": map[string]any{"value": nonASCIIValue()}, "context": map[string]any{"user": "ü"}})
		all, err := got.count(ctx, "the v1 notification", 1, func(*driver.Notification) bool { return true })
		require.NoError(t, err)
		n := all[0]
		require.Equal(t, driver.PriorityError, n.Priority)
		require.Equal(t, "v1.event", n.EventType)
		require.Equal(t, "py.host1", n.PublisherID)
		require.Equal(t, "ü", n.Context["user"])
		sameJSON(t, map[string]any{"value": nonASCIIValue()}, n.Payload, "the v1 payload the Go listener got from the Python notifier")
	})
	b.run(t, "pool", func(t *testing.T) {
		// Two Go listeners of one pool share the notifications (the Python driver
		// refuses pools: GoNotifierPythonListener/pool_NotImplementedError_in_python_driver).
		ctx := testCtx(t, 60*time.Second)
		const topic = "pn-pool"
		type got struct {
			listener string
			n        int
		}
		col := newCollector[got]()
		for _, name := range []string{"a", "b"} {
			f.goListener(t, topic, &driver.ListenerOptions{Pool: "workers", Priorities: []driver.Priority{driver.PriorityInfo}},
				func(ctx context.Context, n *driver.Notification) driver.Result {
					var p struct{ N int }
					_ = json.Unmarshal(n.Payload, &p)
					col.add(got{name, p.N})
					return driver.Handled
				}, nil)
		}
		b.waitConsumers(ctx, t, 2, f.notifyAddresses(topic, driver.PriorityInfo)...)
		f.pyNotify(ctx, t, map[string]any{"topic": topic, "priority": "info", "event_type": "pool.event", "payload": map[string]any{}, "count": 6, "number": true})
		all, err := col.count(ctx, "notifications", 6, func(got) bool { return true })
		require.NoError(t, err)
		ns := map[int]string{}
		for _, g := range all {
			require.NotContains(t, ns, g.n, "notification %d reached the pool twice: %v", g.n, all)
			ns[g.n] = g.listener
		}
		require.Len(t, ns, 6, "%v", all)
		t.Logf("shared out as %v", ns)
	})
	b.run(t, "batch", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "pn-batch"
		batches := newCollector[[]*driver.Notification]()
		f.goListener(t, topic, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}, BatchSize: 4, BatchTimeout: 3 * time.Second},
			nil, func(ctx context.Context, batch []*driver.Notification) driver.Result {
				batches.add(batch)
				return driver.Handled
			})
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityInfo)...)
		// In parallel: through a router each Python send waits for the Go listener's
		// acknowledgement, which comes once the batch is handled.
		f.pyNotify(ctx, t, map[string]any{"topic": topic, "priority": "info", "event_type": "batch.event", "payload": map[string]any{}, "count": 4, "number": true, "parallel": true})
		all, err := batches.waitFor(ctx, "4 notifications", func(bs [][]*driver.Notification) bool {
			n := 0
			for _, b := range bs {
				n += len(b)
			}
			return n >= 4
		})
		require.NoError(t, err)
		var sizes []int
		ns := map[int]bool{}
		for _, batch := range all {
			sizes = append(sizes, len(batch))
			for _, n := range batch {
				var p struct{ N int }
				require.NoError(t, json.Unmarshal(n.Payload, &p))
				ns[p.N] = true
			}
		}
		require.Len(t, ns, 4, "every notification once; batch sizes %v", sizes)
		require.Greater(t, slicesMax(sizes), 1, "the Go listener got the notifications one by one, not in a batch: sizes %v", sizes)
	})
	requeue := func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		const topic = "pn-requeue"
		got := newCollector[*driver.Notification]()
		f.goListener(t, topic, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}, AllowRequeue: true},
			func(ctx context.Context, n *driver.Notification) driver.Result {
				got.add(n)
				if len(got.all()) == 1 {
					return driver.Requeue
				}
				return driver.Handled
			}, nil)
		b.waitConsumers(ctx, t, 1, f.notifyAddresses(topic, driver.PriorityInfo)...)
		tg := tag("requeue")
		f.pyNotify(ctx, t, map[string]any{"topic": topic, "priority": "info", "event_type": "requeue.event", "payload": map[string]any{"tag": tg}})
		if !b.redelivery {
			all, err := got.count(ctx, "the notification", 1, func(*driver.Notification) bool { return true })
			require.NoError(t, err)
			sameJSON(t, map[string]any{"tag": tg}, all[0].Payload, "the notification the Go listener requeued")
			return
		}
		// The Python notifier gets the release back through a router and sends again
		// after link_retry_delay (1 s here); a broker redelivers.
		all, err := got.count(ctx, "the notification twice", 2, func(*driver.Notification) bool { return true })
		require.NoError(t, err, "the notification the Go listener requeued did not come back")
		require.Equal(t, all[0].MessageID, all[1].MessageID, "the same notification comes back")
		sameJSON(t, map[string]any{"tag": tg}, all[1].Payload, "the notification that came back")
	}
	if b.redelivery {
		b.run(t, "requeue", requeue)
	} else {
		b.run(t, "requeue_not_redelivered_by_"+b.name+"_broker", requeue)
	}
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// ----------------------------------------------------------------------------------
// Dynamic addressing

func (f *fixture) dynamicAddressing(t *testing.T) {
	b := f.b
	want, mode := "routable", "routable"
	if b.legacy {
		want, mode = "legacy", "legacy"
	}
	isLegacy := func(a string) bool {
		return strings.HasPrefix(a, "unicast.") || strings.HasPrefix(a, "exclusive.") || strings.HasPrefix(a, "broadcast.")
	}
	// Where the intermediary can be inspected: every address each driver attached to
	// is of the expected syntax (replies' dynamic addresses aside).
	checkLinks := func(t *testing.T, side, marker string) {
		if b.inspect == nil {
			t.Logf("the %s shows no links here: the %s driver's addresses are checked by the calls that follow", b.name, side)
			return
		}
		links, err := b.inspect.links()
		require.NoError(t, err, "listing the links at the %s", b.name)
		// Reply addresses are the intermediary's to name: leave out the dynamic reply
		// links and the servers' links that send to them.
		replies := map[string]bool{}
		for _, l := range links {
			if strings.Contains(l.name, "/[rpc-response]/") {
				replies[l.address] = true
			}
		}
		var good, bad []string
		for _, l := range links {
			if !strings.Contains(l.container, marker) || l.address == "" || replies[l.address] {
				continue
			}
			if isLegacy(l.address) == b.legacy {
				good = append(good, l.role+" "+l.address)
			} else {
				bad = append(bad, l.role+" "+l.address)
			}
		}
		require.Empty(t, bad, "the %s driver attached links that are not %s", side, want)
		require.NotEmpty(t, good, "no %s link of the %s driver", want, side)
		t.Logf("the %s driver's %d links (replies aside) are all %s", side, len(good), want)
	}
	b.run(t, "GoDriver_picks_"+want, func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		a, err := f.clientTr.Addresser(ctx)
		require.NoError(t, err)
		product, _, _ := f.clientTr.PeerProduct()
		require.Equal(t, b.legacy, a.Legacy(), "the Go driver's choice for a peer with product %q", product)
		checkLinks(t, "Go", "/interop.test/")
		// A Python client told to use this syntax reaches the Go servers (dynamic mode).
		got := f.pyResult(ctx, t, map[string]any{"url": b.url + "?addressing_mode=" + mode, "topic": goTopic, "server": "go1", "method": "whoami", "timeout": 5})
		require.Equal(t, "go1", got, "a Python client in %s mode", mode)
		got = f.pyResult(ctx, t, map[string]any{"url": b.url + "?addressing_mode=" + mode, "topic": goTopic, "method": "echo", "args": map[string]any{"value": mode}, "timeout": 5})
		require.Equal(t, mode, got)
	})
	b.run(t, "PythonDriver_picks_"+want, func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		checkLinks(t, "Python", "/oslo_peer.py/")
		// A Go client told to use this syntax reaches the Python servers (dynamic mode).
		tr := b.transport(t, func(o *driver.Options) { o.AddressingMode = mode })
		c := driver.NewRPCClient(tr, driver.Target{Topic: pyTopic, Server: "py1"}, &driver.ClientOptions{Timeout: 5 * time.Second})
		var who string
		require.NoError(t, c.CallInto(ctx, nil, "whoami", nil, &who), "a Go client in %s mode calling the Python server py1", mode)
		require.Equal(t, "py1", who)
		res, err := c.Prepare(driver.Target{Topic: pyTopic}).Call(ctx, nil, "echo", map[string]any{"value": mode})
		require.NoError(t, err)
		require.JSONEq(t, `"`+mode+`"`, string(res))
	})
	b.run(t, "exchange_and_unescaped_names", func(t *testing.T) {
		// Servers of a non-default exchange, with dots, slashes and non-ASCII in their
		// names, which go into addresses as they are: both drivers build the same
		// addresses, so each reaches the other's server.
		ctx := testCtx(t, 60*time.Second)
		const exchange, topic, pyx, gox = "nova", "interop.ex/tópic", "pyx.1/sérveur", "gox.1/☃"
		out, err := f.py.do(ctx, map[string]any{"op": "rpc-server", "name": "pyx", "topic": topic, "server": pyx, "exchange": exchange})
		require.NoError(t, err)
		require.Nil(t, pyError(out), "python rpc-server: %v", out)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = f.py.do(ctx, map[string]any{"op": "stop", "name": "pyx"})
		})
		f.startGoServer(t, driver.Target{Exchange: exchange, Topic: topic, Server: gox})
		// Each server's three addresses, exactly as the guide writes them.
		for _, s := range []string{pyx, gox} {
			addrs := rpcAddresses(b.legacy, exchange, topic, s)
			b.waitConsumers(ctx, t, 1, addrs[0])
			b.waitConsumers(ctx, t, 2, addrs[1:]...)
		}
		f.firstGoCall(ctx, t, driver.Target{Exchange: exchange, Topic: topic, Server: pyx})
		f.firstPythonCall(ctx, t, exchange, topic, gox)
	})
}

// ----------------------------------------------------------------------------------
// Timeouts

func (f *fixture) callTimeoutNoServer(t *testing.T) {
	b := f.b
	// Both at once: each waits out its timeout.
	b.run(t, "GoDriver_ErrTimeout", func(t *testing.T) {
		t.Parallel()
		c := driver.NewRPCClient(f.clientTr, driver.Target{Topic: "nobody-go"}, &driver.ClientOptions{Timeout: time.Second})
		start := time.Now()
		// No deadline but the call's own: only its 1 s timeout can end it (a hang would
		// be the test binary's time-out).
		_, err := c.Call(context.Background(), nil, "echo", map[string]any{"value": 1})
		elapsed := time.Since(start)
		require.ErrorIs(t, err, driver.ErrTimeout)
		require.GreaterOrEqual(t, elapsed, 900*time.Millisecond, "the Go call gave up before its timeout: %v", err)
		t.Logf("the Go call gave up after %v", elapsed.Round(time.Millisecond))
	})
	b.run(t, "PythonDriver_MessagingTimeout", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 30*time.Second)
		start := time.Now()
		out := f.pyCall(ctx, t, map[string]any{"topic": "nobody-py", "method": "echo", "args": map[string]any{"value": 1}, "timeout": 1})
		elapsed := time.Since(start)
		e := pyError(out)
		require.NotNil(t, e, "the Python call to nobody returned %v", out)
		require.Equal(t, "MessagingTimeout", e["class"], errorText(e))
		require.Equal(t, "oslo_messaging.exceptions", e["module"])
		// The Python driver's timers round up to whole seconds: 1 s is 1 to 2 s. Its own
		// timeout ended it: the peer's MessagingTimeout came back before ctx (30 s).
		pyElapsed, _ := out["elapsed"].(float64)
		require.GreaterOrEqual(t, pyElapsed, 0.9, "the Python call gave up before its timeout")
		t.Logf("the Python call gave up after %.2f s (%v round trip)", pyElapsed, elapsed.Round(time.Millisecond))
	})
}

// ----------------------------------------------------------------------------------
// Payloads

func (f *fixture) payloads(t *testing.T) {
	b := f.b
	cases := []struct {
		name  string
		value func() map[string]any
	}{
		{"non_ascii", nonASCIIValue},
		{"nested", nestedValue},
		{"large_1MiB", largeValue},
	}
	// multiFrame checks, where frames can be seen, that a message went in several
	// transfer frames both to and from the intermediary. The fakes trace frames as
	// "conn N <- ch C transfer ... More=true"; Proton, in the real programs' logs, as
	// "[C1]:0 <- @transfer(20) [..., more=true]".
	multiFrame := func(t *testing.T, mark int) {
		if !b.frames {
			t.Logf("the %s's frames are not traced: the transfer frames are not counted", b.name)
			return
		}
		trace := b.trace.since(mark, 1<<30)
		in, out := 0, 0
		for _, line := range strings.Split(trace, "\n") {
			transfer := strings.Contains(line, " transfer ") || strings.Contains(line, "@transfer(")
			if !transfer || !(strings.Contains(line, "More=true") || strings.Contains(line, "more=true")) {
				continue
			}
			if strings.Contains(line, " <- ") {
				in++
			} else {
				out++
			}
		}
		// What the intermediary sends the Go side (go-amqp announces 65536) is split.
		require.Positive(t, out, "the %s sent no multi-frame transfer", b.name)
		if b.maxFrameSize >= 1<<21 {
			// Both clients send it the whole message (1.4 MB) in one transfer frame.
			t.Logf("the %s announces max-frame-size %d: %d multi-frame transfers reached it, %d left it", b.name, b.maxFrameSize, in, out)
			return
		}
		require.Positive(t, in, "no multi-frame transfer reached the %s (it announces max-frame-size %d)", b.name, b.maxFrameSize)
	}
	b.run(t, "GoToPython", func(t *testing.T) {
		for _, c := range cases {
			b.run(t, c.name, func(t *testing.T) {
				ctx := testCtx(t, 60*time.Second)
				value := c.value()
				if c.name == "large_1MiB" {
					require.Greater(t, jsonSize(value), 1<<20)
				}
				mark := b.trace.mark()
				res, err := f.client.Call(ctx, map[string]any{"note": nonASCII}, "echo", map[string]any{"value": value})
				require.NoError(t, err, "Go client → Python server echo of %d bytes of JSON", jsonSize(value))
				sameJSON(t, value, res, "the Python server's echo of the Go client's value")
				if c.name == "large_1MiB" {
					multiFrame(t, mark)
				}
			})
		}
	})
	b.run(t, "PythonToGo", func(t *testing.T) {
		for _, c := range cases {
			b.run(t, c.name, func(t *testing.T) {
				ctx := testCtx(t, 60*time.Second)
				value := c.value()
				mark := b.trace.mark()
				got := f.pyResult(ctx, t, map[string]any{"topic": goTopic, "method": "echo", "args": map[string]any{"value": value}, "context": map[string]any{"note": nonASCII}})
				sameJSON(t, value, got, "the Go server's echo of the Python client's value")
				if c.name == "large_1MiB" {
					multiFrame(t, mark)
				}
			})
		}
	})
}
