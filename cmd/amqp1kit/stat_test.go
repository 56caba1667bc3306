package main

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
	"github.com/amqp1kit/amqp1kit/statuspage"
)

// consumeAt attaches a receiver to addr through url for the test's duration.
func consumeAt(t *testing.T, url, addr string, opts *amqp.ConnOptions) {
	t.Helper()
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	_, err = sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 3})
	require.NoError(t, err)
}

// requireStatTables checks the tables stat prints after its first lines.
func requireStatTables(t *testing.T, out, routerID string) {
	t.Helper()
	require.Regexp(t, `^url: +\S+\nproduct: +qpid-dispatch-router\nversion: +1\.19\.0\naddressing: +routable`, out,
		"stat's first lines stay as they were")
	for _, title := range []string{"Router Statistics", "Connections", "Router Links", "Router Addresses"} {
		require.Regexp(t, `(?m)^`+title+`\n  \S`, out)
	}
	require.Regexp(t, `(?m)^  Router Id +`+regexp.QuoteMeta(routerID)+`$`, out)
	require.Regexp(t, `(?m)^  Version +1\.19\.0$`, out)
	// The consumer, its link and the management connection itself.
	require.Regexp(t, `(?m)^  mobile +exclusive\.stat +0 +closest +1 +0 +0 +0 +0$`, out)
	require.Regexp(t, `(?m)^  endpoint +out +\d+ +\d+ +mobile +exclusive\.stat +0 +250 +0 +0 +0 +0 +0 +0 +0 +0 +0 +3$`, out)
	require.Regexp(t, `(?m)^  endpoint +in +\d+ +\d+ +mobile +\$management +0 +250 `, out)
	require.Regexp(t, `(?m)^  \d+ +127\.0\.0\.1:\d+ +amqp1kit-stat-\d+ +normal +amqp +in +no-security +no-auth `, out)
}

func TestStatShowsTheFakeRoutersTables(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{ID: "stat-router"})
	consumeAt(t, r.URL(), "exclusive.stat", nil)
	code, out, errOut := runCmd(t, "stat", "--url", r.URL())
	require.Equal(t, 0, code, errOut)
	requireStatTables(t, out, "stat-router")
	// Only the management connection: the driver's is closed before the tables.
	conns := regexp.MustCompile(`(?m)^  \d+ +127\.0\.0\.1:\d+ `).FindAllString(out, -1)
	require.Len(t, conns, 2, "the consumer's connection and stat's own:\n%s", out)
}

func TestStatShowsQdrouterdsTables(t *testing.T) {
	p := realpeer.StartQdrouterd(t, nil)
	consumeAt(t, p.URL(), "exclusive.stat", nil)
	code, out, errOut := runCmd(t, "stat", "--url", p.URL())
	require.Equal(t, 0, code, errOut)
	requireStatTables(t, out, "amqp1kit-qdrouterd")
}

func TestStatAuthenticatesAsTheURLSays(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{Users: map[string]string{"admin": "secret"}, DenyAnonymous: true})
	url := strings.Replace(r.URL(), "amqp://", "amqp://admin:secret@", 1)
	consumeAt(t, r.URL(), "exclusive.stat", &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("admin", "secret")})
	code, out, errOut := runCmd(t, "stat", "--url", url)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^  \d+ +127\.0\.0\.1:\d+ +amqp1kit-stat-\d+ +normal +amqp +in +no-security +admin\(PLAIN\) `, out)
	require.NotContains(t, out, "secret")
}

func TestStatOfABrokerSaysQMFIsNotSpoken(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	code, out, errOut := runCmd(t, "stat", "--url", b.URL())
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^product: +qpid-cpp$`, out)
	require.Regexp(t, `(?m)^management: +none shown: qpidd is managed over QMF`, out)
	require.Contains(t, out, "--status names the status page")
	require.NotContains(t, out, "Router Links")
}

func TestStatTableLayout(t *testing.T) {
	var sb strings.Builder
	statTable{title: "T", head: []string{"a", "long head"}, rows: [][]string{{"value", "x"}, {"", "y"}}}.print(&sb)
	require.Equal(t, "T\n  a      long head\n  ==================\n  value  x\n         y\n", sb.String())
	sb.Reset()
	statTable{title: "Empty", head: []string{"a"}}.print(&sb)
	require.Equal(t, "Empty\n", sb.String())
	require.Equal(t, "001:02:03:04", timeLong(uint32(93784)))
	require.Equal(t, []string{"mobile", "a.b", "0"}, []string{addrClass("M0a.b"), addrText("M0a.b"), addrPhase("M0a.b")})
	require.Equal(t, []string{"local", "temp.x", ""}, []string{addrClass("Ltemp.x"), addrText("Ltemp.x"), addrPhase("Ltemp.x")})
}

// With --status, stat shows the fake broker's view from the status page of serve
// --http: its statistics, its queues (with a stored message) and its connections.
func TestStatShowsTheFakeBrokersViewFromTheStatusPage(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := context.Background()
	conn, err := amqp.Dial(ctx, b.URL(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	snd, err := sess.NewSender(ctx, "unicast.stat-depth", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("kept")), nil))

	page := httptest.NewServer(statuspage.New(statuspage.Options{Broker: b}))
	t.Cleanup(page.Close)
	code, out, errOut := runCmd(t, "stat", "--url", b.URL(), "--status", page.URL)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^management: +the status page of amqp1kit serve`, out)
	for _, title := range []string{"Broker Statistics", "Queues and Topics", "Connections"} {
		require.Regexp(t, `(?m)^`+title+`$`, out)
	}
	require.Regexp(t, `(?m)^  unicast\.stat-depth +queue +1 +0 +0 +1 +1 +0 `, out, "the queue's depth 1, one sender, one enqueued")
	require.Regexp(t, `(?m)^  Messages Enqueued +1$`, out)

	// A page of another broker is refused rather than shown.
	other := httptest.NewServer(statuspage.New(statuspage.Options{Broker: fakebroker.RunT(t, nil)}))
	t.Cleanup(other.Close)
	code, _, errOut = runCmd(t, "stat", "--url", b.URL(), "--status", other.URL)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not the one stat connected to")

	code, _, errOut = runCmd(t, "stat", "--url", b.URL(), "--status", "127.0.0.1:8672")
	require.Equal(t, 2, code, "a --status that is no http URL is a usage error")
	require.Contains(t, errOut, "want the status page's URL")
}
