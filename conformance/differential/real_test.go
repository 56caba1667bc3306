package differential_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amqp1kit/amqp1kit/conformance/differential"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// outDir is where TestRealPrograms also writes each report and both raw traces
// (unset: nowhere): AMQP1KIT_DIFFERENTIAL_OUT=/tmp/reports go test -run TestRealPrograms.
const outDir = "AMQP1KIT_DIFFERENTIAL_OUT"

// TestRealPrograms runs every scenario against a fake and the real program it
// imitates (fakerouter and qdrouterd 1.19.0, fakebroker and qpidd 1.39.0) and logs
// the reports. Differences do not fail it (FINDINGS.md lists them for the fakes to
// be fixed); the tool's own errors do. Without the real programs it skips (fails
// under CI=true).
func TestRealPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the real programs take minutes")
	}
	// The router and the broker are compared side by side (each scenario waits on
	// quiet periods, not CPU); the scenarios of one run one after the other.
	t.Run("qdrouterd", func(t *testing.T) {
		t.Parallel()
		real := realpeer.StartQdrouterd(t, nil)
		fake := fakerouter.RunT(t, nil)
		compareAll(t,
			differential.Target{Name: "fakerouter", URL: fake.URL(), Kind: differential.Router},
			differential.Target{Name: "qdrouterd 1.19.0", URL: real.URL(), Kind: differential.Router})
	})
	t.Run("qpidd", func(t *testing.T) {
		t.Parallel()
		real := realpeer.StartQpidd(t, nil)
		fake := fakebroker.RunT(t, nil)
		compareAll(t,
			differential.Target{Name: "fakebroker", URL: fake.URL(), Kind: differential.Broker},
			differential.Target{Name: "qpidd 1.39.0", URL: real.URL(), Kind: differential.Broker})
	})
}

func compareAll(t *testing.T, a, b differential.Target) {
	dir := os.Getenv(outDir)
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range differential.Scenarios() {
		if s.For != differential.AnyKind && s.For != a.Kind {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			var o *differential.Options
			ta, err := o.Record(t.Context(), s, a)
			if err != nil {
				t.Fatalf("the tool failed: %v", err)
			}
			tb, err := o.Record(t.Context(), s, b)
			if err != nil {
				t.Fatalf("the tool failed: %v", err)
			}
			r := o.Diff(ta, tb)
			t.Logf("%s", r)
			if dir != "" {
				base := filepath.Join(dir, strings.Fields(b.Name)[0]+"-"+s.Name)
				for name, text := range map[string]string{".txt": r.String(), ".a.raw": ta.Raw(), ".b.raw": tb.Raw()} {
					if err := os.WriteFile(base+name, []byte(text), 0o644); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
}
