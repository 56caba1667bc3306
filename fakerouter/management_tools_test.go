package fakerouter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
	"github.com/amqp1kit/amqp1kit/internal/testenv/realpeer"
)

// The real qdstat and qdmanage against the fake router and the real qdrouterd 1.19.0,
// side by side: the same clients do the same things on both, the tools run in the same
// order, and their outputs must be the same once what legitimately differs is masked
// (times, memory, worker threads, ephemeral ports, container ids, the random part of
// dynamic addresses, and connection and link ids, which are renumbered in order of
// appearance).

// realRouterID is the id realpeer's configuration gives qdrouterd; the fake takes it
// too, so that the tools print the same router id.
const realRouterID = "amqp1kit-qdrouterd"

// toolOutput runs a management tool against addr; the test skips (fails under CI=true)
// when the tool or Python's Proton binding is missing.
func toolOutput(t *testing.T, tool, addr string, args ...string) string {
	t.Helper()
	mk := realpeer.QdstatCommand
	if tool == "qdmanage" {
		mk = realpeer.QdmanageCommand
	}
	cmd, err := mk(append([]string{"-b", addr, "-t", "10"}, args...)...)
	if err != nil {
		peers.Missing(t, "%s: %v", tool, err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "No module named 'proton'") {
			peers.Missing(t, "%s needs Python's Proton binding (Debian python3-qpid-proton): %s", tool, stderr.String())
		}
		if _, ok := err.(*exec.ExitError); !ok {
			peers.Missing(t, "%s: %v", tool, err)
		}
		t.Fatalf("%s %s against %s: %v\n%s%s", tool, strings.Join(args, " "), addr, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// managementScenario has one client do, through the router at url, what both routers
// are then inspected after: consumers on a multicast, an anycast and a dynamic
// address with credit they give by hand, two pre-settled multicast messages received,
// an anycast message accepted and one rejected, and a sender that gets no credit (its
// address has no consumer).
func managementScenario(t *testing.T, url string) {
	c := connect(t, url)
	ctx := testCtx(t)
	manual := func(addr string, credit uint32, dynamic bool) *amqp.Receiver {
		r, err := c.sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: -1, DynamicAddress: dynamic})
		require.NoError(t, err)
		require.NoError(t, r.IssueCredit(credit))
		return r
	}
	fanout := manual("broadcast.x.all", 10, false)
	anycast := manual("openstack.org/om/rpc/anycast/x", 20, false)
	manual("", 5, true)

	cast := c.presettledSender("broadcast.x.all")
	for i := range 2 {
		require.NoError(t, cast.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint("cast ", i))), nil))
		_, err := fanout.Receive(ctx, nil)
		require.NoError(t, err)
	}
	call := c.sender("openstack.org/om/rpc/anycast/x")
	for i, settle := range []func(*amqp.Message) error{
		func(m *amqp.Message) error { return anycast.AcceptMessage(ctx, m) },
		func(m *amqp.Message) error { return anycast.RejectMessage(ctx, m, nil) },
	} {
		done := make(chan error, 1)
		go func() { done <- call.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint("call ", i))), nil) }()
		m, err := anycast.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, settle(m))
		err = <-done
		if i == 1 {
			require.ErrorContains(t, err, "rejected")
		} else {
			require.NoError(t, err)
		}
	}
	c.sender("unicast.nobody")
}

// toolRun is one invocation of a tool and how its output is compared.
type toolRun struct {
	tool string
	args []string
}

var managementToolRuns = []toolRun{
	{"qdstat", []string{"-g"}},
	{"qdstat", []string{"-c"}},
	{"qdstat", []string{"-l"}},
	{"qdstat", []string{"-a"}},
	{"qdstat", []string{"--links", "--verbose"}},
	{"qdstat", []string{"-a", "--verbose"}},
	{"qdstat", []string{"-p"}},
	{"qdstat", []string{"--autolinks"}},
	{"qdstat", []string{"--linkroutes"}},
	{"qdstat", []string{"-n"}},
	{"qdstat", []string{"-e"}},
	{"qdstat", []string{"--vhosts"}},
	{"qdstat", []string{"--vhoststats"}},
	{"qdmanage", []string{"query", "--type", "router"}},
	{"qdmanage", []string{"query", "--type", "connection"}},
	{"qdmanage", []string{"query", "--type", "link"}},
	{"qdmanage", []string{"query", "--type", "address"}},
	{"qdmanage", []string{"query", "--type", "linkRoute"}},
	{"qdmanage", []string{"query", "--type", "autoLink"}},
	{"qdmanage", []string{"query", "--type", "listener"}},
	{"qdmanage", []string{"query", "--type", "router.address"}},
	{"qdmanage", []string{"query", "--type", "org.apache.qpid.dispatch.router.address"}},
	{"qdmanage", []string{"get-mgmt-nodes"}},
	{"qdmanage", []string{"get-types"}},
	{"qdmanage", []string{"get-operations"}},
	{"qdmanage", []string{"get-attributes", "--type", "listener"}},
	{"qdmanage", []string{"get-schema"}},
	{"qdmanage", []string{"read", "--type", "router.config.address", "--name", "address/2"}},
	{"qdmanage", []string{"read", "--name", "self"}},
}

func TestManagementToolsSameAsQdrouterd(t *testing.T) {
	real := realpeer.StartQdrouterd(t, nil)
	fake := fakerouter.RunT(t, &fakerouter.Options{ID: realRouterID})

	managementScenario(t, real.URL())
	managementScenario(t, fake.URL())

	for _, run := range managementToolRuns {
		name := run.tool + " " + strings.Join(run.args, " ")
		want := toolOutput(t, run.tool, real.Addr(), run.args...)
		got := toolOutput(t, run.tool, fake.Addr(), run.args...)
		var w, g string
		if run.tool == "qdstat" {
			w, g = normalizeQdstat(t, want), normalizeQdstat(t, got)
		} else {
			w, g = normalizeQdmanage(t, want), normalizeQdmanage(t, got)
		}
		if w != g {
			t.Errorf("%s: the fake's output differs from qdrouterd's once normalized\n--- qdrouterd:\n%s\n--- fake:\n%s\n--- qdrouterd normalized:\n%s\n--- fake normalized:\n%s",
				name, want, got, w, g)
		}
	}
}

// qdstatTable is one table qdstat printed.
type qdstatTable struct {
	title string
	head  []string
	rows  [][]string
}

var headSplit = regexp.MustCompile(`\S+(?: \S+)*`)

// parseQdstat reads qdstat's tables: a title line, a header line whose names start
// the columns, a line of =, then the rows, cut at the header's column positions.
func parseQdstat(t *testing.T, out string) []qdstatTable {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var tables []qdstatTable
	for i := 0; i+2 < len(lines); i++ {
		if !strings.HasPrefix(lines[i+2], "  ==") {
			continue
		}
		head := lines[i+1]
		locs := headSplit.FindAllStringIndex(head, -1)
		tb := qdstatTable{title: lines[i]}
		for _, l := range locs {
			tb.head = append(tb.head, head[l[0]:l[1]])
		}
		j := i + 3
		for ; j < len(lines) && strings.HasPrefix(lines[j], "  ") && strings.TrimSpace(lines[j]) != ""; j++ {
			row := make([]string, len(locs))
			for k, l := range locs {
				end := len(lines[j])
				if k+1 < len(locs) {
					end = min(locs[k+1][0], end)
				}
				if l[0] < end {
					row[k] = strings.TrimSpace(lines[j][l[0]:end])
				}
			}
			tb.rows = append(tb.rows, row)
		}
		tables = append(tables, tb)
		i = j - 1
	}
	return tables
}

var dateLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC$`)

// qdstatText is what qdstat printed outside its tables (No AutoLinks found, Router is
// Standalone...), without its date line.
func qdstatText(out string) string {
	var keep []string
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		if i+2 < len(lines) && strings.HasPrefix(lines[i+2], "  ==") {
			for i += 3; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
			}
			i--
			continue
		}
		if !dateLine.MatchString(lines[i]) && strings.TrimSpace(lines[i]) != "" {
			keep = append(keep, lines[i])
		}
	}
	return strings.Join(keep, "\n")
}

var (
	uuidRE      = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	tempRE      = regexp.MustCompile(`temp\.[A-Za-z0-9+/_=-]+`)
	hostPortRE  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	maskedAttrs = map[string]bool{"Uptime": true, "VmSize": true, "Worker Threads": true, "Accepted Count": true,
		// qdrouterd counts the probe realpeer makes to see that it is up.
		"Connections Processed": true}
	// Columns whose values are times, addresses, or container ids.
	maskedColumns = map[string]bool{"host": true, "container": true, "last dlv": true, "uptime": true, "blkd": true,
		"name": true} // link names: go-amqp names links at random
	// Columns that are ids: renumbered in order of appearance.
	idColumns = map[string]bool{"id": true, "conn id": true}
)

func maskText(s string) string {
	s = uuidRE.ReplaceAllString(s, "UUID")
	s = tempRE.ReplaceAllString(s, "temp.*")
	return hostPortRE.ReplaceAllString(s, "127.0.0.1:PORT")
}

// normalizeQdstat renders qdstat's tables with what legitimately differs masked.
func normalizeQdstat(t *testing.T, out string) string {
	var sb strings.Builder
	sb.WriteString(qdstatText(out) + "\n")
	ids := map[string]string{}
	for _, tb := range parseQdstat(t, out) {
		fmt.Fprintf(&sb, "%s\n%s\n", tb.title, strings.Join(tb.head, " | "))
		var rows []string
		for _, row := range tb.rows {
			cells := make([]string, len(row))
			for k, cell := range row {
				h := tb.head[k]
				switch {
				case maskedColumns[h]:
					cell = "*"
				case idColumns[h] && cell != "":
					if ids[h+cell] == "" {
						ids[h+cell] = fmt.Sprintf("#%d", len(ids)+1)
					}
					cell = ids[h+cell]
				case h == "value" && maskedAttrs[row[0]]:
					cell = "*"
				case (h == "unsett" || h == "acc") && strings.Contains(strings.Join(row, " "), "$management"):
					// A management request in flight may or may not be counted
					// yet by qdrouterd (its agent races the core's settlement).
					cell = "*"
				}
				cells[k] = maskText(cell)
			}
			rows = append(rows, strings.Join(cells, " | "))
		}
		if tb.title == "Router Addresses" {
			sort.Strings(rows) // the masked dynamic addresses
		}
		sb.WriteString(strings.Join(rows, "\n") + "\n")
	}
	return sb.String()
}

// Attributes whose values are times, memory, threads, ports, container ids, or ids.
var maskedJSON = map[string]bool{
	"uptimeSeconds": true, "memoryUsage": true, "workerThreads": true,
	"host": true, "container": true, "zeroCreditSeconds": true, "port": true,
}

var jsonIDs = map[string]bool{"identity": true, "connectionId": true}

// normalizeQdmanage renders qdmanage's JSON with what legitimately differs masked.
func normalizeQdmanage(t *testing.T, out string) string {
	var v any
	require.NoError(t, json.Unmarshal([]byte(out), &v), "qdmanage printed:\n%s", out)
	ids := map[string]string{}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				x[k] = walk(k, x[k])
			}
			// go-amqp names links at random.
			if x["type"] == "org.apache.qpid.dispatch.router.link" {
				x["name"], x["linkName"] = "*", "*"
			}
			// qdrouterd leaves out a connection's last delivery in its first second.
			delete(x, "lastDlvSeconds")
			// A management request in flight may or may not be counted yet by
			// qdrouterd (its agent races the core's settlement of the request).
			if x["owningAddr"] == "M0$management" {
				x["unsettledCount"], x["acceptedCount"] = "*", "*"
			}
			if _, ok := x["acceptedDeliveries"]; ok {
				x["acceptedDeliveries"] = "*"
			}
			return x
		case []any:
			for i, e := range x {
				x[i] = walk(key, e)
			}
			return x
		case string:
			if maskedJSON[key] {
				return "*"
			}
			if jsonIDs[key] && isDigits(x) {
				if ids[key+x] == "" {
					ids[key+x] = fmt.Sprintf("#%d", len(ids)+1)
				}
				return ids[key+x]
			}
			return maskText(x)
		case float64:
			if maskedJSON[key] {
				return "*"
			}
		}
		return v
	}
	v = walk("", v)
	if l, ok := v.([]any); ok {
		// Dynamic addresses are masked, so order the entities by their rendering.
		var keyed []string
		for _, e := range l {
			b, _ := json.Marshal(e)
			keyed = append(keyed, string(b))
		}
		if len(keyed) > 0 && strings.Contains(strings.Join(keyed, ""), "temp.*") {
			sort.Strings(keyed)
		}
		return strings.Join(keyed, "\n") + "\n"
	}
	b, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	return string(b) + "\n"
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
