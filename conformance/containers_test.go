package conformance_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/conformance"
	"github.com/amqp1kit/amqp1kit/containers/qdrouterd"
	"github.com/amqp1kit/amqp1kit/containers/qpidd"
	"github.com/amqp1kit/amqp1kit/containers/rabbitmq"
	"github.com/amqp1kit/amqp1kit/internal/fakeimage"
	"github.com/amqp1kit/amqp1kit/internal/peers"
)

// TestContainers runs the suite against intermediaries started by the containers
// modules, each writing its real configuration file as the deployment guide says. No
// image can be pulled here, so the images are built locally (internal/fakeimage):
// amqp1kit's fakes for qdrouterd and qpidd (AMQP1KIT_QDROUTERD_IMAGE and
// AMQP1KIT_QPIDD_IMAGE name other images, qdrouterd.DefaultImage and qpidd.DefaultImage
// with a registry), and a real RabbitMQ 3.10 from Debian packages.
func TestContainers(t *testing.T) {
	t.Parallel()
	routerImage, brokerImage := os.Getenv("AMQP1KIT_QDROUTERD_IMAGE"), os.Getenv("AMQP1KIT_QPIDD_IMAGE")
	if routerImage == "" || brokerImage == "" {
		if err := fakeimage.Build(); err != nil {
			peers.Missing(t, "no images to run: %v", err)
		}
	}
	if routerImage == "" {
		routerImage = fakeimage.Router
	}
	if brokerImage == "" {
		brokerImage = fakeimage.Broker
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	modules := []struct {
		name string
		run  func(t *testing.T) (testcontainers.Container, func(context.Context) (string, error), error)
		kind func(name, url string) conformance.Harness
	}{
		{"qdrouterd (" + routerImage + ")", func(t *testing.T) (testcontainers.Container, func(context.Context) (string, error), error) {
			c, err := qdrouterd.Run(ctx, routerImage)
			if c == nil {
				return nil, nil, err
			}
			return c, c.AMQPURL, err
		}, conformance.RouterAt},
		{"qpidd (" + brokerImage + ")", func(t *testing.T) (testcontainers.Container, func(context.Context) (string, error), error) {
			c, err := qpidd.Run(ctx, brokerImage)
			if c == nil {
				return nil, nil, err
			}
			return c, c.AMQPURL, err
		}, conformance.BrokerAt},
		{"rabbitmq (" + rabbitmq.LocalImage + ")", func(t *testing.T) (testcontainers.Container, func(context.Context) (string, error), error) {
			fakeimage.BuildRabbitMQT(t)
			c, err := rabbitmq.Run(ctx, rabbitmq.LocalImage)
			if c == nil {
				return nil, nil, err
			}
			return c, c.AMQPURL, err
		}, func(name, url string) conformance.Harness {
			h := conformance.BrokerAt(name, url)
			h.Queue = func(n string) string { return "/queue/" + n }
			h.Topic = func(n string) string { return "/topic/" + n }
			h.Differences = rabbitMQDifferences
			return h
		}},
	}
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			ctr, amqpURL, err := m.run(t)
			testcontainers.CleanupContainer(t, ctr)
			if err != nil {
				t.Fatal(err)
			}
			url, err := amqpURL(ctx)
			if err != nil {
				t.Fatal(err)
			}
			requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
				return m.kind(m.name+" module", url)
			}))
		})
	}
}
