// Package qdrouterd is a testcontainers-go module for the Apache Qpid Dispatch Router
// (qdrouterd), configured as the oslo.messaging AMQP 1.0 deployment guide configures
// it for RPC: a listener on 5672 without authentication, and the address table of both
// addressing syntaxes (legacy unicast/exclusive closest and broadcast multicast;
// routable openstack.org/om/{rpc,notify}/{multicast,unicast,anycast}).
//
// Run writes the configuration to /etc/qpid-dispatch/qdrouterd.conf in the container
// (where qdrouterd reads it) before the container starts, so the image is the caller's
// choice: DefaultImage with a registry, or any image that reads that file — such as
// amqp1kit's own fake router image, which the project's tests build locally.
//
//	ctr, err := qdrouterd.Run(ctx, qdrouterd.DefaultImage)
//	defer testcontainers.TerminateContainer(ctr)
//	url, err := ctr.AMQPURL(ctx) // amqp://127.0.0.1:32771
package qdrouterd

import (
	"context"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/module"
)

// DefaultImage is a public qdrouterd image, for users with access to a registry.
const DefaultImage = "quay.io/interconnectedcloud/qdrouterd:1.8.0"

// ConfigPath is where qdrouterd reads its configuration.
const ConfigPath = "/etc/qpid-dispatch/qdrouterd.conf"

// AMQPPort is the container port of the AMQP listener.
const AMQPPort = module.AMQPPort

// DefaultConfig is the deployment guide's qdrouterd.conf: one listener for clients,
// and the addresses of both oslo addressing syntaxes.
const DefaultConfig = `router {
    mode: standalone
    id: amqp1kit-qdrouterd
}

listener {
    host: 0.0.0.0
    port: 5672
    role: normal
    authenticatePeer: no
    saslMechanisms: ANONYMOUS
}

address {
    prefix: unicast
    distribution: closest
}

address {
    prefix: exclusive
    distribution: closest
}

address {
    prefix: broadcast
    distribution: multicast
}

address {
    prefix: openstack.org/om/rpc/multicast
    distribution: multicast
}

address {
    prefix: openstack.org/om/rpc/unicast
    distribution: closest
}

address {
    prefix: openstack.org/om/rpc/anycast
    distribution: balanced
}

address {
    prefix: openstack.org/om/notify/multicast
    distribution: multicast
}

address {
    prefix: openstack.org/om/notify/unicast
    distribution: closest
}

address {
    prefix: openstack.org/om/notify/anycast
    distribution: balanced
}
`

// Container is a running qdrouterd.
type Container struct {
	testcontainers.Container
}

// WithConfig replaces DefaultConfig with conf, a whole qdrouterd.conf. Its client listener must stay on port 5672 of 0.0.0.0.
func WithConfig(conf string) testcontainers.CustomizeRequestOption {
	return module.ReplaceFile("qdrouterd: WithConfig", ConfigPath, conf)
}

// Run starts image with the deployment guide's configuration (or WithConfig's) and
// waits until the AMQP port accepts connections. The module's settings come first, so
// opts can override them. On an error the container, if one was created, is returned
// too, for the caller to terminate.
func Run(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	ctr, err := module.Run(ctx, "qdrouterd", image, ConfigPath, DefaultConfig, opts)
	if ctr == nil {
		return nil, err
	}
	return &Container{Container: ctr}, err
}

// AMQPURL returns the URL clients connect to: amqp://host:mapped-port.
func (c *Container) AMQPURL(ctx context.Context) (string, error) {
	return module.AMQPURL(ctx, "qdrouterd", c.Container)
}
