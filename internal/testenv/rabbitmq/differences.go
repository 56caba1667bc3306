package rabbitmq

// ConformanceDifferences are the conformance cases (package conformance) where
// RabbitMQ 3.10 is known to behave otherwise than the suite requires, natively and in
// its container alike: a Harness's Differences for it.
var ConformanceDifferences = map[string]string{
	"BrokerQueueSizeLimit": "it ignores the qpid.max_size node property (its queue limits are max-length " +
		"policies and queue arguments, which an AMQP 1.0 attach cannot set): every message is accepted",
	"BrokerQueueCountLimit": "it ignores the qpid.max_count node property (its queue limits are max-length " +
		"policies and queue arguments, which an AMQP 1.0 attach cannot set): every message is accepted",
	"OpenAdvertisesKind": "it advertises product RabbitMQ, so the oslo driver's dynamic addressing " +
		"picks routable addresses, which RabbitMQ 3.10 rejects (unknown_destination)",
	"DynamicReplyAddress": "RabbitMQ 3.10 refuses dynamic sources (amqp:not-implemented), " +
		"so no oslo reply link can attach: no oslo driver works over it",
	"AnonymousRelay": "RabbitMQ 3.10 refuses a sender with a null target " +
		"(amqp:invalid-field, address_not_utf8_string)",
	"ModifiedOutcome": "RabbitMQ 3.10 does not know the modified outcome: the consumer's " +
		"disposition is answered with amqp:invalid-field (Unrecognised state)",
	"SettleModesAnswered": "RabbitMQ 3.10 refuses rcv-settle-mode second: it ends the session " +
		"with amqp:not-implemented instead of answering first",
	"AttachAnswerFields": "it is not Qpid Proton: its attach answers leave out initial-delivery-count " +
		"where it receives and the termini's expiry-policy",
	"BeginAnswered": "its session windows are 65535, not Proton's 2147483647",
	"DrainWithCreditEchoed": "it answers a drain without spending the credit: link-credit stays 5 " +
		"and delivery-count is not advanced",
	"DrainWithNoCreditNotAnswered": "it answers every drain, even one with no credit",
	"EchoFlowNotAnswered":          "it answers a flow that asks for an echo",
	"IdleConnectionKeptAlive": "RabbitMQ 3.10 lets a client whose idle time-out is 500 ms (or 1 s) " +
		"time out; from 2 s on it sends empty frames in time",
	// The broker cases hold qpidd 1.39.0's own behaviour; RabbitMQ is another broker.
	"BrokerAnonymousRelayAcceptsAll": "it refuses a sender with a null target (amqp:invalid-field, address_not_utf8_string)",
	"BrokerBrowsesWithCopy": "it does not browse: a receiver asking for distribution-mode copy takes the messages " +
		"as any consumer (they are gone for the next), and one asking for none is answered no distribution-mode",
	"BrokerDiscardsAbortedDelivery": "it ends the session on an aborted transfer " +
		"(amqp:internal-error, Unexpected frame ... {aborted,true})",
	"BrokerAnswersOwnTerminus": "it echoes the client's source (durable, expiry-policy, timeout, capabilities) " +
		"and answers a receiver's target with null; it then refuses the queue asked again with another durable " +
		"(amqp:precondition-failed)",
	"BrokerDynamicNodeKeptWhileUsed":    "it refuses dynamic sources (amqp:not-implemented)",
	"BrokerDynamicNodes":                "it refuses dynamic sources (amqp:not-implemented)",
	"BrokerHeaderOnDelivery":            "it adds its own header and properties (message-id and more) and forwards the ttl as sent",
	"BrokerIdleTimeoutMirrored":         "it announces its own idle-time-out, 60000, whatever the client announced",
	"BrokerNodeNotFound":                "it declares an unknown /queue/ address on attach instead of refusing it",
	"BrokerOpenAnswer":                  "its container-id is its node name and its max-frame-size 65536",
	"BrokerQueueGoesWhenUnusedAndEmpty": "it refuses a sender with a null target, which the case sends through",
	"BrokerRedeliveryHeader":            "it does not count a release as a delivery attempt and ends the session on the modified outcome",
	"BrokerRefusesNullTerminus":         "it drops the connection on an attach without a terminus",
	"BrokerSASLMechanisms":              "it offers ANONYMOUS, PLAIN and AMQPLAIN and refuses an unknown user",
	"BrokerSenderCreditToppedUp":        "its sender credit is not qpidd's 500, and its flows leave out delivery-count",
	"BrokerSettlesOnDetach":             "it does not settle a detaching consumer's unsettled deliveries before answering",
	"BrokerSubscriptionNameInUse":       "it has no named subscription queues (a second subscriber of the name is not refused)",
	"BrokerSubscriptionOutlivesConnection": "it has no subscription queue kept for a durable subscriber " +
		"after its connection goes",
	"BrokerTopicCopiesSettled": "its topic copies carry no priority",
	"BrokerTopicSourceFilter": "a topic subscriber's source carries no default filter and a topic sender's " +
		"target has capabilities topic and queue",
}
