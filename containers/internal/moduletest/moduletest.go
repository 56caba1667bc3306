// Package moduletest holds what the containers modules' tests share: starting a
// module's container for a test (building the image first if the project builds it),
// showing its log when the test fails, and connecting a go-amqp client to it.
package moduletest

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"

	"github.com/amqp1kit/amqp1kit/containers/internal/fakeimage"
)

// AMQPContainer is a module's container: it says where its AMQP port is mapped.
type AMQPContainer interface {
	AMQPURL(ctx context.Context) (string, error)
}

// Run builds image if the project builds it (internal/fakeimage.BuildForT: a missing one
// skips t, or fails it under CI=true), calls run (a module's Run on image, with its
// other arguments bound), registers the container's termination and, should t fail, a
// dump of the end of the container's log, and logs how long the container took from
// creation to ready. It fails t if run failed (with the log, if there is a container).
func Run[C testcontainers.Container](t *testing.T, image string, run func() (C, error)) C {
	t.Helper()
	fakeimage.BuildForT(t, image)
	start := time.Now()
	ctr, err := run()
	testcontainers.CleanupContainer(t, ctr)
	if !isNil(ctr) {
		t.Cleanup(func() { logTail(t, image, ctr) }) // runs before the termination
	}
	require.NoError(t, err)
	t.Logf("%s: start to ready (AMQP 1.0 open) in %v", image, time.Since(start).Round(10*time.Millisecond))
	return ctr
}

func isNil(c any) bool {
	v := reflect.ValueOf(c)
	return !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil()
}

// logTail logs the end of the container's log when t failed.
func logTail(t *testing.T, image string, ctr testcontainers.Container) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		t.Logf("%s: container logs: %v", image, err)
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("%s: the container's log, last %d lines:\n%s", image, min(len(lines), 40), strings.Join(lines[max(0, len(lines)-40):], "\n"))
}

// Dial connects to ctr's AMQP port and begins a session; the connection is closed
// when t ends.
func Dial(t *testing.T, ctx context.Context, ctr AMQPContainer) (*amqp.Conn, *amqp.Session) {
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

// Exec runs cmd in ctr and returns its output (stdout and stderr), failing t if it
// cannot be run or exits with another status than 0.
func Exec(t *testing.T, ctx context.Context, ctr testcontainers.Container, cmd ...string) string {
	t.Helper()
	code, r, err := ctr.Exec(ctx, cmd, tcexec.Multiplexed())
	require.NoError(t, err)
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, 0, code, "%v exited with %d:\n%s", cmd, code, out)
	return string(out)
}
