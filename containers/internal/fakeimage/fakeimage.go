// Package fakeimage builds, on the local Docker engine, the container images the tests
// of the containers modules run: no registry is needed.
//
// [Build] makes the images of amqp1kit's fakes: each holds one static binary of
// cmd/amqp1kit, FROM scratch, that serves one fake from the real intermediary's
// configuration file at the real intermediary's path, so that a module which writes
// qdrouterd.conf or qpidd.conf for the real image drives the fake the same way:
//
//   - Router (containers/qdrouterd.FakeImage, "amqp1kit/fake-qdrouterd:dev"): the fake
//     router, reading /etc/qpid-dispatch/qdrouterd.conf, listening on 0.0.0.0:5672;
//   - Broker (containers/qpidd.FakeImage, "amqp1kit/fake-qpidd:dev"): the fake broker,
//     reading /etc/qpid/qpidd.conf, listening on 0.0.0.0:5672.
//
// The binary is built with the go command of the running toolchain; the images are
// rebuilt at most once per process.
//
// [BuildReal] and [BuildRabbitMQ] make the images of real intermediaries with the
// project's scripts, unless they exist: Qdrouterd and Qpidd (the real qdrouterd 1.19.0
// and qpidd 1.39.0, scripts/real-peers-image.sh) and RabbitMQ (scripts/rabbitmq-image.sh).
package fakeimage

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/amqp1kit/amqp1kit/containers/qdrouterd"
	"github.com/amqp1kit/amqp1kit/containers/qpidd"
	"github.com/amqp1kit/amqp1kit/containers/rabbitmq"
	"github.com/amqp1kit/amqp1kit/internal/testenv/modroot"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// The images Build makes.
const (
	Router = qdrouterd.FakeImage
	Broker = qpidd.FakeImage
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
const RabbitMQ = rabbitmq.LocalImage

// The images scripts/real-peers-image.sh builds: the real qdrouterd 1.19.0 and qpidd
// 1.39.0, from Apache's source releases (containers/qdrouterd.LocalImage and
// containers/qpidd.LocalImage).
const (
	Qdrouterd = qdrouterd.LocalImage
	Qpidd     = qpidd.LocalImage
)

// scriptBuild is an image build by one of the project's scripts, done once per process.
type scriptBuild struct {
	script string   // relative to the module root
	images []string // what it builds; all there: nothing to do
	once   sync.Once
	err    error
}

var (
	rabbitBuild = &scriptBuild{script: "scripts/rabbitmq-image.sh", images: []string{RabbitMQ}}
	realBuild   = &scriptBuild{script: "scripts/real-peers-image.sh", images: []string{Qdrouterd, Qpidd}}
)

func (b *scriptBuild) run() error {
	b.once.Do(func() { b.err = b.build() })
	return b.err
}

func (b *scriptBuild) build() error {
	if err := DockerAvailable(); err != nil {
		return err
	}
	missing := false
	for _, img := range b.images {
		if exec.Command("docker", "image", "inspect", img).Run() != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr != nil {
			return fmt.Errorf("%s: not built, and there is no debootstrap to build them (apt-get install debootstrap; scripts/test.sh does)",
				strings.Join(b.images, ", "))
		}
	}
	script, err := modroot.File(b.script)
	if err != nil {
		return fmt.Errorf("fakeimage: %w", err)
	}
	if out, err := exec.Command("bash", script).CombinedOutput(); err != nil {
		return fmt.Errorf("bash %s: %v\n%s", b.script, err, out)
	}
	return nil
}

// BuildRabbitMQ builds the RabbitMQ image with scripts/rabbitmq-image.sh unless it
// exists (~80 s with debootstrap; a no-op afterwards), once per process.
func BuildRabbitMQ() error { return rabbitBuild.run() }

// BuildRabbitMQT is BuildRabbitMQ for a test: it skips t with the reason, or fails it
// under CI=true.
func BuildRabbitMQT(t testing.TB) {
	t.Helper()
	if err := BuildRabbitMQ(); err != nil {
		peers.Missing(t, "no RabbitMQ image to run: %v", err)
	}
}

// BuildReal builds the images of the real qdrouterd and qpidd with
// scripts/real-peers-image.sh unless both exist, once per process: ~1 min with
// debootstrap when the programs are built (scripts/real-peers.sh build all), plus
// the programs' own build (~7 min on 2 cores) when they are not.
func BuildReal() error { return realBuild.run() }

// BuildRealT is BuildReal for a test: it skips t with the reason, or fails it under
// CI=true.
func BuildRealT(t testing.TB) {
	t.Helper()
	if err := BuildReal(); err != nil {
		peers.Missing(t, "no image of the real qdrouterd and qpidd to run: %v", err)
	}
}

// BuildFor builds image if it is one of those this package knows how to build (Router,
// Broker, Qdrouterd, Qpidd, RabbitMQ), as Build, BuildReal or BuildRabbitMQ do; another
// image is the caller's to provide (nil).
func BuildFor(image string) error {
	switch image {
	case Router, Broker:
		return Build()
	case Qdrouterd, Qpidd:
		return BuildReal()
	case RabbitMQ:
		return BuildRabbitMQ()
	}
	return nil
}

// BuildForT is BuildFor for a test: it skips t with the reason, or fails it under
// CI=true.
func BuildForT(t testing.TB, image string) {
	t.Helper()
	if err := BuildFor(image); err != nil {
		peers.Missing(t, "no image %s to run: %v", image, err)
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
	// cmd is a module of its own, whose go.mod replaces the root module with the
	// checkout: this builds without a go.work.
	gobuild := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "amqp1kit"), "./amqp1kit")
	gobuild.Dir = filepath.Join(root, "cmd")
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
		previous := imageID(img.tag)
		cmd := exec.Command("docker", "build", "--quiet", "-t", img.tag, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("fakeimage: docker build %s: %v\n%s", img.tag, err, out)
		}
		if previous != "" && previous != imageID(img.tag) {
			// The image the tag named before, now untagged; left alone while a container uses it.
			_ = exec.Command("docker", "rmi", previous).Run()
		}
	}
	return nil
}

// imageID returns the id of the image tag names, or "".
func imageID(tag string) string {
	out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", tag).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
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
