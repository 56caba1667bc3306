package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// startRouter starts a fake qdrouterd for an example; a real deployment uses the
// router's transport URL instead.
func startRouter() *fakerouter.Router {
	r, err := fakerouter.Run(nil)
	if err != nil {
		log.Fatal(err)
	}
	return r
}

// calculator is the RPC server of the examples: add(a, b) and divide(a, b).
func calculator(t *driver.Transport) *driver.RPCServer {
	srv, err := driver.NewRPCServer(t, driver.Target{Topic: "calculator", Server: "calc-1"}, []driver.Endpoint{{
		Methods: map[string]driver.Method{
			"add": func(ctx context.Context, req *driver.Request) (any, error) {
				var a, b int
				if err := errors.Join(req.Arg("a", &a), req.Arg("b", &b)); err != nil {
					return nil, err // a Python caller gets RuntimeError
				}
				return a + b, nil
			},
			"divide": func(ctx context.Context, req *driver.Request) (any, error) {
				var a, b float64
				if err := errors.Join(req.Arg("a", &a), req.Arg("b", &b)); err != nil {
					return nil, err
				}
				if b == 0 {
					// Raised on a Python caller as the builtin ZeroDivisionError.
					return nil, &driver.RemoteError{Module: "builtins", Class: "ZeroDivisionError", Message: "division by zero"}
				}
				return a / b, nil
			},
		},
	}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	<-srv.Ready()
	return srv
}

func ExampleRPCClient_Call() {
	r := startRouter()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	serverTransport, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer serverTransport.Close()
	srv := calculator(serverTransport)
	defer srv.Stop(ctx)

	// One transport (one AMQP connection) serves any number of clients.
	t, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	client := driver.NewRPCClient(t, driver.Target{Topic: "calculator"}, &driver.ClientOptions{Timeout: 5 * time.Second})

	var sum int
	if err := client.CallInto(ctx, nil, "add", map[string]any{"a": 2, "b": 3}, &sum); err != nil {
		log.Fatal(err)
	}
	fmt.Println("2 + 3 =", sum)

	_, err = client.Call(ctx, map[string]any{"request_id": "req-42"}, "divide", map[string]any{"a": 1, "b": 0})
	var remote *driver.RemoteError
	if errors.As(err, &remote) {
		fmt.Printf("the server raised %s: %s\n", remote.Class, remote.Message)
	}

	// Nobody serves this topic: the call times out.
	nobody := driver.NewRPCClient(t, driver.Target{Topic: "nobody"}, &driver.ClientOptions{Timeout: 200 * time.Millisecond})
	_, err = nobody.Call(ctx, nil, "ping", nil)
	fmt.Println("timeout:", errors.Is(err, driver.ErrTimeout))
	// Output:
	// 2 + 3 = 5
	// the server raised ZeroDivisionError: division by zero
	// timeout: true
}

func ExampleRPCClient_Cast() {
	r := startRouter()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	serverTransport, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer serverTransport.Close()
	got := make(chan string, 2)
	srv, err := driver.NewRPCServer(serverTransport, driver.Target{Topic: "audit", Server: "auditor-1"}, []driver.Endpoint{{
		Methods: map[string]driver.Method{
			"record": func(ctx context.Context, req *driver.Request) (any, error) {
				var event string
				_ = req.Arg("event", &event)
				got <- event
				return nil, nil // a cast gets no reply
			},
		},
	}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop(ctx)
	<-srv.Ready()

	t, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	client := driver.NewRPCClient(t, driver.Target{Topic: "audit"}, nil)
	// A cast is sent pre-settled (pre_settled=rpc-cast): it returns once written.
	if err := client.Cast(ctx, nil, "record", map[string]any{"event": "login"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded:", <-got)
	// A fanout cast reaches every server of the topic.
	if err := client.Prepare(driver.Target{Topic: "audit", Fanout: true}).Cast(ctx, nil, "record", map[string]any{"event": "logout"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded:", <-got)
	// Output:
	// recorded: login
	// recorded: logout
}

func ExampleRPCServer() {
	r := startRouter()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	// Two endpoints: the default namespace at version 1.0, and "admin" at 2.3. A
	// request goes to the endpoint of its namespace whose major version matches and
	// whose minor version is at least the requested one, as oslo's dispatcher does.
	endpoints := []driver.Endpoint{
		{Methods: map[string]driver.Method{
			"hello": func(ctx context.Context, req *driver.Request) (any, error) {
				var name string
				if err := req.Arg("name", &name); err != nil {
					return nil, err
				}
				return "hello " + name, nil
			},
		}},
		{Namespace: "admin", Version: "2.3", Methods: map[string]driver.Method{
			"status": func(ctx context.Context, req *driver.Request) (any, error) {
				return map[string]any{"up": true, "caller": req.Context["user"]}, nil
			},
		}},
	}
	srv, err := driver.NewRPCServer(t, driver.Target{Topic: "service", Server: "host-1"}, endpoints, &driver.ServerOptions{Executor: 8})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	<-srv.Ready()

	client := driver.NewRPCClient(t, driver.Target{Topic: "service"}, &driver.ClientOptions{Timeout: 5 * time.Second})
	var greeting string
	if err := client.CallInto(ctx, nil, "hello", map[string]any{"name": "world"}, &greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)

	admin := client.Prepare(driver.Target{Topic: "service", Server: "host-1", Namespace: "admin", Version: "2.1"})
	status, err := admin.Call(ctx, map[string]any{"user": "alice"}, "status", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(status))

	_, err = client.Prepare(driver.Target{Topic: "service", Namespace: "admin", Version: "3.0"}).Call(ctx, nil, "status", nil)
	var remote *driver.RemoteError
	if errors.As(err, &remote) {
		fmt.Println(remote.Class)
	}

	// Stop detaches the links and waits for the methods running to reply.
	if err := srv.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello world
	// {"caller": "alice", "up": true}
	// UnsupportedVersion
}

func ExampleNotifier_Info() {
	r := startRouter()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Through a router a notification needs a listener: it waits for one (no
	// storage), and fails after default_notify_timeout when there is none.
	lt, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer lt.Close()
	got := make(chan *driver.Notification, 1)
	l, err := driver.NewListener(lt, []driver.Target{{Topic: "notifications"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		got <- n
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityInfo}})
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Start(); err != nil {
		log.Fatal(err)
	}
	defer l.Stop(ctx)
	<-l.Ready()

	t, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	notifier := driver.NewNotifier(t, &driver.NotifierOptions{PublisherID: "compute.host-1"})
	err = notifier.Info(ctx, map[string]any{"request_id": "req-7"}, "compute.instance.create.end",
		map[string]any{"instance_id": "i-123", "state": "active"})
	if err != nil {
		log.Fatal(err)
	}
	n := <-got
	fmt.Println(n.Priority, n.EventType, "from", n.PublisherID)
	fmt.Println(string(n.Payload))
	fmt.Println("request:", n.Context["request_id"])
	// Output:
	// info compute.instance.create.end from compute.host-1
	// {"instance_id": "i-123", "state": "active"}
	// request: req-7
}

func ExampleListener() {
	r := startRouter()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t, err := driver.NewTransport(r.URL(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	type event struct {
		priority driver.Priority
		kind     string
		size     int
	}
	got := make(chan event, 4)
	// One link per (topic, priority): here notifications.error and
	// notifications.warn.
	l, err := driver.NewListener(t, []driver.Target{{Topic: "notifications"}}, func(ctx context.Context, n *driver.Notification) driver.Result {
		var payload struct {
			Size int `json:"size"`
		}
		if err := json.Unmarshal(n.Payload, &payload); err != nil {
			return driver.Requeue // without AllowRequeue, taken as Handled
		}
		got <- event{n.Priority, n.EventType, payload.Size}
		return driver.Handled
	}, &driver.ListenerOptions{Priorities: []driver.Priority{driver.PriorityError, driver.PriorityWarn}})
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Start(); err != nil {
		log.Fatal(err)
	}
	<-l.Ready()

	notifier := driver.NewNotifier(t, &driver.NotifierOptions{PublisherID: "volume.host-2"})
	if err := notifier.Warn(ctx, nil, "volume.usage", map[string]any{"size": 80}); err != nil {
		log.Fatal(err)
	}
	if err := notifier.Error(ctx, nil, "volume.full", map[string]any{"size": 100}); err != nil {
		log.Fatal(err)
	}
	for range 2 {
		e := <-got
		fmt.Println(e.priority, e.kind, e.size)
	}
	if err := l.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// warn volume.usage 80
	// error volume.full 100
}
