package containers_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/containers/internal/fakeimage"
	"github.com/amqp1kit/amqp1kit/containers/qdrouterd"
	"github.com/amqp1kit/amqp1kit/containers/qpidd"
	"github.com/amqp1kit/amqp1kit/containers/rabbitmq"
	internalrabbitmq "github.com/amqp1kit/amqp1kit/internal/testenv/rabbitmq"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// TestConformance runs the conformance suite (package conformance) against intermediaries started by the containers
// modules, each writing its real configuration file as the deployment guide says. No
// image can be pulled here, so the images are built locally (internal/fakeimage):
//
//   - the real qdrouterd 1.19.0 and qpidd 1.39.0 (the modules' LocalImage, from
//     scripts/real-peers-image.sh), the modules' defaults; AMQP1KIT_QDROUTERD_IMAGE and
//     AMQP1KIT_QPIDD_IMAGE name other images (qdrouterd.DefaultImage and
//     qpidd.DefaultImage with a registry);
//   - amqp1kit's fakes in their own images, through the explicit FakeImage;
//   - a real RabbitMQ 3.10 from Debian packages.
//
// Every one must pass every case (or show its documented differences): the real
// qdrouterd and qpidd as the suite was written against them (qpidd with the
// differences where it is broken and the fake is not,
// realpeer.QpiddConformanceDifferences; an image named by AMQP1KIT_QPIDD_IMAGE is held
// to them too), the fakes as they imitate them.
func TestConformance(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	type module struct {
		name  string
		image string
		run   func(image string) (testcontainers.Container, func(context.Context) (string, error), error)
		kind  func(name, url string) conformance.Harness
	}
	runQdrouterd := func(image string) (testcontainers.Container, func(context.Context) (string, error), error) {
		c, err := qdrouterd.Run(ctx, image)
		if c == nil {
			return nil, nil, err
		}
		return c, c.AMQPURL, err
	}
	runQpidd := func(image string) (testcontainers.Container, func(context.Context) (string, error), error) {
		c, err := qpidd.Run(ctx, image)
		if c == nil {
			return nil, nil, err
		}
		return c, c.AMQPURL, err
	}
	realRouter := module{"qdrouterd 1.19.0 (container)", qdrouterd.LocalImage, runQdrouterd, conformance.RouterAt}
	if img := os.Getenv("AMQP1KIT_QDROUTERD_IMAGE"); img != "" {
		realRouter.name, realRouter.image = "qdrouterd ("+img+")", img
	}
	realQpidd := func(name, url string) conformance.Harness {
		h := conformance.BrokerAt(name, url)
		h.Differences = realpeer.QpiddConformanceDifferences
		return h
	}
	realBroker := module{"qpidd 1.39.0 (container)", qpidd.LocalImage, runQpidd, realQpidd}
	if img := os.Getenv("AMQP1KIT_QPIDD_IMAGE"); img != "" {
		realBroker.name, realBroker.image = "qpidd ("+img+")", img
	}
	modules := []module{
		realRouter,
		realBroker,
		{"qdrouterd (" + qdrouterd.FakeImage + ")", qdrouterd.FakeImage, runQdrouterd, conformance.RouterAt},
		{"qpidd (" + qpidd.FakeImage + ")", qpidd.FakeImage, runQpidd, conformance.BrokerAt},
		{"rabbitmq (" + rabbitmq.LocalImage + ")", rabbitmq.LocalImage,
			func(image string) (testcontainers.Container, func(context.Context) (string, error), error) {
				c, err := rabbitmq.Run(ctx, image)
				if c == nil {
					return nil, nil, err
				}
				return c, c.AMQPURL, err
			},
			func(name, url string) conformance.Harness {
				h := conformance.BrokerAt(name, url)
				h.Queue = func(n string) string { return "/queue/" + n }
				h.Topic = func(n string) string { return "/topic/" + n }
				h.Differences = internalrabbitmq.ConformanceDifferences
				return h
			}},
	}
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			fakeimage.BuildForT(t, m.image)
			ctr, amqpURL, err := m.run(m.image)
			testcontainers.CleanupContainer(t, ctr)
			if err != nil {
				t.Fatal(err)
			}
			url, err := amqpURL(ctx)
			if err != nil {
				t.Fatal(err)
			}
			results := conformance.Run(t, func(*testing.T) conformance.Harness {
				return m.kind(m.name, url)
			})
			t.Logf("%s: %s", m.name, conformance.Tally(results))
			if len(results) != len(conformance.CaseNames()) {
				t.Fatalf("%d results for %d cases", len(results), len(conformance.CaseNames()))
			}
			for _, r := range conformance.Unexpected(results) {
				t.Errorf("%s: %s %s", r.Case, r.Outcome, r.Detail)
			}
		})
	}
}
