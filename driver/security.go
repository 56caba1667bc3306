package driver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	amqp "github.com/Azure/go-amqp"
)

// TLS and SASL set-up, as pyngus does it for the Python driver
// (pyngus Connection._configure_ssl and __init__, controller.py:_do_connect).

// systemCertPool returns the CAs that ssl=True trusts when ssl_ca_file is not set
// (Python: ssl.get_default_verify_paths().cafile). Tests replace it.
var systemCertPool = x509.SystemCertPool

// The SASL mechanisms this driver can use.
var supportedMechanisms = []string{"EXTERNAL", "PLAIN", "ANONYMOUS"}

// saslMechanismList returns sasl_mechanisms split and upper-cased, as pyngus reads it.
func saslMechanismList(o *Options) []string {
	return strings.Fields(strings.ToUpper(o.SASLMechanisms))
}

// checkSASLMechanisms refuses a sasl_mechanisms list that names none of the
// mechanisms this driver supports: no connection could ever authenticate.
func checkSASLMechanisms(o *Options) error {
	mechs := saslMechanismList(o)
	if len(mechs) == 0 {
		return nil
	}
	for _, m := range mechs {
		if slices.Contains(supportedMechanisms, m) {
			return nil
		}
	}
	return &ConfigError{Field: "sasl_mechanisms", Value: o.SASLMechanisms,
		Reason: "none of the listed mechanisms is supported by this driver (it supports EXTERNAL, PLAIN and ANONYMOUS)"}
}

// saslType returns the SASL mechanisms to offer to go-amqp for host, and their names;
// nil when SASL is off. SASL is on, as pyngus decides, when the host has a user name
// or any sasl_* option is set. The mechanisms are, among those sasl_mechanisms allows
// (all when it is empty):
//
//   - EXTERNAL when a client certificate is configured (or sasl_mechanisms names it);
//   - PLAIN when the host has a user name (sasl_default_realm appended, see
//     saslUser);
//   - ANONYMOUS when PLAIN is not used.
//
// go-amqp takes the first of the server's offered mechanisms that is in the list; a
// server that offers none of them fails the connection with a clear error.
func (t *Transport) saslType(host Host) (amqp.SASLType, []string, error) {
	o := &t.opts
	if host.Username == "" && o.SASLMechanisms == "" && o.SASLConfigDir == "" && o.SASLConfigName == "" {
		return nil, nil, nil
	}
	mechs := saslMechanismList(o)
	allowed := func(m string) bool { return len(mechs) == 0 || slices.Contains(mechs, m) }
	var types []amqp.SASLType
	var names []string
	if allowed("EXTERNAL") && (o.SSLCertFile != "" || slices.Contains(mechs, "EXTERNAL")) {
		types = append(types, amqp.SASLTypeExternal(""))
		names = append(names, "EXTERNAL")
	}
	if allowed("PLAIN") && host.Username != "" {
		types = append(types, amqp.SASLTypePlain(o.saslUser(host), host.Password))
		names = append(names, "PLAIN")
	}
	if allowed("ANONYMOUS") && !slices.Contains(names, "PLAIN") {
		types = append(types, amqp.SASLTypeAnonymous())
		names = append(names, "ANONYMOUS")
	}
	if len(types) == 0 {
		reason := "none of the listed mechanisms can be used"
		switch {
		case allowed("PLAIN") && host.Username == "":
			reason += " (PLAIN needs a user name in the transport URL)"
		case allowed("EXTERNAL"):
			reason += " (EXTERNAL needs ssl_cert_file)"
		}
		return nil, nil, &ConfigError{Field: "sasl_mechanisms", Value: o.SASLMechanisms, Reason: reason}
	}
	return func(c *amqp.Conn) error {
		for _, f := range types {
			if err := f(c); err != nil {
				return err
			}
		}
		return nil
	}, names, nil
}

// tlsEnabled reports whether connections use TLS: ssl, ssl_ca_file or ssl_cert_file.
func (o *Options) tlsEnabled() bool {
	return o.SSL || o.SSLCAFile != "" || o.SSLCertFile != ""
}

// checkTLSFiles reads the TLS files once, so that a missing file or a wrong key
// password is a *ConfigError from NewTransport rather than on first use. They are
// read again for every connection, so that renewed certificates are picked up.
func checkTLSFiles(o *Options) error {
	if !o.tlsEnabled() {
		return nil
	}
	if o.SSLCAFile != "" {
		if _, err := loadCAFile(o.SSLCAFile); err != nil {
			return err
		}
	}
	if o.SSLCertFile != "" {
		if _, err := loadKeyPair(o.SSLCertFile, o.SSLKeyFile, o.SSLKeyPassword); err != nil {
			return err
		}
	}
	return nil
}

// tlsConfig follows pyngus. The trusted CAs are ssl_ca_file, else (ssl=True) the
// system's. The peer name (also sent as SNI) is the host name, or with
// ssl_verify_vhost the URL's virtual host. The verification mode follows:
//
//   - no CA available: no-verify (the server is not authenticated, as in Python);
//   - CAs but no peer name (ssl_verify_vhost without a vhost): verify-cert, the chain
//     only;
//   - CAs and a peer name: verify-peer, the chain and the name.
//
// The client certificate and key (decrypted with ssl_key_password) are presented
// when ssl_cert_file is set.
func (t *Transport) tlsConfig(host Host) (*tls.Config, error) {
	o := &t.opts
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host.Hostname}
	if o.SSLVerifyVhost {
		tc.ServerName = t.url.VirtualHost
	}
	var roots *x509.CertPool
	if o.SSLCAFile != "" {
		pool, err := loadCAFile(o.SSLCAFile)
		if err != nil {
			return nil, err
		}
		roots = pool
	} else {
		pool, err := systemCertPool()
		if err != nil || pool == nil {
			t.log.Warn("TLS without ssl_ca_file and no system CAs: the server's certificate is not verified", "host", host.Address(), "err", err)
		}
		roots = pool
	}
	tc.RootCAs = roots
	switch {
	case roots == nil:
		tc.InsecureSkipVerify = true // no-verify, as pyngus without a CA file
	case tc.ServerName == "":
		// verify-cert: the chain only. crypto/tls checks a name whenever it verifies,
		// so verification is done here instead.
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	}
	if o.SSLCertFile != "" {
		cert, err := loadKeyPair(o.SSLCertFile, o.SSLKeyFile, o.SSLKeyPassword)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// loadCAFile reads a PEM file of CA certificates.
func loadCAFile(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Field: "ssl_ca_file", Value: path, Reason: "cannot read the CA file", Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, &ConfigError{Field: "ssl_ca_file", Value: path, Reason: "no PEM certificate in the CA file"}
	}
	return pool, nil
}

// verifyChain verifies the server's chain against roots without checking a name.
func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("the server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}

// loadKeyPair reads a PEM certificate and key (the key from the certificate file when
// keyFile is empty), decrypting a legacy encrypted PEM key ("Proc-Type: 4,ENCRYPTED")
// with password. PKCS#8 "ENCRYPTED PRIVATE KEY" files are not supported by Go's
// standard library: decrypt them first (openssl pkey).
func loadKeyPair(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_cert_file", Value: certFile, Reason: "cannot read", Err: err}
	}
	if keyFile == "" {
		keyFile = certFile
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_key_file", Value: keyFile, Reason: "cannot read", Err: err}
	}
	for rest := keyPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return tls.Certificate{}, &ConfigError{Field: "ssl_key_file", Value: keyFile,
				Reason: "PKCS#8 encrypted keys are not supported; use a legacy encrypted PEM key or an unencrypted one"}
		}
		//lint:ignore SA1019 oslo deployments use legacy encrypted PEM keys (ssl_key_password).
		if !x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
			continue
		}
		if password == "" {
			return tls.Certificate{}, &ConfigError{Field: "ssl_key_password", Reason: "the key in ssl_key_file is encrypted and no password is set"}
		}
		//lint:ignore SA1019 as above.
		der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck
		if err != nil {
			return tls.Certificate{}, &ConfigError{Field: "ssl_key_password", Reason: "cannot decrypt the key in ssl_key_file", Err: err}
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		break
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &ConfigError{Field: "ssl_cert_file", Value: certFile, Reason: "the certificate and key do not load", Err: err}
	}
	return cert, nil
}

// isTLSFailure reports a TLS handshake that failed for a reason retrying the same way
// cannot fix: a certificate that does not verify (on either side) or a server that
// does not speak TLS.
func isTLSFailure(err error) bool {
	var (
		cve  *tls.CertificateVerificationError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
		alrt tls.AlertError
		rh   tls.RecordHeaderError
	)
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &ci) || errors.As(err, &alrt) || errors.As(err, &rh)
}

// classifyDialError turns go-amqp's dial errors into the driver's: authentication
// and TLS failures are fatal (callers fail at once, wrapping ErrDeliveryFailure, with
// the reason), anything else is retried.
func classifyDialError(host Host, mechs []string, err error) error {
	var ae *amqp.Error
	var ce *amqp.ConnError
	msg := err.Error()
	fail := func(what string) error {
		return &fatalError{&driverError{kind: ErrDeliveryFailure, msg: host.Address() + ": " + what, err: err}}
	}
	switch {
	case strings.Contains(msg, "no supported auth mechanism"):
		return fail(fmt.Sprintf("SASL: no mechanism in common (amqp:unauthorized-access): this client may use %v, given sasl_mechanisms, the URL's credentials and ssl_cert_file", mechs))
	case errors.As(err, &ae) && ae.Condition == amqp.ErrCondUnauthorizedAccess,
		errors.As(err, &ce) && ce.RemoteErr != nil && ce.RemoteErr.Condition == amqp.ErrCondUnauthorizedAccess,
		strings.Contains(msg, "SASL"):
		return fail(fmt.Sprintf("authentication failed (amqp:unauthorized-access) with SASL %v", mechs))
	case isTLSFailure(err):
		return fail("TLS handshake failed")
	case strings.Contains(msg, host.Address()):
		return err // "dial tcp 127.0.0.1:5672: connect: connection refused" names the host
	}
	return &driverError{msg: host.Address(), err: err}
}
