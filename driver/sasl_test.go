package driver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

func TestSASLMechanismsOption(t *testing.T) {
	var seen mechanismsSeen
	r := fakerouter.RunT(t, &fakerouter.Options{Users: map[string]string{"joe": "secret"}, Trace: seen.trace})
	withUser := func(user string) string { return strings.Replace(r.URL(), "amqp://", "amqp://"+user+"@", 1) }

	t.Run("PLAIN by default with a user name", func(t *testing.T) {
		before := len(seen.list())
		callFailsFast(t, withUser("joe:wrong"), nil, "unauthorized-access")
		require.Equal(t, []string{"PLAIN"}, seen.list()[before:])
	})

	t.Run("ANONYMOUS with a user name", func(t *testing.T) {
		// sasl_mechanisms=ANONYMOUS: the credentials are not used, so the wrong
		// password does not matter.
		before := len(seen.list())
		callThrough(t, r, r.URL(), withUser("joe:wrong")+"?sasl_mechanisms=ANONYMOUS", nil)
		require.Contains(t, seen.list()[before:], "ANONYMOUS")
		require.NotContains(t, seen.list()[before:], "PLAIN")
	})

	t.Run("the list turns SASL on", func(t *testing.T) {
		before := len(seen.list())
		callThrough(t, r, r.URL(), r.URL()+"?sasl_mechanisms=anonymous+PLAIN", nil)
		require.Equal(t, []string{"ANONYMOUS"}, seen.list()[before:], "no user name: ANONYMOUS (the server's transport does no SASL)")
	})

	t.Run("PLAIN with the right password", func(t *testing.T) {
		before := len(seen.list())
		o := fastOptions()
		o.SASLMechanisms = "PLAIN ANONYMOUS"
		callThrough(t, r, r.URL(), withUser("joe:secret"), o)
		require.Equal(t, []string{"PLAIN"}, seen.list()[before:])
	})

	t.Run("nothing supported", func(t *testing.T) {
		o := fastOptions()
		o.SASLMechanisms = "DIGEST-MD5 SCRAM-SHA-1"
		_, err := driver.NewTransport(withUser("joe:secret"), &driver.TransportOptions{Options: o})
		var ce *driver.ConfigError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "sasl_mechanisms", ce.Field)
		require.Contains(t, err.Error(), "PLAIN")
	})

	t.Run("PLAIN without a user name", func(t *testing.T) {
		o := fastOptions()
		o.SASLMechanisms = "PLAIN"
		cli := driver.NewRPCClient(newTransport(t, r.URL(), o), driver.Target{Topic: "x"}, &driver.ClientOptions{Timeout: 30 * time.Second})
		_, err := cli.Call(testCtx(t), nil, "echo", nil)
		var ce *driver.ConfigError // not the call's timeout: the refusal came first
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "sasl_mechanisms", ce.Field)
		require.Contains(t, ce.Reason, "user name")
	})
}

func TestSASLNoMechanismInCommonFailsFast(t *testing.T) {
	// Python's bad_mechs: the client's list matches nothing the server offers.
	r := fakerouter.RunT(t, &fakerouter.Options{Users: map[string]string{"joe": "secret"}, DenyAnonymous: true})
	err := callFailsFast(t, "amqp://joe:secret@"+r.Addr()+"?sasl_mechanisms=EXTERNAL+ANONYMOUS", nil, "no mechanism in common")
	require.Contains(t, err.Error(), "unauthorized-access")
}
