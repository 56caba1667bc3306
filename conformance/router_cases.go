package conformance

// routerCases are the cases about what qdrouterd does as a router, beyond the common
// ones in cases.go; Run runs them all alike.
var routerCases = map[string]func(t T, h *Harness){}
