// Package rabbitmq is a testcontainers-go module for RabbitMQ 3.10 with the AMQP 1.0
// plugin (rabbitmq_amqp1_0): a real, independent AMQP 1.0 broker. Its addresses are
// /queue/NAME (or a bare NAME, a queue), /exchange/NAME/KEY, /topic/KEY and
// /amq/queue/NAME; it advertises the connection property product "RabbitMQ".
//
// Run writes two files into the container before it starts, where the official rabbitmq
// image reads them:
//
//   - /etc/rabbitmq/enabled_plugins: [rabbitmq_amqp1_0]. (the plugin is off by default)
//   - /etc/rabbitmq/rabbitmq.conf: [DefaultConfig] (or [WithConfig]'s), listening on
//     0.0.0.0:5672, the default user guest allowed from any host.
//
// so the image is the caller's choice: [DefaultImage] with a registry, or [LocalImage],
// which scripts/rabbitmq-image.sh builds locally from Debian bookworm's rabbitmq-server
// (no registry needed) and which reads the same paths.
//
// Run returns once the AMQP port listens inside the container and the broker completes a
// real AMQP 1.0 open and session begin on the mapped port: Docker's port proxy accepts
// TCP before anything listens, and only the rabbitmq_amqp1_0 plugin answers AMQP 1.0, so
// a port that accepts connections is not enough. A start takes ~10 s on 2 cores (RabbitMQ
// itself ~6 s of it), and a stop ~2-4 s: the node shuts down cleanly on SIGTERM.
//
//	ctr, err := rabbitmq.Run(ctx, rabbitmq.DefaultImage)
//	defer testcontainers.TerminateContainer(ctr)
//	url, err := ctr.AMQPURL(ctx)             // amqp://127.0.0.1:32772
//	conn, err := amqp.Dial(ctx, url, nil)    // github.com/Azure/go-amqp
//
// Authentication: go-amqp's amqp.Dial(ctx, url, nil) with the URL as AMQPURL returns it
// (no user information) negotiates no SASL layer at all, and the plugin maps such a
// connection to its default user (amqp1_0.default_user, guest), from any host. With
// credentials in the URL, amqp://guest:guest@host:port, go-amqp uses SASL PLAIN, which
// RabbitMQ allows from a non-loopback address (as a container's mapped port is) only
// because the configuration says loopback_users = none. SASL ANONYMOUS
// (amqp.SASLTypeAnonymous) is accepted too, as the default user.
//
// RabbitMQ 3.10 answers a detach with closed=true (what go-amqp's Sender.Close and
// Receiver.Close send) with a detach with closed=false, which go-amqp v1.7.0 does not take
// as the answer: Close blocks until its context ends, and later attaches on that session
// get no answer either (the same with a native node). End the links by closing the
// connection.
package rabbitmq

import (
	"context"
	"strings"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/module"
)

// DefaultImage is the official RabbitMQ 3.10 image, for users with access to a registry.
const DefaultImage = "rabbitmq:3.10"

// LocalImage is the image scripts/rabbitmq-image.sh builds from Debian packages, with
// no registry: RabbitMQ 3.10 from Debian bookworm, node rabbit@localhost, logs on stdout.
const LocalImage = "amqp1kit/rabbitmq-amqp1:3.10"

// ConfigPath is where RabbitMQ reads its configuration (in the new-style, sysctl-like
// format), in the official image and in LocalImage.
const ConfigPath = "/etc/rabbitmq/rabbitmq.conf"

// EnabledPluginsPath is where RabbitMQ reads the list of plugins to start, in the
// official image and in LocalImage.
const EnabledPluginsPath = "/etc/rabbitmq/enabled_plugins"

// EnabledPlugins is the content Run writes at EnabledPluginsPath: the AMQP 1.0 plugin.
const EnabledPlugins = "[rabbitmq_amqp1_0].\n"

// AMQPPort is the container port of the AMQP listener (AMQP 0-9-1 and 1.0 share it).
const AMQPPort = module.AMQPPort

// DefaultConfig is the rabbitmq.conf Run writes: AMQP on port 5672 of every IPv4
// interface, and the default user guest (password guest) allowed from any host, as a
// client of a container's mapped port is not on the container's loopback.
const DefaultConfig = `listeners.tcp.default = 0.0.0.0:5672
loopback_users = none
`

// StartupTimeout bounds how long Run waits for the broker to answer AMQP 1.0.
const StartupTimeout = module.StartupTimeout

// Container is a running RabbitMQ.
type Container struct {
	testcontainers.Container
}

// WithConfig replaces DefaultConfig with conf, a whole rabbitmq.conf. It must keep the
// AMQP listener on port 5672 of an interface the mapped port reaches (the default,
// listeners.tcp.default = 5672, does); without loopback_users = none, SASL PLAIN as
// guest is refused, while a connection without SASL still gets in as the default user.
func WithConfig(conf string) testcontainers.CustomizeRequestOption {
	return module.ReplaceFile("rabbitmq: WithConfig", ConfigPath, conf)
}

// Run starts image with the AMQP 1.0 plugin enabled and DefaultConfig (or WithConfig's),
// and waits until the AMQP port listens and the broker completes an AMQP 1.0 open and
// session begin, for at most StartupTimeout. The module's settings come first, so opts
// can override them. On an error the container, if one was created, is returned too,
// for the caller to terminate.
func Run(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	own := []testcontainers.ContainerCustomizer{
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(EnabledPlugins),
			ContainerFilePath: EnabledPluginsPath,
			FileMode:          0o644,
		}),
	}
	ctr, err := module.Run(ctx, "rabbitmq", image, ConfigPath, DefaultConfig, append(own, opts...))
	if ctr == nil {
		return nil, err
	}
	return &Container{Container: ctr}, err
}

// AMQPURL returns the URL clients connect to: amqp://host:mapped-port, without user
// information (see the package documentation on authentication).
func (c *Container) AMQPURL(ctx context.Context) (string, error) {
	return module.AMQPURL(ctx, "rabbitmq", c.Container)
}
