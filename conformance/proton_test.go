package conformance_test

import (
	"strings"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/protonbroker"
)

// TestProtonBroker runs the suite against Qpid Proton's C++ example broker (built from
// Debian's libqpid-proton11-dev-examples by scripts/proton-broker.sh), a small real
// broker independent of amqp1kit: every address is a queue, made on first use.
func TestProtonBroker(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		var b *protonbroker.Broker
		if strings.HasSuffix(t.Name(), "/BrokerDiscardsAbortedDelivery") {
			// The broker exits on an aborted transfer (the documented difference):
			// its exit is no failure of this case.
			if _, err := protonbroker.Binary(); err != nil {
				peers.Missing(t, "Proton C++ example broker: %v", err)
			}
			var err error
			if b, err = protonbroker.Start(nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
		} else {
			b = protonbroker.StartT(t, nil)
		}
		h := conformance.BrokerAt("Proton C++ example broker", b.URL())
		h.Differences = map[string]string{
			"MulticastCopies":     "it has no multicast: every address is a queue, so each message reaches one consumer",
			"ReleasedOutcome":     "it does not redeliver a released message",
			"ModifiedOutcome":     "it does not redeliver a modified message",
			"BrokerExpiresTTL":    "it does not expire messages: the header's ttl is ignored",
			"SettleModesAnswered": "it answers a receiving link's snd-settle-mode mixed whatever was asked (qpidd keeps it)",
			"AttachAnswerFields":  "its attach answers leave out a terminus of the other side and its expiry-policy",
			"ConsumerLoss":        "it does not redeliver what a consumer that went away held unsettled",
			"AnonymousRelay":      "a message on a sender with a null target never reaches the queue its to property names",
			"DrainWithCreditEchoed": "it never answers a drain when it has nothing to send " +
				"(no flow echo, part 2.6.7), so a client's drain waits for ever",
			"EchoFlowNotAnswered": "it never answers a drain (the case's last step)",
			// The broker cases hold qpidd 1.39.0's own behaviour; this is another broker.
			"BrokerAnonymousRelayAcceptsAll":       "a message on a sender with a null target never reaches the queue its to property names",
			"BrokerAnswersOwnTerminus":             "it echoes the client's termini (durable, expiry-policy, timeout, capabilities)",
			"BrokerBrowsesWithCopy":                "it does not browse: a receiver asking for distribution-mode copy takes the messages, and one asking for none is answered no distribution-mode",
			"BrokerDiscardsAbortedDelivery":        "it drops the connection on an aborted transfer, without a close frame, and exits (receiver read failure)",
			"BrokerDynamicNodes":                   "its dynamic node is named _dynamic_N and its answer keeps dynamic=true; a dynamic target gets no address",
			"BrokerHeaderOnDelivery":               "it forwards a message as sent: no header of its own, the ttl not counted down",
			"BrokerIdleTimeoutMirrored":            "it announces no idle-time-out",
			"BrokerNodeNotFound":                   "every address is a queue made on first use: nothing is refused",
			"BrokerOpenAnswer":                     "its container-id is broker and its open carries no properties",
			"BrokerQueueCountLimit":                "its queues have no limits: qpid.max_count is ignored and every message accepted",
			"BrokerQueueSizeLimit":                 "its queues have no limits: qpid.max_size is ignored and every message accepted",
			"BrokerRedeliveryHeader":               "it sets no first-acquirer and does not redeliver a released message",
			"BrokerRefusesNullTerminus":            "it never refuses an attach without a terminus",
			"BrokerSASLMechanisms":                 "it offers ANONYMOUS only",
			"BrokerSenderCreditToppedUp":           "its sender credit is not qpidd's 500",
			"BrokerSettlesOnDetach":                "it does not settle a detaching consumer's unsettled deliveries before answering",
			"BrokerSubscriptionNameInUse":          "it has no named subscription queues",
			"BrokerSubscriptionOutlivesConnection": "it has no subscriptions: every address is a queue",
			"BrokerTopicCopiesSettled":             "it has no topics: a subscriber's copy is an unsettled queue delivery without a header",
			"BrokerTopicSourceFilter":              "it has no topics: no default filter, and it echoes the sender's capabilities",
		}
		// Its differences show as waits that never end; it answers in milliseconds.
		h.Timeout = 5 * time.Second
		return h
	})
}
