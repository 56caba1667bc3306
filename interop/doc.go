// Package interop holds the Go ↔ Python interoperability tests of amqp1kit's
// oslo.messaging driver: the Go driver (package driver) and the real Python driver
// (Debian's python3-oslo.messaging 14.0.3, run by internal/testenv/pyoslo) talk to each other
// through an intermediary, in every role, and must agree on the wire.
//
// The package has no API: everything is in its tests. The matrix is one test,
// TestInterop, whose subtests are named backend/scenario/case, for example
// TestInterop/router/GoClientPythonServer/call:
//
//   - backends (run one after the other; each is a column): "router" (fakerouter, a
//     qdrouterd-like router, in process), "broker" (fakebroker, a qpidd-like broker, in
//     process), "proton" (Qpid Proton's C++ example broker, a real broker with no
//     multicast and no redelivery of released messages), "qdrouterd" and "qpidd" (the
//     real qdrouterd 1.19.0 and qpidd 1.39.0 that the fakes imitate, each in a process
//     of its own, configured as the deployment guide configures them: see
//     internal/testenv/realpeer); a backend is a value (its URL, what it can do, how to inspect
//     it), so another intermediary is one more entry;
//   - scenarios (rows): GoClientPythonServer and PythonClientGoServer (call, also
//     concurrent, remote exception, cast, fanout, a named server, call-monitor
//     heartbeats), GoNotifierPythonListener and PythonNotifierGoListener (all
//     priorities, the v1 "messaging" format, pools, batches, requeue),
//     DynamicAddressing (both drivers pick the routable syntax on a router and the legacy
//     one on a broker; an exchange and names with dots, slashes and non-ASCII land in
//     the same addresses), CallTimeoutNoServer (both drivers raise their timeout error
//     in time) and Payloads (non-ASCII text, nested structures, payloads of more than
//     1 MiB in several frames, both ways).
//
// Where a backend cannot do what a case needs, the case's name says so and the test
// checks what the backend does instead (for example
// TestInterop/proton/GoClientPythonServer/fanout_reaches_one_server_no_multicast).
//
// The tests see of a real program what its users see. qdrouterd is asked with its
// qdstat tool: -a before sending (until an address has its consumers, a sender gets no
// credit), -l and -c for the links each driver attached. qpidd offers no tool here:
// what is sent to a queue is stored until a consumer comes (qpidd creates the queue
// on the first attach), a first call to each server is retried until it is answered,
// and fanout probes are sent until every server has one (a topic copies a message
// only to the subscriptions that exist). Both log every frame (qdrouterd's PROTOCOL
// module and qpidd's Protocol category at trace level), and their logs are their
// columns' traces.
//
// TestRabbitMQ shows that no oslo driver can work over RabbitMQ 3.10's AMQP 1.0 plugin,
// which refuses dynamic reply sources: the Go driver fails fast with a *driver.PeerError
// that names the peer's product and reason, where the Python driver retries silently
// until its call times out. It starts one private RabbitMQ node per test run
// (scripts/rabbitmq.sh).
//
// AMQP1KIT_INTEROP_TRACE=1 logs the frame traces of passing cases too (failing cases
// always log theirs).
//
// Each backend runs one long-lived Python process (oslo_peer.py session) that plays the
// Python RPC servers, clients, notifier and listeners, each role on a connection of its
// own, so that the package does not spend its time starting Python. When a case fails,
// its message names the side and the field that disagree, and its log shows what each
// side saw: the fake intermediary's frame trace for the case, each connection labelled
// python or go (for the Proton broker, its own log of attaches), the Python peer's
// stderr and the Go driver's log.
//
// Peers: under CI=true a missing peer (Python's oslo.messaging, the Proton broker,
// RabbitMQ, qdrouterd and qpidd built by scripts/real-peers.sh) fails the tests that
// need it; elsewhere they skip. scripts/test.sh installs them all.
//
// TestInterop logs, when it ends, one line per column of how long it took (measured,
// never asserted).
package interop
