package qpidd_test

import (
	"context"
	"os"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/fakeimage"
	"github.com/amqp1kit/amqp1kit/containers/internal/moduletest"
	"github.com/amqp1kit/amqp1kit/containers/qpidd"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// run starts the module on image, building the image if it is missing, or skips
// (fails under CI=true) with the reason.
func run(t *testing.T, ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) *qpidd.Container {
	t.Helper()
	return moduletest.Run(t, image, func() (*qpidd.Container, error) { return qpidd.Run(ctx, image, opts...) })
}

// images are what the tests run: the real qpidd 1.39.0, and amqp1kit's fake broker
// through the explicit FakeImage.
var images = []string{qpidd.LocalImage, qpidd.FakeImage}

// The module runs the image on the guide's configuration: the broker says it is qpidd,
// and a notification sent to a unicast queue before any listener exists is stored, then
// delivered.
func TestRunStoresByTheGuidesPatterns(t *testing.T) {
	for _, image := range images {
		t.Run(image, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			conn, sess := moduletest.Dial(t, ctx, run(t, ctx, image))
			require.Equal(t, "qpid-cpp", conn.Properties()["product"])
			addr := "unicast.openstack.notifications.info"
			snd, err := sess.NewSender(ctx, addr, nil)
			require.NoError(t, err)
			require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("stored")), nil), "the broker settles once stored")
			rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 1})
			require.NoError(t, err)
			m, err := rcv.Receive(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, "stored", string(m.GetData()))
			require.NoError(t, rcv.AcceptMessage(ctx, m))
		})
	}
}

// WithConfig replaces the whole file: with no pattern for unicast, the broker refuses
// the address, as qpidd refuses an address that names no node.
func TestWithConfig(t *testing.T) {
	for _, image := range images {
		t.Run(image, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			ctr := run(t, ctx, image, qpidd.WithConfig("port=5672\nauth=no\nqueue-patterns=exclusive\n"))
			_, sess := moduletest.Dial(t, ctx, ctr)
			_, err := sess.NewSender(ctx, "unicast.openstack.notifications.info", nil)
			require.Error(t, err, "no pattern makes a node for unicast")
			_, err = sess.NewSender(ctx, "exclusive.openstack.topic.server", nil)
			require.NoError(t, err)
		})
	}
}
