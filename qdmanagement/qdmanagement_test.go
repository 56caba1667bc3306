package qdmanagement_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/qdmanagement"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// routers runs f against the fake router and, when it is built, qdrouterd 1.19.0.
func routers(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("fake", func(t *testing.T) { f(t, fakerouter.RunT(t, nil).URL()) })
	t.Run("qdrouterd", func(t *testing.T) { f(t, realpeer.StartQdrouterd(t, nil).URL()) })
}

func dial(t *testing.T, url string, opts *qdmanagement.Options) *qdmanagement.Client {
	t.Helper()
	c, err := qdmanagement.Dial(testCtx(t), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestQueryShowsAConsumer(t *testing.T) {
	routers(t, func(t *testing.T, url string) {
		ctx := testCtx(t)
		conn, err := amqp.Dial(ctx, url, nil)
		require.NoError(t, err)
		defer conn.Close()
		sess, err := conn.NewSession(ctx, nil)
		require.NoError(t, err)
		_, err = sess.NewReceiver(ctx, "exclusive.qdmanagement", &amqp.ReceiverOptions{Credit: 7})
		require.NoError(t, err)

		c := dial(t, url, nil)
		require.Equal(t, "qpid-dispatch-router", c.PeerProperties()["product"])
		addrs, err := c.Query(ctx, qdmanagement.TypeAddress, "name", "distribution", "subscriberCount")
		require.NoError(t, err)
		require.Equal(t, []string{"name", "distribution", "subscriberCount"}, addrs.Attributes)
		var found map[string]any
		for _, a := range addrs.Maps() {
			if a["name"] == "M0exclusive.qdmanagement" {
				found = a
			}
		}
		require.NotNil(t, found, "addresses: %v", addrs.Rows)
		require.Equal(t, "closest", found["distribution"])
		require.EqualValues(t, 1, found["subscriberCount"])

		links, err := c.Query(ctx, qdmanagement.TypeLink)
		require.NoError(t, err)
		var credit any
		for _, l := range links.Maps() {
			if l["owningAddr"] == "M0exclusive.qdmanagement" {
				credit = l["creditAvailable"]
			}
		}
		require.EqualValues(t, 7, credit)

		router, err := c.Query(ctx, qdmanagement.TypeRouter, "version", "mode")
		require.NoError(t, err)
		require.Equal(t, [][]any{{"1.19.0", "standalone"}}, router.Rows)

		nodes, err := c.GetMgmtNodes(ctx)
		require.NoError(t, err)
		require.Empty(t, nodes)
	})
}

func TestErrorsAreStatusErrors(t *testing.T) {
	routers(t, func(t *testing.T, url string) {
		ctx := testCtx(t)
		c := dial(t, url, nil)
		_, err := c.Query(ctx, "org.apache.qpid.dispatch.bogus")
		var se *qdmanagement.StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 400, se.Code)
		require.Equal(t, "No such entity type 'org.apache.qpid.dispatch.bogus'", se.Description)

		_, err = c.Read(ctx, qdmanagement.TypeAddress, "M0nobody", "")
		require.ErrorAs(t, err, &se)
		require.Equal(t, 404, se.Code)

		resp, err := c.Call(ctx, qdmanagement.Request{Operation: "FOO", Type: qdmanagement.TypeManagement, Name: "self"})
		require.NoError(t, err, "Call returns the response whatever its status")
		require.Equal(t, 501, resp.StatusCode)
		require.Contains(t, resp.StatusDescription, "Operation 'FOO' not implemented")

		_, err = c.Call(ctx, qdmanagement.Request{})
		require.Error(t, err)
		require.False(t, errors.As(err, &se))

		// The client goes on after errors.
		types, err := c.GetTypes(ctx, "configurationEntity")
		require.NoError(t, err)
		require.Contains(t, types, qdmanagement.TypeListener)
		ops, err := c.GetOperations(ctx, "listener")
		require.NoError(t, err)
		require.Equal(t, []string{"CREATE", "DELETE", "READ"}, ops[qdmanagement.TypeListener])
		attrs, err := c.GetAttributes(ctx, qdmanagement.TypeRouter)
		require.NoError(t, err)
		require.Contains(t, attrs[qdmanagement.TypeRouter], "uptimeSeconds")
	})
}

func TestReadConfiguredAddress(t *testing.T) {
	routers(t, func(t *testing.T, url string) {
		ctx := testCtx(t)
		c := dial(t, url, nil)
		a, err := c.Read(ctx, qdmanagement.TypeConfigAddress, "address/2", "")
		require.NoError(t, err)
		require.Equal(t, "broadcast", a["prefix"])
		require.Equal(t, "multicast", a["distribution"])
	})
}

// TestQueryPages asks for one row at a time: the client pages until the table ends.
func TestQueryPages(t *testing.T) {
	routers(t, func(t *testing.T, url string) {
		ctx := testCtx(t)
		all, err := dial(t, url, nil).Query(ctx, qdmanagement.TypeConfigAddress, "prefix")
		require.NoError(t, err)
		paged, err := dial(t, url, &qdmanagement.Options{PageSize: 1}).Query(ctx, qdmanagement.TypeConfigAddress, "prefix")
		require.NoError(t, err)
		require.Len(t, all.Rows, 9, "the guide's address table")
		require.Equal(t, all, paged)
	})
}

func TestNewOverAnOpenConnection(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	conn, err := amqp.Dial(ctx, r.URL(), nil)
	require.NoError(t, err)
	defer conn.Close()
	c, err := qdmanagement.New(ctx, conn, nil)
	require.NoError(t, err)
	require.NotEmpty(t, c.ReplyTo())
	conns, err := c.Query(ctx, qdmanagement.TypeConnection, "identity")
	require.NoError(t, err)
	require.Len(t, conns.Rows, 1)
	require.NoError(t, c.Close())
	// The connection stays open: another client works on it.
	c, err = qdmanagement.New(ctx, conn, nil)
	require.NoError(t, err)
	_, err = c.Query(ctx, qdmanagement.TypeRouter)
	require.NoError(t, err)
}

func TestShortType(t *testing.T) {
	require.Equal(t, "router.link", qdmanagement.ShortType(qdmanagement.TypeLink))
	require.Equal(t, "org.amqp.management", qdmanagement.ShortType(qdmanagement.TypeManagement))
}
