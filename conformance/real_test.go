package conformance_test

import (
	"testing"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/internal/realpeer"
)

// The real programs the fakes imitate pass every case: the suite was written against
// them (the program wins where a document disagrees), and the fakes are held to the
// same cases (TestFakeRouter, TestFakeBroker). One program serves all the cases of a
// test; each case uses addresses of its own.
func TestRealQdrouterd(t *testing.T) {
	t.Parallel()
	peer := realpeer.StartQdrouterd(t, nil)
	requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
		return conformance.RouterAt("qdrouterd 1.19.0", peer.URL())
	}))
}

func TestRealQpidd(t *testing.T) {
	t.Parallel()
	peer := realpeer.StartQpidd(t, nil)
	requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
		return conformance.BrokerAt("qpidd 1.39.0", peer.URL())
	}))
}
