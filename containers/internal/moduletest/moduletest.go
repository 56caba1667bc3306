// Package moduletest holds what the containers modules' tests share: connecting a
// go-amqp client to a module's container.
package moduletest

import (
	"context"
	"testing"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"
)

// AMQPContainer is a module's container: it says where its AMQP port is mapped.
type AMQPContainer interface {
	AMQPURL(ctx context.Context) (string, error)
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
