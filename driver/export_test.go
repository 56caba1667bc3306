package driver

import "crypto/x509"

// SetSystemCertPoolForTest replaces the system CAs that ssl=True trusts without
// ssl_ca_file, and returns a function that restores them.
func SetSystemCertPoolForTest(f func() (*x509.CertPool, error)) (restore func()) {
	old := systemCertPool
	systemCertPool = f
	return func() { systemCertPool = old }
}
