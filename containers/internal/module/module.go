// Package module holds what the containers modules share: an intermediary configured by
// one file written into the container before it starts, reached on AMQP port 5672.
package module

import (
	"context"
	"fmt"
	"strings"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// AMQPPort is the container port of the AMQP listener of every module.
const AMQPPort = "5672/tcp"

// Run starts image with config written at configPath and waits until the AMQP port
// accepts connections. The module's settings come first, so opts can override them.
// On an error the container, if one was created, is returned too. name prefixes
// errors ("run qdrouterd: ...").
func Run(ctx context.Context, name, image, configPath, config string, opts []testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
	defaults := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(AMQPPort),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(config),
			ContainerFilePath: configPath,
			FileMode:          0o644,
		}),
		testcontainers.WithWaitStrategy(wait.ForListeningPort(AMQPPort)),
	}
	ctr, err := testcontainers.Run(ctx, image, append(defaults, opts...)...)
	if err != nil {
		if ctr == nil {
			return nil, fmt.Errorf("run %s: %w", name, err)
		}
		return ctr, fmt.Errorf("run %s: %w", name, err)
	}
	return ctr, nil
}

// ReplaceFile replaces the content of the file Run writes at path.
func ReplaceFile(name, path, content string) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		for i, f := range req.Files {
			if f.ContainerFilePath == path {
				req.Files[i].Reader = strings.NewReader(content)
				return nil
			}
		}
		return fmt.Errorf("%s: no file %s to replace", name, path)
	}
}

// AMQPURL returns amqp://host:mapped-port of c's AMQP port.
func AMQPURL(ctx context.Context, name string, c testcontainers.Container) (string, error) {
	ep, err := c.PortEndpoint(ctx, AMQPPort, "amqp")
	if err != nil {
		return "", fmt.Errorf("%s: AMQP endpoint: %w", name, err)
	}
	return ep, nil
}
