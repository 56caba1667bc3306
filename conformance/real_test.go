package conformance_test

import (
	"testing"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// The real programs the fakes imitate pass every case but where a program is plainly
// broken and its fake knowingly differs (qpiddDifferences): the suite was written
// against them (the program wins where a document disagrees), and the fakes are held
// to the same cases (TestFakeRouter, TestFakeBroker). One program serves all the cases of a
// test; each case uses addresses of its own.
func TestRealQdrouterd(t *testing.T) {
	t.Parallel()
	peer := realpeer.StartQdrouterd(t, nil)
	requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
		return conformance.RouterAt("qdrouterd 1.19.0", peer.URL())
	}))
}

// TestRealQpidd runs the suite against qpidd 1.39.0, which shows the one difference
// fakebroker keeps on purpose (qpiddDifferences).
func TestRealQpidd(t *testing.T) {
	t.Parallel()
	peer := realpeer.StartQpidd(t, nil)
	requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
		h := conformance.BrokerAt("qpidd 1.39.0", peer.URL())
		h.Differences = qpiddDifferences
		return h
	}))
}

// qpiddDifferences are the cases where qpidd 1.39.0 is plainly broken and fakebroker
// knowingly differs, natively and in its container alike (kept in internal/testenv/realpeer,
// which the containers module's test reads too).
var qpiddDifferences = realpeer.QpiddConformanceDifferences
