// Package module holds what the containers modules share: an intermediary configured by
// files written into the container before it starts, reached on AMQP port 5672, and
// ready once it completes a real AMQP 1.0 open.
package module

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// AMQPPort is the container port of the AMQP listener of every module.
const AMQPPort = "5672/tcp"

// StartupTimeout bounds how long Run waits for the intermediary to answer AMQP 1.0.
const StartupTimeout = 2 * time.Minute

// Run starts image with config written at configPath and waits, for at most
// StartupTimeout, until the AMQP port listens inside the container and an AMQP 1.0
// client completes an open and a session begin on the mapped port: Docker's port proxy
// accepts TCP before anything listens, and a program may listen before it answers AMQP
// 1.0. The module's settings come first, so opts can override them. On an error the
// container, if one was created, is returned too. name prefixes errors ("run qdrouterd: ...").
func Run(ctx context.Context, name, image, configPath, config string, opts []testcontainers.ContainerCustomizer) (testcontainers.Container, error) {
	defaults := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(AMQPPort),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(config),
			ContainerFilePath: configPath,
			FileMode:          0o644,
		}),
		testcontainers.WithWaitStrategyAndDeadline(StartupTimeout,
			wait.ForListeningPort(AMQPPort),
			AMQPReady{Port: AMQPPort, Poll: 100 * time.Millisecond},
		),
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

// AMQPReady is a wait strategy: it succeeds once an AMQP 1.0 client (go-amqp, no SASL)
// opens a connection to the mapped Port and begins a session, polling every Poll.
// Until the intermediary is up, the connection is refused, closed, or answered with
// another protocol's header (RabbitMQ's AMQP 0-9-1 before its AMQP 1.0 plugin runs).
type AMQPReady struct {
	Port string
	Poll time.Duration
}

// WaitUntilReady polls until the intermediary answers AMQP 1.0, the container stops, or
// ctx ends.
func (s AMQPReady) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	host, err := target.Host(ctx)
	if err != nil {
		return fmt.Errorf("AMQP 1.0 open: host: %w", err)
	}
	var last error
	for {
		last = s.try(ctx, target, host)
		if last == nil {
			return nil
		}
		state, err := target.State(ctx)
		if err == nil && !state.Running {
			return fmt.Errorf("AMQP 1.0 open: the container is %s (exit code %d); last attempt: %w", state.Status, state.ExitCode, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("AMQP 1.0 open: %w; last attempt: %w", ctx.Err(), last)
		case <-time.After(s.Poll):
		}
	}
}

func (s AMQPReady) try(ctx context.Context, target wait.StrategyTarget, host string) error {
	port, err := target.MappedPort(ctx, s.Port)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := amqp.Dial(actx, "amqp://"+net.JoinHostPort(host, port.Port()), nil)
	if err != nil {
		return err
	}
	sess, err := conn.NewSession(actx, nil)
	if err == nil {
		err = sess.Close(actx)
	}
	return errors.Join(err, conn.Close())
}

// String describes the strategy in testcontainers-go's messages.
func (s AMQPReady) String() string {
	return "AMQP 1.0 open and session begin on " + s.Port
}
