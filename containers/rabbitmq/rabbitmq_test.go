package rabbitmq_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/amqp1kit/amqp1kit/containers/internal/fakeimage"
	"github.com/amqp1kit/amqp1kit/containers/internal/moduletest"
	"github.com/amqp1kit/amqp1kit/containers/rabbitmq"
)

func TestMain(m *testing.M) {
	fakeimage.SetTestcontainersEnv()
	os.Exit(m.Run())
}

// run starts the module on rabbitmq.LocalImage, built by scripts/rabbitmq-image.sh
// unless it exists, or skips (fails under CI=true) with the reason.
func run(t *testing.T, ctx context.Context, opts ...testcontainers.ContainerCustomizer) *rabbitmq.Container {
	t.Helper()
	return moduletest.Run(t, rabbitmq.LocalImage, func() (*rabbitmq.Container, error) {
		return rabbitmq.Run(ctx, rabbitmq.LocalImage, opts...)
	})
}

func url(t *testing.T, ctx context.Context, ctr *rabbitmq.Container) string {
	t.Helper()
	u, err := ctr.AMQPURL(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u, "amqp://"), u)
	return u
}

func dial(t *testing.T, ctx context.Context, u string, opts *amqp.ConnOptions) (*amqp.Conn, error) {
	t.Helper()
	conn, err := amqp.Dial(ctx, u, opts)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

// fileIn returns the content of path in the container.
func fileIn(t *testing.T, ctx context.Context, ctr *rabbitmq.Container, path string) string {
	t.Helper()
	rc, err := ctr.CopyFileFromContainer(ctx, path)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

// The module enables the AMQP 1.0 plugin and configures RabbitMQ where the image reads
// it; a message sent to /queue/x is stored and received back, from a real RabbitMQ.
func TestRunSendsAndReceives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr := run(t, ctx)
	require.Equal(t, rabbitmq.EnabledPlugins, fileIn(t, ctx, ctr, rabbitmq.EnabledPluginsPath))
	require.Equal(t, rabbitmq.DefaultConfig, fileIn(t, ctx, ctr, rabbitmq.ConfigPath))

	u := url(t, ctx, ctr)
	conn, err := dial(t, ctx, u, nil)
	require.NoError(t, err, "no SASL: the plugin's default user")
	require.Equal(t, "RabbitMQ", conn.Properties()["product"])
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	snd, err := sess.NewSender(ctx, "/queue/x", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("stored")), nil), "the broker accepts once stored")
	// No snd.Close: RabbitMQ 3.10 answers detach closed=true with closed=false, which
	// go-amqp does not take as the answer (Close blocks, the session is stuck after it);
	// the links end with the connection.
	rcv, err := sess.NewReceiver(ctx, "/queue/x", &amqp.ReceiverOptions{Credit: 1})
	require.NoError(t, err)
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "stored", string(m.GetData()))
	require.NoError(t, rcv.AcceptMessage(ctx, m))

	// What the package documentation says about authentication.
	_, err = dial(t, ctx, u, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	require.NoError(t, err, "SASL ANONYMOUS")
	withUser := strings.Replace(u, "amqp://", "amqp://guest:guest@", 1)
	_, err = dial(t, ctx, withUser, nil)
	require.NoError(t, err, "SASL PLAIN guest:guest, allowed from any host by loopback_users = none")
	_, err = dial(t, ctx, strings.Replace(u, "amqp://", "amqp://guest:wrong@", 1), nil)
	require.Error(t, err, "a wrong password is refused")
}

// WithConfig replaces the whole rabbitmq.conf: without loopback_users = none, RabbitMQ
// refuses guest over SASL PLAIN from the mapped port (not the container's loopback),
// while a connection without SASL still gets in as the plugin's default user.
func TestWithConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conf := "listeners.tcp.default = 5672\n"
	ctr := run(t, ctx, rabbitmq.WithConfig(conf))
	require.Equal(t, conf, fileIn(t, ctx, ctr, rabbitmq.ConfigPath))
	require.Equal(t, rabbitmq.EnabledPlugins, fileIn(t, ctx, ctr, rabbitmq.EnabledPluginsPath), "WithConfig leaves the plugins alone")

	u := url(t, ctx, ctr)
	conn, err := dial(t, ctx, u, nil)
	require.NoError(t, err)
	require.Equal(t, "RabbitMQ", conn.Properties()["product"])
	_, err = dial(t, ctx, strings.Replace(u, "amqp://", "amqp://guest:guest@", 1), nil)
	require.Error(t, err, "guest is a loopback user again")
}

// WithConfig replaces the file Run writes; alone, on a request without it, it names the
// missing file instead of adding one, as the other modules' WithConfig does.
func TestWithConfigAloneHasNothingToReplace(t *testing.T) {
	req := &testcontainers.GenericContainerRequest{}
	err := rabbitmq.WithConfig("x = 1\n")(req)
	require.ErrorContains(t, err, rabbitmq.ConfigPath)
}
