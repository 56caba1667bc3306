package conformance_test

import (
	"fmt"

	"github.com/amqp1kit/amqp1kit/conformance"
)

// A harness for an intermediary that has no multicast, with the reason the report
// gives for the cases it skips, and a case where it is known to behave otherwise.
func ExampleHarness() {
	h := conformance.BrokerAt("Proton C++ example broker", "amqp://127.0.0.1:5672")
	h.Missing = map[conformance.Capability]string{
		conformance.Multicast: "every address is a queue",
	}
	h.Differences = map[string]string{
		"OpenAdvertisesKind": "it sends no product property",
	}
	fmt.Println(h.Name, h.Kind, len(h.Missing), len(h.Differences))
	// Output: Proton C++ example broker broker 1 1
}

func ExampleReport() {
	fmt.Print(conformance.Report([]conformance.Result{
		{Case: "SendReceiveAccepted", Outcome: "pass"},
		{Case: "MulticastCopies", Outcome: "skip", Detail: "no multicast: every address is a queue"},
	}))
	// Output:
	//   SendReceiveAccepted                  pass
	//   MulticastCopies                      skip     no multicast: every address is a queue
}
