package fakerouter

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

const connectorConf = `
router {
    mode: standalone
    id: lr-test
}
listener {
    host: 127.0.0.1
    port: 0
}
connector {
    name: broker
    host: 127.0.0.1
    port: 5673
    role: route-container
    saslMechanisms: ANONYMOUS
    idleTimeoutSeconds: 30
    maxFrameSize: 65536
}
connector {
    name: other
    host: broker.example
    role: inter-router
    sslProfile: tls
}
linkRoute {
    prefix: queue
    direction: in
    connection: broker
    addExternalPrefix: int.
    delExternalPrefix: queue.
}
`

func TestConnectorSectionsParsed(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(strings.NewReader(connectorConf))
	require.NoError(t, err)
	require.Empty(t, cfg.Ignored)
	require.Len(t, cfg.Connectors, 2)
	b := cfg.Connectors[0]
	require.Equal(t, "broker", b.Name)
	require.Equal(t, "127.0.0.1:5673", b.address())
	require.Equal(t, "route-container", b.Role)
	require.Equal(t, "ANONYMOUS", b.SASLMechanisms)
	require.Equal(t, 30*time.Second, b.IdleTimeout)
	require.Equal(t, uint32(65536), b.MaxFrameSize)
	o := cfg.Connectors[1]
	require.Equal(t, "broker.example:5672", o.address(), "qdrouterd's default port amqp")
	require.Equal(t, "tls", o.SSLProfile)
	require.Equal(t, LinkRoute{Prefix: "queue", Direction: "in", Connection: "broker", AddExternalPrefix: "int.", DelExternalPrefix: "queue."}, cfg.LinkRoutes[0])

	for name, conf := range map[string]string{
		"role":     "connector {\n role: sideways\n}\n",
		"port":     "connector {\n port: http\n}\n",
		"idle":     "connector {\n idleTimeoutSeconds: soon\n}\n",
		"frame":    "connector {\n maxFrameSize: big\n}\n",
		"twoNames": "connector {\n name: a\n}\nconnector {\n name: a\n}\n",
		"both":     "linkRoute {\n prefix: a\n direction: in\n connection: x\n containerId: y\n}\n",
	} {
		path := filepath.Join(t.TempDir(), name+".conf")
		require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
		_, err := New(&Options{ConfigFile: path})
		require.Error(t, err, name)
	}
	_, err = New(&Options{LinkRoutes: []LinkRoute{{Prefix: "a"}}})
	require.ErrorContains(t, err, "direction")
}

func TestConnectorPasswordForms(t *testing.T) {
	t.Setenv("LR_TEST_PASSWORD", "from-env")
	path := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(path, []byte("from-file\nignored\n"), 0o600))
	for in, want := range map[string]string{
		"plain": "plain", "pass:literal": "literal", "env:LR_TEST_PASSWORD": "from-env", "file:" + path: "from-file",
	} {
		got, err := (&Connector{SASLPassword: in}).password()
		require.NoError(t, err)
		require.Equal(t, want, got, in)
	}
}

// A connector authenticates with SASL PLAIN when it has a user name; a wrong password
// keeps it from connecting.
func TestConnectorSASLPlain(t *testing.T) {
	t.Parallel()
	fb := fakebroker.RunT(t, &fakebroker.Options{Users: map[string]string{"router": "secret"}, DenyAnonymous: true})
	host, port, _ := net.SplitHostPort(fb.Addr())
	r := RunT(t, &Options{Connectors: []Connector{
		{Name: "good", Host: host, Port: port, Role: "route-container", SASLUsername: "router", SASLPassword: "secret"},
		{Name: "bad", Host: host, Port: port, Role: "route-container", SASLUsername: "router", SASLPassword: "wrong"},
		{Name: "anon", Host: host, Port: port, Role: "route-container"},
	}})
	require.NoError(t, r.WaitForConnector(lrCtx(t), "good"))
	for _, info := range r.Connectors() {
		if info.Name != "good" {
			require.False(t, info.Connected, info.Name)
		} else {
			require.Equal(t, fb.ID(), info.ContainerID)
		}
	}
}

// acceptLog is a listener that notes when each connection comes, and closes it.
type acceptLog struct {
	ln    net.Listener
	mu    sync.Mutex
	times []time.Time
	note  chan struct{}
}

func runAcceptLog(t *testing.T) *acceptLog {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := &acceptLog{ln: ln, note: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.times = append(a.times, time.Now())
			a.mu.Unlock()
			c.Close()
			a.note <- struct{}{}
		}
	}()
	return a
}

// The connector tries at once, then after connectRetryDelay while attempts fail, and
// reconnectDelay after losing a connection that had opened (qdrouterd: 5 s and 2 s;
// shortened here). Only the lower bounds are checked.
func TestConnectorReconnectDelays(t *testing.T) {
	saved := [2]time.Duration{connectRetryDelay, reconnectDelay}
	connectRetryDelay, reconnectDelay = 300*time.Millisecond, 150*time.Millisecond
	t.Cleanup(func() { connectRetryDelay, reconnectDelay = saved[0], saved[1] })

	a := runAcceptLog(t)
	host, port, _ := net.SplitHostPort(a.ln.Addr().String())
	start := time.Now()
	r, err := Run(&Options{Connectors: []Connector{{Name: "b", Host: host, Port: port, Role: "route-container"}}})
	require.NoError(t, err)
	for range 3 {
		<-a.note
	}
	a.mu.Lock()
	times := append([]time.Time(nil), a.times...)
	a.mu.Unlock()
	require.Less(t, times[0].Sub(start), connectRetryDelay, "the first attempt comes at once")
	for i := 1; i < len(times); i++ {
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), connectRetryDelay, "attempt %d", i)
	}
	require.NoError(t, r.Close())

	fb := fakebroker.RunT(t, nil)
	host, port, _ = net.SplitHostPort(fb.Addr())
	r = RunT(t, &Options{Connectors: []Connector{{Name: "b", Host: host, Port: port, Role: "route-container"}}})
	require.NoError(t, r.WaitForConnector(lrCtx(t), "b"))
	lost := time.Now()
	fb.DropConnections()
	waitFor(t, func() bool { return !r.Connectors()[0].Connected })
	require.NoError(t, r.WaitForConnector(lrCtx(t), "b"))
	require.GreaterOrEqual(t, time.Since(lost), reconnectDelay)
	requireNoConnectorGoroutinesBut(t, r)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx := lrCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition never held")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// requireNoConnectorGoroutinesBut closes r and checks that its connector's goroutines
// are gone.
func requireNoConnectorGoroutinesBut(t *testing.T, r *Router) {
	t.Helper()
	require.NoError(t, r.Close())
	requireNoConnectorGoroutines(t)
}

// A peer that answers the open and then sends garbage (a frame announcing 1 GiB) gets
// closed with amqp:connection:framing-error, without the router reading the rest; the
// router serves its clients meanwhile and tries again.
func TestConnectorBadPeerHarmsNothingElse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	closes := make(chan *wire.Close, 10)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go badPeer(nc, closes)
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	r, err := Run(&Options{LinkRoutes: bothWays("q", "b"),
		Connectors: []Connector{{Name: "b", Host: host, Port: port, Role: "route-container"}}})
	require.NoError(t, err)
	select {
	case cl := <-closes:
		require.NotNil(t, cl.Error)
		require.Equal(t, wire.ErrCondFramingError, cl.Error.Condition)
	case <-lrCtx(t).Done():
		t.Fatal("the router never closed the bad connection")
	}
	c := lrDial(t, r, "bystander")
	peer := c.attach(&wire.Attach{Name: "s", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "anycast.x"}})
	require.NotNil(t, peer.Target)
	requireNoConnectorGoroutinesBut(t, r)
}

// badPeer plays a broker up to its open, then announces a frame of 1 GiB and reports
// the close the router sends.
func badPeer(nc net.Conn, closes chan<- *wire.Close) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		return
	}
	write := func(typ byte, body wire.Marshaler) {
		b, _ := wire.AppendFrame(nil, typ, 0, body, nil)
		_, _ = nc.Write(b)
	}
	sasl := wire.ProtocolHeader{ID: wire.ProtoSASL, Major: 1}.Bytes()
	_, _ = nc.Write(sasl[:])
	write(wire.FrameSASL, &wire.SASLMechanisms{SASLServerMechanisms: []wire.Symbol{"ANONYMOUS"}})
	bc := &brokerConn{rd: bufio.NewReader(nc), maxIn: 1 << 20}
	if _, err := bc.readFrame(); err != nil { // sasl-init
		return
	}
	write(wire.FrameSASL, &wire.SASLOutcome{Code: wire.SASLCodeOK})
	if _, err := io.ReadFull(bc.rd, hdr); err != nil {
		return
	}
	amqpHdr := wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	_, _ = nc.Write(amqpHdr[:])
	if _, err := bc.readFrame(); err != nil { // open
		return
	}
	write(wire.FrameAMQP, &wire.Open{ContainerID: "bad-peer", MaxFrameSize: 4294967295, ChannelMax: 65535})
	_, _ = nc.Write([]byte{0x40, 0, 0, 0, 2, 0, 0, 0}) // 1 GiB announced
	for {
		f, err := bc.readFrame()
		if err != nil {
			return
		}
		if cl, ok := f.body.(*wire.Close); ok {
			closes <- cl
			return
		}
	}
}
