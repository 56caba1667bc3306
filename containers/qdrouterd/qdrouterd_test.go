package qdrouterd_test

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
	"github.com/amqp1kit/amqp1kit/containers/qdrouterd"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// run starts the module on image, building the image if it is missing, or skips
// (fails under CI=true) with the reason.
func run(t *testing.T, ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) *qdrouterd.Container {
	t.Helper()
	return moduletest.Run(t, image, func() (*qdrouterd.Container, error) { return qdrouterd.Run(ctx, image, opts...) })
}

// images are what the tests run: the real qdrouterd 1.19.0, and amqp1kit's fake router
// through the explicit FakeImage.
var images = []string{qdrouterd.LocalImage, qdrouterd.FakeImage}

// The module runs the image on the guide's configuration: the router says it is
// qdrouterd in its open frame, and broadcast is multicast (two consumers each get a
// copy); the real router's management agent lists the guide's address table.
func TestRunServesTheGuidesAddresses(t *testing.T) {
	for _, image := range images {
		t.Run(image, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			ctr := run(t, ctx, image)
			conn, sess := moduletest.Dial(t, ctx, ctr)
			require.Equal(t, "qpid-dispatch-router", conn.Properties()["product"])
			if image == qdrouterd.LocalImage {
				require.Equal(t, "1.19.0", conn.Properties()["version"])
				addresses := moduletest.Exec(t, ctx, ctr, "qdmanage", "-b", "127.0.0.1:5672", "query", "--type=address")
				for _, want := range []string{`"prefix": "openstack.org/om/rpc/anycast"`, `"distribution": "balanced"`, `"prefix": "broadcast"`} {
					require.Contains(t, addresses, want, "qdmanage query --type=address")
				}
			}
			rcvs := twoReceiversAndASend(t, ctx, sess, "broadcast.openstack.topic.all", "fanout")
			for _, r := range rcvs {
				m, err := r.Receive(ctx, nil)
				require.NoError(t, err)
				require.Equal(t, "fanout", string(m.GetData()))
			}
		})
	}
}

// WithConfig replaces the whole file: an address table without broadcast makes
// broadcast anycast (balanced, qdrouterd's default), so one consumer gets the message.
func TestWithConfig(t *testing.T) {
	conf := "listener {\n    host: 0.0.0.0\n    port: 5672\n}\n"
	for _, image := range images {
		t.Run(image, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			ctr := run(t, ctx, image, qdrouterd.WithConfig(conf))
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
		})
	}
}

// WithConfig needs the module's file to replace.
func TestWithConfigAloneHasNothingToReplace(t *testing.T) {
	err := qdrouterd.WithConfig("listener {}\n")(&testcontainers.GenericContainerRequest{})
	require.ErrorContains(t, err, "WithConfig")
	require.ErrorContains(t, err, qdrouterd.ConfigPath)
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
