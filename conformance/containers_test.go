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
	"github.com/amqp1kit/amqp1kit/internal/fakeimage"
)

// TestContainers runs the suite against intermediaries started by the containers
// modules, each writing its real configuration file as the deployment guide says. No
// image can be pulled here, so the images are amqp1kit's fakes, built locally
// (internal/fakeimage); AMQP1KIT_QDROUTERD_IMAGE and AMQP1KIT_QPIDD_IMAGE name other
// images (qdrouterd.DefaultImage, qpidd.DefaultImage, with a registry).
func TestContainers(t *testing.T) {
	t.Parallel()
	routerImage, brokerImage := os.Getenv("AMQP1KIT_QDROUTERD_IMAGE"), os.Getenv("AMQP1KIT_QPIDD_IMAGE")
	if routerImage == "" || brokerImage == "" {
		if err := fakeimage.Build(); err != nil {
			skipOrFail(t, "no images to run: %v", err)
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
		run  func() (testcontainers.Container, func(context.Context) (string, error), error)
		kind func(name, url string) conformance.Harness
	}{
		{"qdrouterd (" + routerImage + ")", func() (testcontainers.Container, func(context.Context) (string, error), error) {
			c, err := qdrouterd.Run(ctx, routerImage)
			if c == nil {
				return nil, nil, err
			}
			return c, c.AMQPURL, err
		}, conformance.RouterAt},
		{"qpidd (" + brokerImage + ")", func() (testcontainers.Container, func(context.Context) (string, error), error) {
			c, err := qpidd.Run(ctx, brokerImage)
			if c == nil {
				return nil, nil, err
			}
			return c, c.AMQPURL, err
		}, conformance.BrokerAt},
	}
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			ctr, amqpURL, err := m.run()
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
