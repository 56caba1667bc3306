package qdrouterd_test

import (
	"context"
	"os"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/qdrouterd"
	"github.com/amqp1kit/amqp1kit/internal/fakeimage"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// image builds amqp1kit's fake router image, or skips (fails under CI=true).
func image(t *testing.T) string {
	fakeimage.BuildT(t)
	return fakeimage.Router
}

func dial(t *testing.T, ctx context.Context, ctr *qdrouterd.Container) (*amqp.Conn, *amqp.Session) {
	t.Helper()
	url, err := ctr.AMQPURL(ctx)
	require.NoError(t, err)
	conn, err := amqp.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	return conn, sess
}

// The module runs an image that reads qdrouterd.conf where qdrouterd does; the fake
// router's image reads the module's configuration and serves its address table.
func TestRunServesTheGuidesAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctr, err := qdrouterd.Run(ctx, image(t))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	conn, sess := dial(t, ctx, ctr)
	require.Equal(t, "qpid-dispatch-router", conn.Properties()["product"])
	// broadcast is multicast in the guide's table: two consumers each get a copy.
	addr := "broadcast.openstack.topic.all"
	var rcvs []*amqp.Receiver
	for range 2 {
		r, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10})
		require.NoError(t, err)
		rcvs = append(rcvs, r)
	}
	mode := amqp.SenderSettleModeSettled
	snd, err := sess.NewSender(ctx, addr, &amqp.SenderOptions{SettlementMode: &mode})
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("fanout")), nil))
	for _, r := range rcvs {
		m, err := r.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, "fanout", string(m.GetData()))
	}
}

// WithConfig replaces the whole file: an address table without broadcast makes
// broadcast anycast (balanced, qdrouterd's default), so one consumer gets the message.
func TestWithConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conf := "listener {\n    host: 0.0.0.0\n    port: 5672\n}\n"
	ctr, err := qdrouterd.Run(ctx, image(t), qdrouterd.WithConfig(conf))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	_, sess := dial(t, ctx, ctr)
	addr := "broadcast.openstack.topic.all"
	var rcvs []*amqp.Receiver
	for range 2 {
		r, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10})
		require.NoError(t, err)
		rcvs = append(rcvs, r)
	}
	mode := amqp.SenderSettleModeSettled
	snd, err := sess.NewSender(ctx, addr, &amqp.SenderOptions{SettlementMode: &mode})
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("once")), nil))
	got := 0
	for _, r := range rcvs {
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if m, err := r.Receive(rctx, nil); err == nil {
			got++
			require.NoError(t, r.AcceptMessage(ctx, m))
		}
		cancel()
	}
	require.Equal(t, 1, got, "without the guide's table, broadcast is not multicast")

	dropFiles := testcontainers.CustomizeRequestOption(func(req *testcontainers.GenericContainerRequest) error {
		req.Files = nil
		return nil
	})
	ctr2, err := qdrouterd.Run(ctx, image(t), dropFiles, qdrouterd.WithConfig(conf))
	require.Nil(t, ctr2)
	require.ErrorContains(t, err, "WithConfig", "WithConfig needs the module's file to replace")
}
