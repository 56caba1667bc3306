// Package qpidd is a testcontainers-go module for the Apache Qpid C++ broker (qpidd),
// configured as the oslo.messaging AMQP 1.0 deployment guide configures it for
// notifications: AMQP on 5672 without authentication, queues made on demand for the
// exclusive and unicast prefixes, topics for broadcast.
//
// Run writes the configuration to /etc/qpid/qpidd.conf in the container (where qpidd
// reads it) before the container starts, so the image is the caller's choice:
// DefaultImage with a registry, or any image that reads that file — such as amqp1kit's
// own fake broker image, which the project's tests build locally.
//
//	ctr, err := qpidd.Run(ctx, qpidd.DefaultImage)
//	defer testcontainers.TerminateContainer(ctr)
//	url, err := ctr.AMQPURL(ctx) // amqp://127.0.0.1:32772
package qpidd

import (
	"context"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/module"
)

// DefaultImage is a public qpidd image, for users with access to a registry.
const DefaultImage = "scholzj/qpid-cpp:1.38.0"

// ConfigPath is where qpidd reads its configuration.
const ConfigPath = "/etc/qpid/qpidd.conf"

// AMQPPort is the container port of the AMQP listener.
const AMQPPort = module.AMQPPort

// DefaultConfig is the deployment guide's qpidd.conf, with the port and
// authentication a test container needs.
const DefaultConfig = `port=5672
auth=no
queue-patterns=exclusive
queue-patterns=unicast
topic-patterns=broadcast
`

// Container is a running qpidd.
type Container struct {
	testcontainers.Container
}

// WithConfig replaces DefaultConfig with conf, a whole qpidd.conf. It must keep port=5672.
func WithConfig(conf string) testcontainers.CustomizeRequestOption {
	return module.ReplaceFile("qpidd: WithConfig", ConfigPath, conf)
}

// Run starts image with the deployment guide's configuration (or WithConfig's) and
// waits until the AMQP port accepts connections. The module's settings come first, so
// opts can override them. On an error the container, if one was created, is returned
// too, for the caller to terminate.
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
