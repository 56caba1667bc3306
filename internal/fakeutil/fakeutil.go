// Package fakeutil holds what both fakes share besides the engine: their listener and
// its lifecycle (Server: Start, Close and one Restart), the Tester a test helper
// needs, starting a fake after building it and binding it to a test (Run, RunT), and
// the inspection of connections and links (Conns, Links).
//
// What the fakes do not share on purpose: their Options. The listener and security
// fields (Addr, TLS, RequireTLS, Users, DenyAnonymous, AllowExternal, MaxFrameSize,
// IdleTimeout, MaxMessageSize, ConnOutputLimit, Logger, Trace) have the same names in
// fakerouter.Options and fakebroker.Options but are declared in each, because their
// defaults and meanings follow each real program (16384 against 4294967295 for the
// frame size; a fixed idle time-out against qpidd's echo of the client's; no PLAIN
// against any PLAIN without Users), and because a flat composite literal
// (&fakerouter.Options{Users: ...}) is what users write: a shared struct embedded in
// both would make every such literal name it. Each fake maps them into engine.Options
// in one place (fakerouter.New, fakebroker.New), next to its policy.
package fakeutil

// Tester is the part of *testing.T that the fakes' RunT use, so it works with
// *testing.B and other frameworks too.
type Tester interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	Logf(format string, args ...any)
}

// Startable is a fake built but not yet listening.
type Startable interface {
	Start() error
	Close() error
}

// Run builds a fake with build and starts it.
func Run[T Startable](build func() (T, error)) (T, error) {
	f, err := build()
	if err != nil {
		var zero T
		return zero, err
	}
	if err := f.Start(); err != nil {
		var zero T
		return zero, err
	}
	return f, nil
}

// RunT runs a fake for a test and closes it when the test ends; a start failure
// fails the test with the package's name in front of the error.
func RunT[T interface{ Close() error }](t Tester, pkg string, run func() (T, error)) T {
	t.Helper()
	f, err := run()
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
		var zero T
		return zero
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}
