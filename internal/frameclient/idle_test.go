package frameclient_test

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// refuseForbidden accepts every link except those to "forbidden".
type refuseForbidden struct{ engine.NopHandler }

func (refuseForbidden) Attach(l *engine.Link) error {
	if l.Address() == "forbidden" {
		return &wire.Error{Condition: wire.ErrCondNotFound, Description: "no such node"}
	}
	return nil
}

func serve(t *testing.T, opts *engine.Options) string {
	t.Helper()
	srv := engine.NewServer(refuseForbidden{}, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestReceiversAttachAndWait(t *testing.T) {
	addr := serve(t, nil)
	c, err := frameclient.Receivers(addr, []string{"a", "b", "c"})
	require.NoError(t, err)
	defer c.Close()
	c2, err := frameclient.OpenIdle(addr)
	require.NoError(t, err)
	c2.Close()
}

func TestRefusalsAreErrors(t *testing.T) {
	addr := serve(t, nil)
	_, err := frameclient.Receivers(addr, []string{"a", "forbidden"})
	require.ErrorContains(t, err, "link refused")
	require.ErrorContains(t, err, "no such node")

	// A server that wants SASL answers the plain header with its own: refused.
	strict := serve(t, &engine.Options{DenyAnonymous: true})
	_, err = frameclient.OpenIdle(strict)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "frameclient"), err.Error())
}
