package conformance

// brokerCases are the cases about what qpidd does as a broker, beyond the common ones
// in cases.go; Run runs them all alike.
var brokerCases = map[string]func(t T, h *Harness){}
