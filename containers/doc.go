// Package containers is the root of amqp1kit's testcontainers-go modules, a Go
// module of its own (github.com/amqp1kit/amqp1kit/containers) so that the driver and
// the fakes do not bring testcontainers-go and Docker's client into the module graph
// of those who import them. Each intermediary has its package:
//
//   - [github.com/amqp1kit/amqp1kit/containers/qdrouterd], the Qpid Dispatch Router;
//   - [github.com/amqp1kit/amqp1kit/containers/qpidd], the Qpid C++ broker;
//   - [github.com/amqp1kit/amqp1kit/containers/rabbitmq], RabbitMQ with its AMQP 1.0
//     plugin.
//
// Each Run(ctx, image, opts...) starts the real program by default (images built
// locally by the repository's scripts, or the public images named by DefaultImage)
// and amqp1kit's fakes through their FakeImage; this package's test runs the
// conformance suite against all of them.
package containers
