package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// serve's broker limit flags reach the broker: a pre-settled flood is cut off by a
// detach that names the limits.
func TestServeBrokerLimits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--no-router", "--broker-addr", "127.0.0.1:0",
			"--broker-queue-limit", "10000", "--broker-limit", `^unicast\.small=3000,2`, "--broker-max-connections", "1"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, stderr.String())
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url := strings.TrimSpace(line[strings.Index(line, "amqp://"):])

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	conn, err := amqp.Dial(dctx, url, nil)
	require.NoError(t, err)
	defer conn.Close()
	sess, err := conn.NewSession(dctx, nil)
	require.NoError(t, err)
	for addr, want := range map[string]string{
		"unicast.big":   "max=[size: 10000]",
		"unicast.small": "max=[count: 2, size: 3000]",
	} {
		snd, err := sess.NewSender(dctx, addr, nil)
		require.NoError(t, err)
		var le *amqp.LinkError
		for i := 0; i < 2000 && err == nil; i++ { // detached after 10, with credit for 500
			err = snd.Send(dctx, amqp.NewMessage(make([]byte, 1000)), &amqp.SendOptions{Settled: true})
		}
		require.True(t, errors.As(err, &le), "%s: %v", addr, err)
		require.NotNil(t, le.RemoteErr, addr)
		require.Contains(t, le.RemoteErr.Description, want, addr)
	}
	// --broker-max-connections 1: a second connection is closed at once.
	_, err = amqp.Dial(dctx, url, nil)
	require.Error(t, err, "a second connection beyond --broker-max-connections 1")
	cancel()
	require.Equal(t, 0, <-done, stderr.String())

	var out, errOut bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"serve", "--no-router", "--broker-max-connections=-1"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--broker-max-connections -1 is negative")
}

func TestParseQueueLimit(t *testing.T) {
	l, err := parseQueueLimit("a=b=100")
	require.NoError(t, err)
	require.Equal(t, fakebroker.QueueLimit{Pattern: "a=b", MaxSize: 100}, l)
	l, err = parseQueueLimit("^x$=-1,7")
	require.NoError(t, err)
	require.Equal(t, fakebroker.QueueLimit{Pattern: "^x$", MaxSize: -1, MaxCount: 7}, l)
	for _, bad := range []string{"nopattern", "=5", "p=lots", "p=5,many"} {
		_, err := parseQueueLimit(bad)
		require.Error(t, err, bad)
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"serve", "--broker-limit", "p=x"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--broker-limit")
}
