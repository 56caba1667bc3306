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

	t.Run("qdrouterd", func(t *testing.T) {
		ctr, err := qdrouterd.Run(ctx, routerImage)
		testcontainers.CleanupContainer(t, ctr)
		if err != nil {
			t.Fatal(err)
		}
		url, err := ctr.AMQPURL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
			return conformance.RouterAt("qdrouterd module ("+routerImage+")", url)
		}))
	})
	t.Run("qpidd", func(t *testing.T) {
		ctr, err := qpidd.Run(ctx, brokerImage)
		testcontainers.CleanupContainer(t, ctr)
		if err != nil {
			t.Fatal(err)
		}
		url, err := ctr.AMQPURL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		requireAllPass(t, conformance.Run(t, func(*testing.T) conformance.Harness {
			return conformance.BrokerAt("qpidd module ("+brokerImage+")", url)
		}))
	})
}
