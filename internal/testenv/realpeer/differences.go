package realpeer

// QpiddConformanceDifferences are the conformance cases (package conformance) where
// qpidd 1.39.0 is plainly broken and fakebroker knowingly differs (its package doc
// lists them), natively and in its container alike: a Harness's Differences for the
// real qpidd.
var QpiddConformanceDifferences = map[string]string{
	"BrokerDiscardsAbortedDelivery": "qpidd 1.39.0 decodes the bytes of an aborted delivery as a message and closes " +
		"the connection with amqp:internal-error (a decode error), at times after rejecting the next delivery; " +
		"fakebroker discards the aborted delivery and carries on",
}
