// Package qdrouterd is a testcontainers-go module for the Apache Qpid Dispatch Router
// (qdrouterd), configured as the oslo.messaging AMQP 1.0 deployment guide configures
// it for RPC: a listener on 5672 without authentication, and the address table of both
// addressing syntaxes (legacy unicast/exclusive closest and broadcast multicast;
// routable openstack.org/om/{rpc,notify}/{multicast,unicast,anycast}).
//
// Run writes the configuration to /etc/qpid-dispatch/qdrouterd.conf in the container
// (where qdrouterd reads it) before the container starts, so the image is the caller's
// choice, and every one of these reads that file:
//
//   - [LocalImage], the real qdrouterd 1.19.0 (the last release), which
//     scripts/real-peers-image.sh builds from Apache's source release on Debian
//     bookworm, with no registry: what the project's own tests run;
//   - [DefaultImage], a public image of the real qdrouterd, for users with a registry;
//   - [FakeImage], amqp1kit's own fake router (package fakerouter) FROM scratch, which
//     the project's internal/fakeimage builds: the same configuration, a start in
//     milliseconds, and the fake's documented differences.
//
// Run returns once the router completes a real AMQP 1.0 open and session begin on the
// mapped port (Docker's port proxy accepts TCP before anything listens). The real
// router is ready ~1 s after the container is created (2 cores).
//
//	ctr, err := qdrouterd.Run(ctx, qdrouterd.LocalImage)
//	defer testcontainers.TerminateContainer(ctr)
//	url, err := ctr.AMQPURL(ctx) // amqp://127.0.0.1:32771
//
// In a container of LocalImage, qdrouterd's management tools run beside the router:
// docker exec CONTAINER qdstat -b 127.0.0.1:5672 -g.
package qdrouterd

import (
	"context"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/module"
	"github.com/amqp1kit/amqp1kit/internal/guideconf"
)

// LocalImage is the real qdrouterd 1.19.0 that scripts/real-peers-image.sh builds
// locally (no registry): qdrouterd -c /etc/qpid-dispatch/qdrouterd.conf as user
// qdrouterd, logs on stderr, qdstat and qdmanage on PATH.
const LocalImage = "amqp1kit/qdrouterd:1.19.0"

// DefaultImage is a public image of the real qdrouterd, for users with access to a
// registry: Red Hat's interconnectedcloud build (github.com/interconnectedcloud/qdr-image)
// of qpid-dispatch 1.17.1, the newest of its tags in public use that we know of (Eclipse
// Hono's Helm chart deploys it), closer to 1.19.0 than the 1.8.0 often quoted (multicast
// senders wait for credit since 1.10). Built with prefix /usr, it reads
// /etc/qpid-dispatch/qdrouterd.conf when $QDROUTERD_CONF is unset, as Run leaves it.
const DefaultImage = "quay.io/interconnectedcloud/qdrouterd:1.17.1"

// FakeImage is amqp1kit's fake router in an image FROM scratch, which the project's
// internal/fakeimage builds with the go command: it serves package fakerouter from the
// same qdrouterd.conf on 0.0.0.0:5672.
const FakeImage = "amqp1kit/fake-qdrouterd:dev"

// ConfigPath is where qdrouterd reads its configuration.
const ConfigPath = "/etc/qpid-dispatch/qdrouterd.conf"

// AMQPPort is the container port of the AMQP listener.
const AMQPPort = module.AMQPPort

// DefaultConfig is the deployment guide's qdrouterd.conf: router id
// amqp1kit-qdrouterd (standalone), one listener for clients on 0.0.0.0:5672
// (authenticatePeer no, saslMechanisms ANONYMOUS), and the address distributions of
// both oslo addressing syntaxes (unicast, exclusive: closest; broadcast: multicast;
// openstack.org/om/{rpc,notify}/{multicast,unicast,anycast}: multicast, closest,
// balanced).
const DefaultConfig = guideconf.Qdrouterd

// Container is a running qdrouterd.
type Container struct {
	testcontainers.Container
}

// WithConfig replaces DefaultConfig with conf, a whole qdrouterd.conf. Its client listener must stay on port 5672 of 0.0.0.0.
func WithConfig(conf string) testcontainers.CustomizeRequestOption {
	return module.ReplaceFile("qdrouterd: WithConfig", ConfigPath, conf)
}

// Run starts image with the deployment guide's configuration (or WithConfig's) and
// waits until the router completes an AMQP 1.0 open and session begin, for at most 2
// minutes. The module's settings come first, so opts can override them. On an error the
// container, if one was created, is returned too, for the caller to terminate.
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
