package qpidd_test

import (
	"context"
	"os"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/moduletest"
	"github.com/amqp1kit/amqp1kit/containers/qpidd"
	"github.com/amqp1kit/amqp1kit/internal/fakeimage"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// image builds amqp1kit's fake broker image, or skips (fails under CI=true).
func image(t *testing.T) string {
	fakeimage.BuildT(t)
	return fakeimage.Broker
}

// The module runs an image that reads qpidd.conf where qpidd does; the fake broker's
// image stores a notification sent to a unicast queue before any listener exists.
func TestRunStoresByTheGuidesPatterns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctr, err := qpidd.Run(ctx, image(t))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	conn, sess := moduletest.Dial(t, ctx, ctr)
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
}

// WithConfig replaces the whole file: with no pattern for unicast, the broker refuses
// the address, as qpidd refuses an address that names no node.
func TestWithConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctr, err := qpidd.Run(ctx, image(t), qpidd.WithConfig("port=5672\nauth=no\nqueue-patterns=exclusive\n"))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	_, sess := moduletest.Dial(t, ctx, ctr)
	_, err = sess.NewSender(ctx, "unicast.openstack.notifications.info", nil)
	require.Error(t, err, "no pattern makes a node for unicast")
	_, err = sess.NewSender(ctx, "exclusive.openstack.topic.server", nil)
	require.NoError(t, err)
}
