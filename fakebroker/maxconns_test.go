package fakebroker_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
)

// Beyond max-connections a connection is closed as soon as it is accepted, before any
// byte, as qpidd 1.39.0 does (500 by default); once one goes, a new one is served.
func TestMaxConnections(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{MaxConnections: 3})
	var open []net.Conn
	for range 3 {
		c, err := frameclient.OpenIdle(b.Addr())
		require.NoError(t, err)
		open = append(open, c)
	}
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	_, err := frameclient.OpenIdle(b.Addr())
	require.ErrorContains(t, err, "reading the protocol header", "no header: the socket is closed at once")

	open[0].Close()
	require.Eventually(t, func() bool {
		c, err := frameclient.OpenIdle(b.Addr())
		if err != nil {
			return false // the closed one is not gone yet
		}
		open[0] = c
		return true
	}, 10*time.Second, 5*time.Millisecond, "a connection is served again once one went")

	// The default is qpidd's, and the configuration file's key sets it.
	cfg, err := fakebroker.ParseConfig(strings.NewReader("max-connections=7\n"))
	require.NoError(t, err)
	require.Equal(t, 7, *cfg.MaxConnections)
	require.Equal(t, 500, fakebroker.DefaultMaxConnections)
	_, err = fakebroker.ParseConfig(strings.NewReader("max-connections=many\n"))
	require.ErrorContains(t, err, "max-connections")
}
