// Package qpidd is a testcontainers-go module for the Apache Qpid C++ broker (qpidd),
// configured as the oslo.messaging AMQP 1.0 deployment guide configures it for
// notifications: AMQP on 5672 without authentication, queues made on demand for the
// exclusive and unicast prefixes, topics for broadcast.
//
// Run writes the configuration to /etc/qpid/qpidd.conf in the container (where qpidd
// reads it) before the container starts, so the image is the caller's choice, and every
// one of these reads that file:
//
//   - [LocalImage], the real qpidd 1.39.0 (the last release) with its AMQP 1.0 module,
//     which scripts/real-peers-image.sh builds from Apache's source release on Debian
//     bookworm, with no registry: what the project's own tests run;
//   - [DefaultImage], a public image of the real qpidd, for users with a registry;
//   - [FakeImage], amqp1kit's own fake broker (package fakebroker) FROM scratch, which
//     the project's internal/fakeimage builds: the same configuration, a start in
//     milliseconds, and the fake's documented differences.
//
// Run returns once the broker completes a real AMQP 1.0 open and session begin on the
// mapped port: Docker's port proxy accepts TCP before anything listens, and a qpidd
// without its AMQP 1.0 module listens but speaks AMQP 0-10 only.
//
//	ctr, err := qpidd.Run(ctx, qpidd.LocalImage)
//	defer testcontainers.TerminateContainer(ctr)
//	url, err := ctr.AMQPURL(ctx) // amqp://127.0.0.1:32772
package qpidd

import (
	"context"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/module"
	"github.com/amqp1kit/amqp1kit/internal/guideconf"
)

// LocalImage is the real qpidd 1.39.0 that scripts/real-peers-image.sh builds locally
// (no registry): qpidd --config /etc/qpid/qpidd.conf as user qpidd, its AMQP 1.0 module
// loaded from the default module directory, logs on stderr.
const LocalImage = "amqp1kit/qpidd:1.39.0"

// DefaultImage is a public qpidd image, for users with access to a registry.
const DefaultImage = "scholzj/qpid-cpp:1.38.0"

// FakeImage is amqp1kit's fake broker in an image FROM scratch, which the project's
// internal/fakeimage builds with the go command: it serves package fakebroker from the
// same qpidd.conf on 0.0.0.0:5672.
const FakeImage = "amqp1kit/fake-qpidd:dev"

// ConfigPath is where qpidd reads its configuration.
const ConfigPath = "/etc/qpid/qpidd.conf"

// AMQPPort is the container port of the AMQP listener.
const AMQPPort = module.AMQPPort

// DefaultConfig is the deployment guide's qpidd.conf (no authentication, the three
// patterns), with the port and interface a container needs:
//
//	port=5672
//	interface=0.0.0.0
//	auth=no
//	queue-patterns=exclusive
//	queue-patterns=unicast
//	topic-patterns=broadcast
const DefaultConfig = guideconf.Qpidd

// Container is a running qpidd.
type Container struct {
	testcontainers.Container
}

// WithConfig replaces DefaultConfig with conf, a whole qpidd.conf. It must keep port=5672
// on an interface the mapped port reaches (0.0.0.0, or none: every interface).
func WithConfig(conf string) testcontainers.CustomizeRequestOption {
	return module.ReplaceFile("qpidd: WithConfig", ConfigPath, conf)
}

// Run starts image with the deployment guide's configuration (or WithConfig's) and
// waits until the broker completes an AMQP 1.0 open and session begin, for at most 2
// minutes. The module's settings come first, so opts can override them. On an error the
// container, if one was created, is returned too, for the caller to terminate.
func Run(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	ctr, err := module.Run(ctx, "qpidd", image, ConfigPath, DefaultConfig, opts)
	if ctr == nil {
		return nil, err
	}
	return &Container{Container: ctr}, err
}

// AMQPURL returns the URL clients connect to: amqp://host:mapped-port.
func (c *Container) AMQPURL(ctx context.Context) (string, error) {
	return module.AMQPURL(ctx, "qpidd", c.Container)
}
