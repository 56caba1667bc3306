// Package testenv holds, in its subpackages, what only tests and measurements use:
// the peers they start and the files they find. Nothing in it ships with the driver
// or the fakes.
//
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/peers]: a missing peer skips a
//     test, saying why, or fails it under CI=true;
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/modroot]: the repository's root,
//     for its scripts and test data;
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/realpeer]: the real qdrouterd
//     1.19.0 and qpidd 1.39.0, started natively with the deployment guide's
//     configuration;
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/protonbroker]: Qpid Proton's C++
//     example broker;
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq]: private RabbitMQ 3.10
//     nodes;
//   - [github.com/amqp1kit/amqp1kit/internal/testenv/pyoslo]: the real Python
//     oslo.messaging driver as a test peer.
//
// The frame-level client the tests share, internal/frameclient, stays beside the
// engine: the conformance suite, which ships, uses it too.
package testenv
