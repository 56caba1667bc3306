// Package peers holds the project's one rule for tests that need a real peer (the
// Python driver, Qpid Proton, RabbitMQ, Docker, the spec's XML): without it a test
// skips and says why, except under CI=true, where every peer must be there and a
// missing one fails the test.
package peers

import (
	"os"
	"testing"
)

// Required reports whether every peer must be present: CI=true.
func Required() bool { return os.Getenv("CI") == "true" }

// Missing skips t with the reason, or under CI=true fails it with the same reason.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required under CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
