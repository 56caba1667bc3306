package interop

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// The real programs the fakes imitate, as columns of the matrix: qdrouterd 1.19.0 and
// qpidd 1.39.0, each in a process of its own (internal/testenv/realpeer), configured as the
// deployment guide configures them (its address table for qdrouterd; no
// authentication and the exclusive, unicast and broadcast patterns for qpidd).
//
// What the tests see of them is what their users see: for qdrouterd its management,
// through qdstat (the address table with each address's local consumers, the links
// with their connections' containers); qpidd offers no tool here, so its column waits
// as its users do, by retrying (a first call to each server, fanout probes until every
// server has one) and by relying on the broker's storing what is sent to a queue.

// The real programs log every frame, as the fakes trace theirs, so that a failing case
// shows what went over the wire and the cases that count frames can count them:
// qdrouterd's PROTOCOL module and qpidd's Protocol category at trace level. It costs
// the columns little (measured: qdrouterd ~20 s and qpidd ~12 s either way).
const (
	qdrouterdTraceConfig = "\nlog {\n    module: PROTOCOL\n    enable: trace+\n}\n"
	qpiddTraceConfig     = "log-enable=notice+\nlog-enable=trace+:Protocol\n"
)

// startQdrouterd runs the real qdrouterd 1.19.0 with the guide's configuration (it
// says qpid-dispatch-router: routable addresses). A fanout reaches every server
// (multicast); a notification a listener releases goes back to its notifier, which
// sends it again (end-to-end settlement), as through the fake router.
func startQdrouterd(t *testing.T) *backend {
	b := newBackend("qdrouterd")
	b.multicast, b.redelivery, b.legacy = true, true, false
	p := realpeer.StartQdrouterd(t, &realpeer.Options{Config: realpeer.DefaultQdrouterdConfig + qdrouterdTraceConfig})
	b.url = p.URL()
	b.useProgramLog(p)
	q := qdstat{addr: p.Addr()}
	b.inspect = &inspection{
		waitForConsumers: q.waitForConsumers,
		links:            q.links,
		consumed:         q.consumed,
	}
	return b
}

// startQpidd runs the real qpidd 1.39.0 with the guide's configuration (it says
// qpid-cpp: legacy addresses; topics for fanout; a released message is delivered
// again). Nothing in it can be inspected here (b.inspect is nil).
func startQpidd(t *testing.T) *backend {
	b := newBackend("qpidd")
	b.multicast, b.redelivery, b.legacy = true, true, true
	p := realpeer.StartQpidd(t, &realpeer.Options{Config: realpeer.DefaultQpiddConfig + qpiddTraceConfig})
	b.url = p.URL()
	b.useProgramLog(p)
	return b
}

// useProgramLog makes the program's log b's trace.
func (b *backend) useProgramLog(p *realpeer.Peer) {
	b.trace, b.frames = programLog{filepath.Join(p.Dir(), string(p.Program())+".log")}, true
	b.traceWhat = b.name + "'s log with its frames (<- received from a client, -> sent to it)"
}

// programLog is a real program's log file as a traceLog: a mark is a byte offset.
type programLog struct{ path string }

func (l programLog) mark() int {
	st, err := os.Stat(l.path)
	if err != nil {
		return 0
	}
	return int(st.Size())
}

func (l programLog) since(mark, n int) string {
	f, err := os.Open(l.path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)\n", err)
	}
	defer f.Close()
	if _, err := f.Seek(int64(mark), io.SeekStart); err != nil {
		return fmt.Sprintf("(log: %v)\n", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log: %v)\n", err)
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	var sb strings.Builder
	if len(lines) > n {
		fmt.Fprintf(&sb, "(%d lines left out)\n", len(lines)-n)
		lines = lines[len(lines)-n:]
	}
	for _, line := range lines {
		sb.WriteString(truncate(line, 600))
		sb.WriteByte('\n')
	}
	return sb.String()
}

// qdstat asks a real qdrouterd what its users ask it, with its qdstat tool
// (realpeer.QdstatCommand): -a for the address table, -l for the links, -c for the
// connections, each as CSV.
type qdstat struct{ addr string }

// query runs qdstat -b ADDR <what> --csv and returns its table's rows as maps from
// column names to values.
func (q qdstat) query(ctx context.Context, what string) ([]map[string]string, error) {
	cmd, err := realpeer.QdstatCommand("-b", q.addr, what, "--csv", "-t", "10")
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qdstat %s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return nil, fmt.Errorf("qdstat %s: %w", what, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("qdstat %s: %w: %s", what, err, truncate(strings.TrimSpace(stderr.String()), 500))
	}
	return parseQdstatCSV(stdout.String())
}

// parseQdstatCSV reads qdstat's --csv output: a date, the router's id, a title, then
// the table, whose first row (the first line that starts with a quote) names the
// columns.
func parseQdstatCSV(out string) ([]map[string]string, error) {
	i := strings.Index(out, "\n\"")
	if i < 0 {
		return nil, fmt.Errorf("qdstat: no table in its output: %s", truncate(out, 500))
	}
	r := csv.NewReader(strings.NewReader(out[i+1:]))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("qdstat: %w: %s", err, truncate(out, 500))
	}
	header := records[0]
	var rows []map[string]string
	for _, rec := range records[1:] {
		row := map[string]string{}
		for j, v := range rec {
			if j < len(header) {
				row[header[j]] = v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// mobileConsumers returns the local consumers of each mobile address (every address a
// client names) in qdstat -a's rows.
func mobileConsumers(rows []map[string]string) map[string]int {
	out := map[string]int{}
	for _, r := range rows {
		if r["class"] != "mobile" {
			continue
		}
		n, _ := strconv.Atoi(r["local"])
		out[r["addr"]] += n
	}
	return out
}

// waitForConsumers polls qdstat -a until addr has n local consumers, as qdrouterd's
// own system tests wait for an address (wait_address): address propagation is
// asynchronous, and until then a sender gets no credit.
// A qdstat that fails three times in a row (it cannot reach the router, or cannot
// run) ends the wait with its error.
func (q qdstat) waitForConsumers(ctx context.Context, addr string, n int) error {
	have, failures := 0, 0
	for {
		rows, err := q.query(ctx, "-a")
		if err == nil {
			failures = 0
			if have = mobileConsumers(rows)[addr]; have >= n {
				return nil
			}
		} else if failures++; failures == 3 || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("qdstat -a: %q has %d local consumers, want %d: %w", addr, have, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// consumed lists the mobile addresses that have consumers, as "address(n)".
func (q qdstat) consumed() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := q.query(ctx, "-a")
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for a, n := range mobileConsumers(rows) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%s(%d)", a, n))
		}
	}
	sort.Strings(out)
	return out
}

// links lists the links on mobile addresses (qdstat -l), with their connection's
// container (qdstat -c) and the client's role (a link into the router is a client's
// sender). Reply links and the senders to them are on the router's temporary
// addresses, and management's on $management: both are left out. qdstat does not
// show link names.
func (q qdstat) links() ([]linkInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns, err := q.query(ctx, "-c")
	if err != nil {
		return nil, err
	}
	containers := map[string]string{}
	for _, c := range conns {
		containers[c["id"]] = c["container"]
	}
	rows, err := q.query(ctx, "-l")
	if err != nil {
		return nil, err
	}
	var out []linkInfo
	for _, l := range rows {
		if l["type"] != "endpoint" || l["class"] != "mobile" || l["addr"] == "$management" {
			continue
		}
		role := "receiver"
		if l["dir"] == "in" {
			role = "sender"
		}
		out = append(out, linkInfo{container: containers[l["conn id"]], role: role, address: l["addr"]})
	}
	return out, nil
}

// qdstat's CSV, as qdrouterd 1.19.0's qdstat -a --csv prints it, is read into rows by
// column name; mobile addresses count their local consumers.
func TestParseQdstatCSV(t *testing.T) {
	out := `2026-12-07 06:42:20.313273 UTC
amqp1kit-qdrouterd

Router Addresses
"class","addr","phs","distrib","pri","local","remote","in","out","thru","fallback"
"local","$_management_internal",,"closest","-","0","0","0","0","0","0"
"mobile","$management","0","closest","-","0","0","19","0","0","0"
"mobile","openstack.org/om/rpc/anycast/openstack/x","0","balanced","-","2","0","0","0","0","0"
"mobile","interop.ex/tópic, with ""quotes""","0","closest","-","1","0","0","0","0","0"
"local","temp.n+slvJN31oBxIyy",,"balanced","-","1","0","0","1","0","0"
`
	rows, err := parseQdstatCSV(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[4]["addr"] != "temp.n+slvJN31oBxIyy" || rows[4]["phs"] != "" {
		t.Fatalf("rows: %v", rows)
	}
	got := mobileConsumers(rows)
	want := map[string]int{"$management": 0, "openstack.org/om/rpc/anycast/openstack/x": 2, `interop.ex/tópic, with "quotes"`: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumers: got %v, want %v", got, want)
	}
	if _, err := parseQdstatCSV("qdstat: connection refused\n"); err == nil {
		t.Fatal("no error for output without a table")
	}
}
