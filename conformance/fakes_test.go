package conformance_test

import (
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// The fakes pass every case: a fresh one per case.
func TestFakeRouter(t *testing.T) {
	t.Parallel()
	requireAllPass(t, conformance.Run(t, func(t *testing.T) conformance.Harness {
		return conformance.RouterAt("fakerouter", fakerouter.RunT(t, nil).URL())
	}))
}

func TestFakeBroker(t *testing.T) {
	t.Parallel()
	requireAllPass(t, conformance.Run(t, func(t *testing.T) conformance.Harness {
		return conformance.BrokerAt("fakebroker", fakebroker.RunT(t, nil).URL())
	}))
}

// requireAllPass fails t unless every case ran and either passed, showed its
// documented difference, or did not apply (a case of the other kind, or one needing
// a harness setting left unset): a skip because the intermediary could not be had
// fails too.
func requireAllPass(t *testing.T, results []conformance.Result) {
	t.Helper()
	if len(results) != len(conformance.CaseNames()) {
		t.Fatalf("%d results for %d cases", len(results), len(conformance.CaseNames()))
	}
	for _, r := range conformance.Unexpected(results) {
		t.Errorf("%s: %s %s", r.Case, r.Outcome, r.Detail)
	}
}

// The cases can fail: a broker presented as a router, and a router presented as a
// broker, fail exactly the cases where the two kinds differ (declared as
// differences, which the suite requires to fail).
func TestCasesTellARouterFromABroker(t *testing.T) {
	t.Parallel()
	t.Run("broker-as-router", func(t *testing.T) {
		requireAllPass(t, conformance.Run(t, func(t *testing.T) conformance.Harness {
			h := conformance.RouterAt("fakebroker presented as a router", fakebroker.RunT(t, nil).URL())
			h.Timeout = 3 * time.Second // some differences show as a wait that never ends
			h.Differences = map[string]string{
				"OpenAdvertisesKind":                             "it says qpid-cpp",
				"RouterSettlesEndToEnd":                          "it settles once stored",
				"RouterGivesNoCreditWithoutConsumer":             "it stores what nobody consumes",
				"RejectedOutcome":                                "the sender saw accepted at the store",
				"ReleasedOutcome":                                "the sender saw accepted at the store",
				"ConsumerLoss":                                   "the sender saw accepted at the store",
				"ModifiedOutcome":                                "the sender saw accepted at the store",
				"CreditWithoutConsumer":                          "it gives credit for its store",
				"MulticastSenderWaitsForConsumer":                "it gives credit for its topic",
				"RouterCreditBackOnSettlement":                   "its credit is its own (500), not a link capacity of 250",
				"RouterCreditBackOnAbort":                        "its credit is its own (500), not a link capacity of 250",
				"RouterAnswerDropsDefaultOutcome":                "it answers a source of its own, without the outcomes asked for",
				"RouterCreditWithIdleConsumer":                   "its credit is its own (500)",
				"RouterAnycastGivenWithoutCredit":                "it has no node for an RPC address, and gives a queue's messages only to consumers with credit",
				"RouterPresettledDroppedAtLinkCapacity":          "its credit is its own (500), and it stores pre-settled messages",
				"RouterMulticastPresettledDroppedAtLinkCapacity": "it has no node for an RPC fanout address",
				"RouterUndeliveredReleasedOnDetach":              "its credit is its own (500), and it keeps messages for the next consumer",
				"RouterDynamicAddresses":                         "it names dynamic nodes as qpidd does",
				"RouterForwardsHeaderUnchanged":                  "it writes a header of its own, as qpidd",
				"RouterMulticastCopiesUnsettled":                 "it settles once stored",
				"RouterNoPathAsksSenderToDrain":                  "it stores what nobody consumes",
				"RouterOpenFrame":                                "it opens as qpidd does",
				"RouterRefusesReceiverWithoutSource":             "it refuses as qpidd does",
				"RouterRelayWithoutPathReleased":                 "it relays as qpidd does",
				"RouterRelayWithoutToRejected":                   "it relays as qpidd does",
				"SettleModesAnswered":                            "it keeps the sender settle mode a consumer asks for",
			}
			return h
		}))
	})
	t.Run("router-as-broker", func(t *testing.T) {
		requireAllPass(t, conformance.Run(t, func(t *testing.T) conformance.Harness {
			h := conformance.BrokerAt("fakerouter presented as a broker", fakerouter.RunT(t, nil).URL())
			h.Timeout = 3 * time.Second
			h.Differences = map[string]string{
				"OpenAdvertisesKind":          "it says qpid-dispatch-router",
				"BrokerStoresAndForwards":     "it stores nothing",
				"BrokerQueueSizeLimit":        "it stores nothing: a sender without a consumer gets no credit",
				"BrokerQueueCountLimit":       "it stores nothing: a sender without a consumer gets no credit",
				"RejectedOutcome":             "the sender sees the consumer's rejected",
				"ReleasedOutcome":             "the sender sees the consumer's released",
				"ConsumerLoss":                "the sender sees modified",
				"ModifiedOutcome":             "the sender sees the consumer's modified",
				"BrokerExpiresTTL":            "it stores nothing, so a sender waits for a consumer",
				"CreditWithoutConsumer":       "it gives no credit without a consumer",
				"SettleModesAnswered":         "it answers every link mixed",
				"TopicDropsWithoutSubscriber": "it gives a multicast sender no credit without a consumer",
				// qpidd's own ways, which qdrouterd does not share.
				"BrokerAnonymousRelayAcceptsAll":       "it releases what finds no consumer",
				"BrokerAnswersOwnTerminus":             "it echoes the client's termini",
				"BrokerBrowsesWithCopy":                "it stores nothing, so a sender gets no credit without a consumer",
				"BrokerDiscardsAbortedDelivery":        "it settles end to end: the sender's outcome waits for the consumer's",
				"BrokerDynamicNodeKeptWhileUsed":       "its dynamic addresses are not queues",
				"BrokerDynamicNodes":                   "it names dynamic addresses as qdrouterd does",
				"BrokerHeaderOnDelivery":               "it forwards the header as sent",
				"BrokerIdleTimeoutMirrored":            "it announces an idle time-out of its own",
				"BrokerNodeNotFound":                   "every address exists for it",
				"BrokerOpenAnswer":                     "it opens as qdrouterd does",
				"BrokerQueueGoesWhenUnusedAndEmpty":    "it stores nothing",
				"BrokerRedeliveryHeader":               "it redelivers nothing",
				"BrokerRefusesNullTerminus":            "it refuses as qdrouterd does",
				"BrokerSASLMechanisms":                 "it offers ANONYMOUS only",
				"BrokerSenderCreditToppedUp":           "its credit is a link capacity of 250",
				"BrokerSettlesOnDetach":                "it stores nothing",
				"BrokerSubscriptionNameInUse":          "it has no subscription queues",
				"BrokerSubscriptionOutlivesConnection": "it stores nothing",
				"BrokerTopicCopiesSettled":             "it gives a multicast sender no credit without a consumer",
				"BrokerTopicSourceFilter":              "it answers no filter",
			}
			return h
		}))
	})
}
