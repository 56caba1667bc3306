package driver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// testPKI is a CA with a server and a client certificate, made for one test, with
// their PEM files in a temporary directory.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool

	server tls.Certificate // for the router

	clientCert, clientKey, clientKeyEnc string // PEM files
	clientKeyPassword                   string
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func writePEM(t *testing.T, path string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// newTestPKI makes a CA named name, a server certificate for serverNames (IP
// addresses or DNS names) and a client certificate with CN "client.example".
func newTestPKI(t *testing.T, name string, serverNames ...string) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), clientKeyPassword: "s3cret"}
	p.caKey = newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &p.caKey.PublicKey, p.caKey)
	require.NoError(t, err)
	p.ca, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	p.caFile = writePEM(t, filepath.Join(p.dir, "ca.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)

	p.server = p.issue(t, "server", serverNames, x509.ExtKeyUsageServerAuth)

	clientKey := newKey(t)
	clientDER := p.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "client.example"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &clientKey.PublicKey)
	p.clientCert = writePEM(t, filepath.Join(p.dir, "client.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: clientDER})
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	require.NoError(t, err)
	p.clientKey = writePEM(t, filepath.Join(p.dir, "client-key.pem"), &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	// A legacy encrypted PEM key ("Proc-Type: 4,ENCRYPTED"), as ssl_key_password
	// decrypts.
	//lint:ignore SA1019 the legacy format is what oslo deployments use.
	enc, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", keyDER, []byte(p.clientKeyPassword), x509.PEMCipherAES256) //nolint:staticcheck
	require.NoError(t, err)
	p.clientKeyEnc = writePEM(t, filepath.Join(p.dir, "client-key-enc.pem"), enc)
	return p
}

func (p *testPKI) sign(t *testing.T, tmpl *x509.Certificate, pub any) []byte {
	t.Helper()
	tmpl.SerialNumber = nextSerial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.caKey)
	require.NoError(t, err)
	return der
}

// issue makes a certificate for names (IPs or DNS names).
func (p *testPKI) issue(t *testing.T, cn string, names []string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der := p.sign(t, tmpl, &key.PublicKey)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS is the router's TLS configuration: p's server certificate, and client
// certificates verified against p's CA when given (for SASL EXTERNAL).
func (p *testPKI) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// mechanismsSeen records the SASL mechanisms clients chose (sasl-init frames).
type mechanismsSeen struct {
	mu    sync.Mutex
	mechs []string
}

func (m *mechanismsSeen) trace(f fakerouter.Frame) {
	if !f.Incoming || f.Performative != "init" {
		return
	}
	for _, field := range strings.Fields(f.Fields) {
		if v, ok := strings.CutPrefix(field, "Mechanism="); ok {
			m.mu.Lock()
			m.mechs = append(m.mechs, v)
			m.mu.Unlock()
		}
	}
}

func (m *mechanismsSeen) list() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.mechs...)
}

// callThrough checks that a client on clientURL (with opts) reaches a server over the
// router r; the server connects to srvURL (without TLS, on the same vhost).
func callThrough(t *testing.T, r *fakerouter.Router, srvURL, clientURL string, opts *driver.Options) {
	t.Helper()
	ctx := testCtx(t)
	topic := "tls-" + strings.ReplaceAll(t.Name(), "/", "-")
	startServer(t, r, newTransport(t, srvURL, nil), topic, "s")
	require.NoError(t, r.WaitForPrefix(ctx, "openstack.org/om/rpc/anycast/", 1))
	cli := driver.NewRPCClient(newTransport(t, clientURL, opts), driver.Target{Topic: topic}, &driver.ClientOptions{Timeout: 10 * time.Second})
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "over TLS"})
	require.NoError(t, err)
	require.Equal(t, `"over TLS"`, string(res))
}

// callFailsFast checks that a call from clientURL fails at once with
// ErrDeliveryFailure and a message containing want.
func callFailsFast(t *testing.T, clientURL string, opts *driver.Options, want string) error {
	t.Helper()
	cli := driver.NewRPCClient(newTransport(t, clientURL, opts), driver.Target{Topic: "never"}, &driver.ClientOptions{Timeout: 30 * time.Second})
	_, err := cli.Call(testCtx(t), nil, "echo", nil)
	// Waiting for the call's timeout would end in ErrTimeout: the refusal came first.
	require.ErrorIs(t, err, driver.ErrDeliveryFailure)
	require.False(t, errors.Is(err, driver.ErrTimeout), "a refused connection must fail fast, not wait for the call timeout: %v", err)
	require.Contains(t, err.Error(), want)
	return err
}

func tlsOptions(ca string) *driver.Options {
	o := fastOptions()
	o.SSLCAFile = ca
	return o
}

func TestTLSWithCAFile(t *testing.T) {
	pki := newTestPKI(t, "test CA", "127.0.0.1", "localhost")
	r := fakerouter.RunT(t, &fakerouter.Options{TLS: pki.serverTLS()})

	t.Run("verify-peer", func(t *testing.T) {
		callThrough(t, r, r.URL(), r.URL(), tlsOptions(pki.caFile))
	})
	t.Run("vhost ignored without ssl_verify_vhost", func(t *testing.T) {
		callThrough(t, r, r.URL()+"/elsewhere", r.URL()+"/elsewhere", tlsOptions(pki.caFile))
	})
	t.Run("ssl_verify_vhost", func(t *testing.T) {
		o := tlsOptions(pki.caFile)
		o.SSLVerifyVhost = true
		// The certificate names localhost: the vhost is the name checked.
		callThrough(t, r, r.URL()+"/localhost", r.URL()+"/localhost", o)
	})
	t.Run("ssl_verify_vhost mismatch", func(t *testing.T) {
		o := tlsOptions(pki.caFile)
		o.SSLVerifyVhost = true
		err := callFailsFast(t, r.URL()+"/wrong.example", o, "TLS")
		var he x509.HostnameError
		require.ErrorAs(t, err, &he)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other := newTestPKI(t, "another CA", "127.0.0.1")
		err := callFailsFast(t, r.URL(), tlsOptions(other.caFile), "TLS")
		var ua x509.UnknownAuthorityError
		require.ErrorAs(t, err, &ua)
	})
	t.Run("ssl=1 in the URL trusts the system CAs", func(t *testing.T) {
		restore := driver.SetSystemCertPoolForTest(func() (*x509.CertPool, error) { return pki.pool, nil })
		t.Cleanup(restore)
		callThrough(t, r, r.URL(), r.URL()+"?ssl=1", fastOptions())
	})
	t.Run("ssl=1 with untrusting system CAs", func(t *testing.T) {
		restore := driver.SetSystemCertPoolForTest(func() (*x509.CertPool, error) { return x509.NewCertPool(), nil })
		t.Cleanup(restore)
		callFailsFast(t, r.URL()+"?ssl=1", fastOptions(), "TLS")
	})
}

func TestTLSVerifyCertOnlyWithoutPeerName(t *testing.T) {
	// The certificate names another host: checking the name fails, but with
	// ssl_verify_vhost and no vhost there is no peer name, so only the chain is
	// verified (pyngus verify-cert).
	pki := newTestPKI(t, "test CA", "other.example")
	r := fakerouter.RunT(t, &fakerouter.Options{TLS: pki.serverTLS()})
	err := callFailsFast(t, r.URL(), tlsOptions(pki.caFile), "TLS")
	var he x509.HostnameError
	require.ErrorAs(t, err, &he)

	o := tlsOptions(pki.caFile)
	o.SSLVerifyVhost = true
	callThrough(t, r, r.URL(), r.URL(), o)

	// The chain is still verified.
	other := newTestPKI(t, "another CA", "other.example")
	o = tlsOptions(other.caFile)
	o.SSLVerifyVhost = true
	callFailsFast(t, r.URL(), o, "TLS")
}

func TestTLSClientCertificateWithSASLExternal(t *testing.T) {
	pki := newTestPKI(t, "test CA", "127.0.0.1", "localhost")
	var seen mechanismsSeen
	// Authentication required: EXTERNAL for clients whose certificate verified,
	// PLAIN for the server's user.
	r := fakerouter.RunT(t, &fakerouter.Options{TLS: pki.serverTLS(), AllowExternal: true, DenyAnonymous: true,
		Users: map[string]string{"srv": "pw"}, Trace: seen.trace})
	srvURL := strings.Replace(r.URL(), "amqp://", "amqp://srv:pw@", 1)

	for _, tc := range []struct {
		name, key, password string
	}{
		{"plain key", pki.clientKey, ""},
		{"encrypted key with ssl_key_password", pki.clientKeyEnc, pki.clientKeyPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tlsOptions(pki.caFile)
			o.SSLCertFile, o.SSLKeyFile, o.SSLKeyPassword = pki.clientCert, tc.key, tc.password
			before := len(seen.list())
			callThrough(t, r, srvURL, r.URL()+"?sasl_mechanisms=EXTERNAL", o)
			require.Contains(t, seen.list()[before:], "EXTERNAL", "the client authenticated with its certificate")
		})
	}

	t.Run("EXTERNAL chosen with a user name too", func(t *testing.T) {
		// Proton takes EXTERNAL whenever the server offers it; PLAIN would fail
		// (no such user).
		o := tlsOptions(pki.caFile)
		o.SSLCertFile, o.SSLKeyFile = pki.clientCert, pki.clientKey
		before := len(seen.list())
		u := strings.Replace(r.URL(), "amqp://", "amqp://joe:nopassword@", 1)
		cli := driver.NewRPCClient(newTransport(t, u, o), driver.Target{Topic: "ext"}, &driver.ClientOptions{Timeout: 500 * time.Millisecond})
		_, err := cli.Call(testCtx(t), nil, "echo", nil)
		require.ErrorIs(t, err, driver.ErrTimeout, "connected (nobody serves the topic)")
		require.Equal(t, []string{"EXTERNAL"}, seen.list()[before:])
	})

	t.Run("wrong key password", func(t *testing.T) {
		o := tlsOptions(pki.caFile)
		o.SSLCertFile, o.SSLKeyFile, o.SSLKeyPassword = pki.clientCert, pki.clientKeyEnc, "wrong"
		_, err := driver.NewTransport(r.URL(), &driver.TransportOptions{Options: o})
		var ce *driver.ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "ssl_key_password", ce.Field)
	})

	t.Run("encrypted key without a password", func(t *testing.T) {
		o := tlsOptions(pki.caFile)
		o.SSLCertFile, o.SSLKeyFile = pki.clientCert, pki.clientKeyEnc
		_, err := driver.NewTransport(r.URL(), &driver.TransportOptions{Options: o})
		var ce *driver.ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "ssl_key_password", ce.Field)
	})

	t.Run("missing CA file", func(t *testing.T) {
		_, err := driver.NewTransport(r.URL(), &driver.TransportOptions{Options: tlsOptions(filepath.Join(t.TempDir(), "nope.pem"))})
		var ce *driver.ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "ssl_ca_file", ce.Field)
	})
}
