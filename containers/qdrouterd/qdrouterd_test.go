package qdrouterd_test

import (
	"context"
	"os"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/moduletest"
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

// The module runs an image that reads qdrouterd.conf where qdrouterd does; the fake
// router's image reads the module's configuration and serves its address table.
func TestRunServesTheGuidesAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctr, err := qdrouterd.Run(ctx, image(t))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	conn, sess := moduletest.Dial(t, ctx, ctr)
	require.Equal(t, "qpid-dispatch-router", conn.Properties()["product"])
	// broadcast is multicast in the guide's table: two consumers each get a copy.
	rcvs := twoReceiversAndASend(t, ctx, sess, "broadcast.openstack.topic.all", "fanout")
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
	_, sess := moduletest.Dial(t, ctx, ctr)
	rcvs := twoReceiversAndASend(t, ctx, sess, "broadcast.openstack.topic.all", "once")
	// One of them gets it (polled until ctx ends)...
	got := 0
	for got == 0 && ctx.Err() == nil {
		for _, r := range rcvs {
			if receivedWithin(ctx, r, 50*time.Millisecond) {
				got++
			}
		}
	}
	require.Equal(t, 1, got, "one consumer gets the message")
	// ...and no copy comes later.
	for _, r := range rcvs {
		require.False(t, receivedWithin(ctx, r, 300*time.Millisecond), "without the guide's table, broadcast is not multicast")
	}

	dropFiles := testcontainers.CustomizeRequestOption(func(req *testcontainers.GenericContainerRequest) error {
		req.Files = nil
		return nil
	})
	ctr2, err := qdrouterd.Run(ctx, image(t), dropFiles, qdrouterd.WithConfig(conf))
	require.Nil(t, ctr2)
	require.ErrorContains(t, err, "WithConfig", "WithConfig needs the module's file to replace")
}

// twoReceiversAndASend attaches two receivers to addr and sends body to it pre-settled.
func twoReceiversAndASend(t *testing.T, ctx context.Context, sess *amqp.Session, addr, body string) []*amqp.Receiver {
	t.Helper()
	var rcvs []*amqp.Receiver
	for range 2 {
		r, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10})
		require.NoError(t, err)
		rcvs = append(rcvs, r)
	}
	snd, err := sess.NewSender(ctx, addr, nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte(body)), &amqp.SendOptions{Settled: true}))
	return rcvs
}

// receivedWithin reports whether r gets a message within d (and accepts it).
func receivedWithin(ctx context.Context, r *amqp.Receiver, d time.Duration) bool {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	m, err := r.Receive(rctx, nil)
	if err != nil {
		return false
	}
	_ = r.AcceptMessage(ctx, m)
	return true
}
