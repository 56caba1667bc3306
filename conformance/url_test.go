package conformance_test

import (
	"os"
	"strings"
	"testing"

	"github.com/amqp1kit/amqp1kit/conformance"
)

// TestURL runs the suite against any intermediary:
//
//	AMQP1KIT_CONFORMANCE_URL=amqp://127.0.0.1:5672 AMQP1KIT_CONFORMANCE_KIND=router \
//	    go test -run TestURL -v ./conformance/
//
// AMQP1KIT_CONFORMANCE_KIND is router (qdrouterd-like, the default) or broker
// (qpidd-like); AMQP1KIT_CONFORMANCE_QUEUE_PREFIX and _TOPIC_PREFIX replace the
// legacy oslo prefixes "unicast.conformance." and "broadcast.conformance.".
func TestURL(t *testing.T) {
	url := os.Getenv("AMQP1KIT_CONFORMANCE_URL")
	if url == "" {
		t.Skip("set AMQP1KIT_CONFORMANCE_URL (and AMQP1KIT_CONFORMANCE_KIND=router|broker) to run the suite against an intermediary of yours")
	}
	kind := strings.ToLower(os.Getenv("AMQP1KIT_CONFORMANCE_KIND"))
	queuePrefix := os.Getenv("AMQP1KIT_CONFORMANCE_QUEUE_PREFIX")
	topicPrefix := os.Getenv("AMQP1KIT_CONFORMANCE_TOPIC_PREFIX")
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		var h conformance.Harness
		switch kind {
		case "", "router":
			h = conformance.RouterAt(url, url)
		case "broker":
			h = conformance.BrokerAt(url, url)
		default:
			t.Fatalf("AMQP1KIT_CONFORMANCE_KIND=%q: want router or broker", kind)
		}
		if queuePrefix != "" {
			h.Queue = func(name string) string { return queuePrefix + name }
		}
		if topicPrefix != "" {
			h.Topic = func(name string) string { return topicPrefix + name }
		}
		return h
	})
}
