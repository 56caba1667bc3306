package peers_test

import (
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// recorder is a testing.TB that notes whether the test was skipped or failed.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestMissing(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	peers.Missing(r, "no %s", "broker")
	if r.skipped != "no %s" || r.failed != "" {
		t.Fatalf("without CI: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	peers.Missing(r, "no %s", "broker")
	if r.failed != "required under CI=true: no %s" {
		t.Fatalf("under CI=true: failed %q; want a failure", r.failed)
	}
}
