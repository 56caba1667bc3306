package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/statuspage"
)

// brokerView prints the fake broker's queues, topics and connections, read from the
// status page at c.Status (its /api/broker). The page must show the broker the
// transport URL names (one of hosts): a page of another broker is an error, not a
// view of the wrong one.
func (c *statCmd) brokerView(ctx context.Context, out io.Writer, hosts []driver.Host) error {
	api, err := statusAPI(c.Status, "/api/broker")
	if err != nil {
		return usageError{err}
	}
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, api, nil)
	if err != nil {
		return usageError{fmt.Errorf("--status: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status page: GET %s: %s (does amqp1kit serve --http serve the broker?)", api, resp.Status)
	}
	var b statuspage.BrokerState
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&b); err != nil {
		return fmt.Errorf("status page: GET %s: %w", api, err)
	}
	if !sameBroker(b.URL, hosts) {
		return fmt.Errorf("status page %s shows the broker at %s, not the one stat connected to", c.Status, b.URL)
	}
	fmt.Fprintf(out, "\nmanagement:      the status page of amqp1kit serve (%s)\n", c.Status)
	for _, tb := range brokerTables(b) {
		fmt.Fprintln(out)
		tb.print(out)
	}
	return nil
}

// statusAPI is the URL of path on the status page at page (http://host:port, with
// or without a path of its own).
func statusAPI(page, path string) (string, error) {
	u, err := url.Parse(page)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--status %q: want the status page's URL, such as http://127.0.0.1:8672", page)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// sameBroker reports whether the broker at brokerURL (amqp://host:port, as the page
// shows it) is one of hosts. A loopback host matches any loopback name.
func sameBroker(brokerURL string, hosts []driver.Host) bool {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return false
	}
	for _, h := range hosts {
		if h.Port != 0 && strconv.Itoa(h.Port) != u.Port() {
			continue
		}
		if h.Hostname == u.Hostname() || (isLoopback(h.Hostname) && isLoopback(u.Hostname())) {
			return true
		}
	}
	return false
}

// brokerTables are the broker's view as tables: the queues and topics (as qpid-stat
// -q shows queues), then the client connections.
func brokerTables(b statuspage.BrokerState) []statTable {
	t := b.Totals
	general := statTable{
		title: "Broker Statistics",
		head:  []string{"attr", "value"},
		rows: [][]string{
			{"Container", b.ID},
			{"Messages Received", strconv.FormatUint(t.Received, 10)},
			{"Messages Enqueued", strconv.FormatUint(t.Enqueued, 10)},
			{"Messages Delivered", strconv.FormatUint(t.Delivered, 10)},
			{"Messages Acknowledged", strconv.FormatUint(t.Acked, 10)},
			{"Messages Redelivered", strconv.FormatUint(t.Redelivered, 10)},
			{"Messages Expired", strconv.FormatUint(t.Expired, 10)},
			{"Messages Dropped", strconv.FormatUint(t.Dropped, 10)},
			{"Messages Refused", strconv.FormatUint(t.Refused, 10)},
		},
	}
	nodes := statTable{
		title: "Queues and Topics",
		head:  []string{"name", "kind", "depth", "acquired", "consumers", "senders", "enqueued", "dequeued", "redelivered", "expired", "bytes", "limit"},
	}
	for _, n := range b.Nodes {
		limit := "-"
		if n.MaxBytes > 0 {
			limit = strconv.FormatInt(n.MaxBytes, 10)
		}
		nodes.rows = append(nodes.rows, []string{
			n.Name, string(n.Kind), strconv.Itoa(n.Depth), strconv.Itoa(n.Acquired), strconv.Itoa(n.Consumers), strconv.Itoa(n.Senders),
			strconv.FormatUint(n.Counts.Enqueued, 10), strconv.FormatUint(n.Dequeued, 10),
			strconv.FormatUint(n.Counts.Redelivered, 10), strconv.FormatUint(n.Counts.Expired, 10),
			strconv.FormatInt(n.Bytes, 10), limit,
		})
	}
	conns := statTable{title: "Connections", head: []string{"id", "host", "container", "sasl", "user", "tls", "links"}}
	for _, cn := range b.Connections {
		tlsCol := "no"
		if cn.TLS {
			tlsCol = "yes"
		}
		conns.rows = append(conns.rows, []string{
			strconv.FormatUint(cn.ID, 10), cn.Remote, cn.Container, orDash(cn.Mechanism), orDash(cn.User), tlsCol, strconv.Itoa(cn.Links),
		})
	}
	return []statTable{general, nodes, conns}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
