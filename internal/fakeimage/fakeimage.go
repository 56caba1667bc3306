// Package fakeimage builds container images of amqp1kit's fakes on the local Docker
// engine, for tests of the containers modules: no registry is needed. Each image holds
// one static binary of cmd/amqp1kit, FROM scratch, that serves one fake from the real
// intermediary's configuration file at the real intermediary's path, so that a module
// which writes qdrouterd.conf or qpidd.conf for the real image drives the fake the same
// way:
//
//   - Router ("amqp1kit/fake-qdrouterd:dev"): the fake router, reading
//     /etc/qpid-dispatch/qdrouterd.conf, listening on 0.0.0.0:5672;
//   - Broker ("amqp1kit/fake-qpidd:dev"): the fake broker, reading
//     /etc/qpid/qpidd.conf, listening on 0.0.0.0:5672.
//
// The binary is built with the go command of the running toolchain; the images are
// rebuilt at most once per process.
package fakeimage

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/modroot"
	"github.com/amqp1kit/amqp1kit/internal/peers"
)

// The images Build makes.
const (
	Router = "amqp1kit/fake-qdrouterd:dev"
	Broker = "amqp1kit/fake-qpidd:dev"
)

// The configuration files the images read, where qdrouterd and qpidd read theirs.
const (
	RouterConfig = "/etc/qpid-dispatch/qdrouterd.conf"
	BrokerConfig = "/etc/qpid/qpidd.conf"
)

var build struct {
	once sync.Once
	err  error
}

// Build builds both images once per process and returns the first error. It needs
// the docker command and a running Docker engine.
func Build() error {
	build.once.Do(func() { build.err = buildImages() })
	return build.err
}

// BuildT is Build for a test: without Docker (or when the build fails) it skips t
// with the reason, and under CI=true, where every peer must run, it fails t.
func BuildT(t testing.TB) {
	t.Helper()
	if err := Build(); err != nil {
		peers.Missing(t, "no image to run: %v", err)
	}
}

// RabbitMQ is the image scripts/rabbitmq-image.sh builds from Debian packages:
// RabbitMQ 3.10 with the AMQP 1.0 plugin (containers/rabbitmq.LocalImage).
const RabbitMQ = "amqp1kit/rabbitmq-amqp1:3.10"

var rabbitBuild struct {
	once sync.Once
	err  error
}

// BuildRabbitMQ builds the RabbitMQ image with scripts/rabbitmq-image.sh unless it
// exists (~45 s with debootstrap; a no-op afterwards), once per process.
func BuildRabbitMQ() error {
	rabbitBuild.once.Do(func() { rabbitBuild.err = buildRabbitMQ() })
	return rabbitBuild.err
}

func buildRabbitMQ() error {
	if err := DockerAvailable(); err != nil {
		return err
	}
	if exec.Command("docker", "image", "inspect", RabbitMQ).Run() == nil {
		return nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr != nil {
			return fmt.Errorf("%s is not built and there is no debootstrap to build it (apt-get install debootstrap; scripts/test.sh does)", RabbitMQ)
		}
	}
	script, err := modroot.File("scripts/rabbitmq-image.sh")
	if err != nil {
		return fmt.Errorf("fakeimage: %w", err)
	}
	if out, err := exec.Command("bash", script).CombinedOutput(); err != nil {
		return fmt.Errorf("bash scripts/rabbitmq-image.sh: %v\n%s", err, out)
	}
	return nil
}

// BuildRabbitMQT is BuildRabbitMQ for a test: it skips t with the reason, or fails it
// under CI=true.
func BuildRabbitMQT(t testing.TB) {
	t.Helper()
	if err := BuildRabbitMQ(); err != nil {
		peers.Missing(t, "no RabbitMQ image to run: %v", err)
	}
}

// DockerAvailable reports why Docker cannot be used, or nil.
func DockerAvailable() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("no docker command: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("docker", "version", "--format", "{{.Server.Version}}")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the Docker engine does not answer: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func buildImages() error {
	if err := DockerAvailable(); err != nil {
		return err
	}
	root, err := modroot.Root()
	if err != nil {
		return fmt.Errorf("fakeimage: %w", err)
	}
	dir, err := os.MkdirTemp("", "amqp1kit-fakeimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gobuild := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "amqp1kit"), "./cmd/amqp1kit")
	gobuild.Dir = root
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := gobuild.CombinedOutput(); err != nil {
		return fmt.Errorf("fakeimage: building cmd/amqp1kit: %v\n%s", err, out)
	}
	images := []struct{ tag, entrypoint string }{
		{Router, `["/amqp1kit", "serve", "--no-broker", "--router-addr", "0.0.0.0:5672", "--router-config", "` + RouterConfig + `"]`},
		{Broker, `["/amqp1kit", "serve", "--no-router", "--broker-addr", "0.0.0.0:5672", "--broker-config", "` + BrokerConfig + `"]`},
	}
	for _, img := range images {
		dockerfile := "FROM scratch\nCOPY amqp1kit /amqp1kit\nEXPOSE 5672\nENTRYPOINT " + img.entrypoint + "\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			return err
		}
		cmd := exec.Command("docker", "build", "--quiet", "-t", img.tag, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("fakeimage: docker build %s: %v\n%s", img.tag, err, out)
		}
	}
	return nil
}

// SetTestcontainersEnv sets, unless already set, what testcontainers-go needs on a
// machine without a registry, inside a sandbox: TESTCONTAINERS_RYUK_DISABLED=true (the
// reaper image cannot be pulled; tests terminate their containers themselves) and
// TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (testcontainers-go, finding itself in a
// container, would otherwise reach mapped ports through the default gateway, where
// nothing answers). Call it from TestMain, before the first container.
func SetTestcontainersEnv() {
	for k, v := range map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
}
