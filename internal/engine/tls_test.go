package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// testPKI is a self-signed CA with a server certificate for 127.0.0.1 and client
// certificates, generated once per test binary.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	alice  tls.Certificate // client certificate, CN alice, signed by the CA
	rogue  tls.Certificate // client certificate, CN mallory, self-signed
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, caCert, err := newCert(nil, nil, &x509.Certificate{
			Subject:               pkix.Name{CommonName: "amqp1kit test CA"},
			IsCA:                  true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
		})
		if err != nil {
			panic(err)
		}
		p := &testPKI{pool: x509.NewCertPool()}
		p.pool.AddCert(caCert)
		p.server = mustLeaf(caKey, caCert, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:    []string{"localhost"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		p.alice = mustLeaf(caKey, caCert, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "alice"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		p.rogue = mustLeaf(nil, nil, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "mallory"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		pki = p
	})
	return pki
}

var serial struct {
	sync.Mutex
	n int64
}

// newCert makes a key and a certificate from tmpl, signed by parent (self-signed
// when parent is nil).
func newCert(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial.Lock()
	serial.n++
	tmpl.SerialNumber = big.NewInt(serial.n)
	serial.Unlock()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func mustLeaf(caKey *ecdsa.PrivateKey, ca *x509.Certificate, tmpl *x509.Certificate) tls.Certificate {
	key, cert, err := newCert(caKey, ca, tmpl)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// serverTLS is the server's TLS configuration; client certificates are verified if
// given.
func (p *testPKI) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.pool,
	}
}

// clientTLS trusts the test CA and presents certs.
func (p *testPKI) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1", Certificates: certs}
}

func amqpsURL(url string) string { return strings.Replace(url, "amqp://", "amqps://", 1) }

// tlsHeaderConn negotiates TLS through the AMQP TLS protocol header (which go-amqp
// cannot do) and returns the TLS connection for go-amqp to carry on with.
func tlsHeaderConn(t *testing.T, url string, cfg *tls.Config) net.Conn {
	t.Helper()
	p := dialPeer(t, url)
	p.writeHeader(wire.ProtoTLS)
	p.wantHeader(wire.ProtoTLS)
	_ = p.nc.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(p.nc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after the TLS header: %v", err)
	}
	_ = p.nc.SetDeadline(time.Time{})
	return tc
}

func newConnOver(t *testing.T, nc net.Conn, opts *amqp.ConnOptions) *amqp.Conn {
	t.Helper()
	c, err := amqp.NewConn(ctxT(t), nc, opts)
	if err != nil {
		t.Fatalf("AMQP over the TLS connection: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// useConn proves a go-amqp connection works: a message goes through the server.
func useConn(t *testing.T, c *amqp.Conn) {
	t.Helper()
	ctx := ctxT(t)
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := "tls-" + strings.ReplaceAll(t.Name(), "/", "-")
	snd, err := sess.NewSender(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bystanderRoundTrip(snd, rcv, 1); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	k := getPKI(t)

	t.Run("from-first-byte", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, &Options{TLS: k.serverTLS()})
		c := dial(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS(), SASLType: amqp.SASLTypeAnonymous()})
		if got := pol.nextOpened(t); got != (connInfo{user: "anonymous", mechanism: "ANONYMOUS", tls: true}) {
			t.Fatalf("handshake settled %+v, want ANONYMOUS over TLS", got)
		}
		useConn(t, c)
	})
	t.Run("from-first-byte-without-sasl", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, &Options{TLS: k.serverTLS()})
		c := dial(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS()})
		if got := pol.nextOpened(t); got != (connInfo{tls: true}) {
			t.Fatalf("handshake settled %+v, want TLS without SASL", got)
		}
		useConn(t, c)
	})
	t.Run("tls-header", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, &Options{TLS: k.serverTLS()})
		nc := tlsHeaderConn(t, url, k.clientTLS())
		c := newConnOver(t, nc, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
		if got := pol.nextOpened(t); got != (connInfo{user: "anonymous", mechanism: "ANONYMOUS", tls: true}) {
			t.Fatalf("handshake settled %+v, want ANONYMOUS over TLS", got)
		}
		useConn(t, c)
	})
	t.Run("second-tls-header", func(t *testing.T) {
		t.Parallel()
		logs, logger := newLogSink()
		_, url := startServer(t, newQueuePolicy(), &Options{TLS: k.serverTLS(), Logger: logger})
		by := newBystander(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS()})
		nc := tlsHeaderConn(t, url, k.clientTLS())
		p := newTestPeer(t, nc)
		p.writeHeader(wire.ProtoTLS)
		p.wantHeader(wire.ProtoSASL)
		p.wantClosedSocket()
		logs.want(t, "handshake failed", "TLS header but TLS is not offered here")
		by.check()
	})
	t.Run("require-tls", func(t *testing.T) {
		t.Parallel()
		logs, logger := newLogSink()
		_, url := startServer(t, newQueuePolicy(), &Options{TLS: k.serverTLS(), RequireTLS: true, Logger: logger})
		by := newBystander(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS()})
		for _, h := range []byte{wire.ProtoAMQP, wire.ProtoSASL} {
			p := dialPeer(t, url)
			p.writeHeader(h)
			p.wantHeader(wire.ProtoTLS)
			p.wantClosedSocket()
		}
		logs.want(t, "handshake failed", "plain AMQP but the listener requires TLS")
		logs.want(t, "handshake failed", "SASL before TLS but the listener requires TLS")
		if _, err := amqp.Dial(ctxT(t), url, nil); err == nil {
			t.Fatal("go-amqp without TLS connected to a server that requires TLS")
		}
		by.check()
		// Both ways into TLS satisfy RequireTLS.
		c := newConnOver(t, tlsHeaderConn(t, url, k.clientTLS()), nil)
		useConn(t, c)
	})
	t.Run("untrusted-server", func(t *testing.T) {
		t.Parallel()
		logs, logger := newLogSink()
		_, url := startServer(t, newQueuePolicy(), &Options{TLS: k.serverTLS(), Logger: logger})
		by := newBystander(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS()})
		_, err := amqp.Dial(ctxT(t), amqpsURL(url), &amqp.ConnOptions{TLSConfig: &tls.Config{ServerName: "127.0.0.1"}})
		if err == nil {
			t.Fatal("a client that does not trust the server's CA connected")
		}
		logs.want(t, "handshake failed", "TLS handshake")
		by.check()
	})
	t.Run("rogue-client-certificate", func(t *testing.T) {
		t.Parallel()
		logs, logger := newLogSink()
		_, url := startServer(t, newQueuePolicy(), &Options{TLS: k.serverTLS(), AllowExternal: true, Logger: logger})
		by := newBystander(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS()})
		// Go's client only presents a certificate the server's CA list accepts; insist.
		cfg := k.clientTLS()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &k.rogue, nil }
		_, err := amqp.Dial(ctxT(t), amqpsURL(url), &amqp.ConnOptions{TLSConfig: cfg, SASLType: amqp.SASLTypeExternal("")})
		if err == nil {
			t.Fatal("a client certificate from an unknown CA was accepted")
		}
		logs.want(t, "handshake failed", "TLS handshake")
		by.check()
	})
}

func TestSASLExternal(t *testing.T) {
	t.Parallel()
	k := getPKI(t)
	opts := func(logger *logSinkLogger) *Options {
		return &Options{TLS: k.serverTLS(), AllowExternal: true, DenyAnonymous: true, Users: map[string]string{"joe": "secret"}, Logger: logger.l}
	}

	t.Run("tls-from-first-byte", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, opts(newLogger()))
		c := dial(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS(k.alice), SASLType: amqp.SASLTypeExternal("")})
		want := connInfo{user: "alice", mechanism: "EXTERNAL", tls: true, peerCN: "alice"}
		if got := pol.nextOpened(t); got != want {
			t.Fatalf("handshake settled %+v, want %+v", got, want)
		}
		useConn(t, c)
	})
	t.Run("tls-header", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, opts(newLogger()))
		c := newConnOver(t, tlsHeaderConn(t, url, k.clientTLS(k.alice)), &amqp.ConnOptions{SASLType: amqp.SASLTypeExternal("")})
		want := connInfo{user: "alice", mechanism: "EXTERNAL", tls: true, peerCN: "alice"}
		if got := pol.nextOpened(t); got != want {
			t.Fatalf("handshake settled %+v, want %+v", got, want)
		}
		useConn(t, c)
	})
	t.Run("offered-only-with-a-certificate", func(t *testing.T) {
		t.Parallel()
		_, url := startServer(t, NopHandler{}, opts(newLogger()))
		for _, tc := range []struct {
			certs []tls.Certificate
			want  []wire.Symbol
		}{
			{[]tls.Certificate{k.alice}, []wire.Symbol{"EXTERNAL", "PLAIN"}},
			{nil, []wire.Symbol{"PLAIN"}},
		} {
			p := newTestPeer(t, tlsHeaderConn(t, url, k.clientTLS(tc.certs...)))
			p.writeHeader(wire.ProtoSASL)
			p.wantHeader(wire.ProtoSASL)
			m, _ := readFrame[*wire.SASLMechanisms](p)
			if !slices.Equal(m.SASLServerMechanisms, tc.want) {
				t.Errorf("with %d client certificates: mechanisms %v, want %v", len(tc.certs), m.SASLServerMechanisms, tc.want)
			}
		}
	})
	t.Run("without-certificate", func(t *testing.T) {
		t.Parallel()
		lg := newLogger()
		_, url := startServer(t, newQueuePolicy(), opts(lg))
		by := newBystander(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS(k.alice), SASLType: amqp.SASLTypeExternal("")})
		// go-amqp refuses by itself when EXTERNAL is not offered; the raw peer insists.
		_, err := amqp.Dial(ctxT(t), amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS(), SASLType: amqp.SASLTypeExternal("")})
		if err == nil {
			t.Fatal("EXTERNAL succeeded without a client certificate")
		}
		p := newTestPeer(t, tlsHeaderConn(t, url, k.clientTLS()))
		p.saslInit("EXTERNAL", nil)
		p.wantSASLOutcome(wire.SASLCodeAuth)
		p.wantClosedSocket()
		lg.sink.want(t, "handshake failed", "EXTERNAL")
		by.check()
	})
	t.Run("plain-over-tls-still-works", func(t *testing.T) {
		t.Parallel()
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, opts(newLogger()))
		c := dial(t, amqpsURL(url), &amqp.ConnOptions{TLSConfig: k.clientTLS(k.alice), SASLType: amqp.SASLTypePlain("joe", "secret")})
		want := connInfo{user: "joe", mechanism: "PLAIN", tls: true, peerCN: "alice"}
		if got := pol.nextOpened(t); got != want {
			t.Fatalf("handshake settled %+v, want %+v", got, want)
		}
		useConn(t, c)
	})
}

type logSinkLogger struct {
	sink *logSink
	l    *slog.Logger
}

func newLogger() *logSinkLogger {
	s, l := newLogSink()
	return &logSinkLogger{sink: s, l: l}
}

// A server closed while a client sits between TLS and its next protocol header must
// close that client without racing the handshake's swap of the socket for the TLS
// connection (go test -race finds the race, if any).
func TestServerCloseAfterTLSBeforeAMQP(t *testing.T) {
	t.Parallel()
	k := getPKI(t)
	s, url := startServer(t, NopHandler{}, &Options{TLS: k.serverTLS()})
	waiting := make([]*testPeer, 0, 2)
	waiting = append(waiting, newTestPeer(t, tlsHeaderConn(t, url, k.clientTLS())))
	// And one with TLS from the first byte.
	nc, err := tls.Dial("tcp", strings.TrimPrefix(url, "amqp://"), k.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	waiting = append(waiting, newTestPeer(t, nc))
	waitFor(t, "both connections to be served", func() bool { return len(s.Conns()) == 2 })
	for _, c := range s.Conns() {
		_ = c.RemoteAddr() // what Server.Close logs for a connection that hangs
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Server.Close hangs on connections that are still in their handshake")
	}
	for _, p := range waiting {
		p.wantClosedSocket()
	}
}
