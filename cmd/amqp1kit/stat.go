package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/alecthomas/kong"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/qdmanagement"
)

// stat prints what the intermediary says about itself in its open frame and the
// addressing mode the driver picks; then, for a router (the fake one or qdrouterd), the
// tables qdstat shows (-g, -c, -l, -a), read over qdrouterd's management protocol.
// qpidd's management is QMF, which stat does not speak: for the fake broker, the
// broker's view (its queues and topics, its connections) is read from the status page
// of amqp1kit serve --http (--status); for another broker the open frame is all it
// shows.
type statCmd struct {
	connFlags `embed:"" set:"default_url=amqp://127.0.0.1:5672"`
	Status    string `name:"status" placeholder:"URL" help:"The status page of 'amqp1kit serve --http' (http://127.0.0.1:8672): for the fake broker, its queues, topics and connections are read there."`
}

func (c *statCmd) Validate() error { return c.resolve(false) }

func (c *statCmd) Run(ctx context.Context, kctx *kong.Context) error {
	t, a, err := c.open(ctx, kctx.Stderr)
	if err != nil {
		return err
	}
	product, version, _ := t.PeerProduct()
	mode := "routable"
	if a.Legacy() {
		mode = "legacy"
	}
	out := kctx.Stdout
	fmt.Fprintf(out, "url:             %s\n", t.URL().Redacted())
	fmt.Fprintf(out, "product:         %s\n", orNone(product))
	fmt.Fprintf(out, "version:         %s\n", orNone(version))
	fmt.Fprintf(out, "addressing:      %s (addressing_mode %s)\n", mode, t.Options().AddressingMode)
	fmt.Fprintf(out, "rpc anycast:     %s\n", a.Anycast(driver.Target{Topic: "TOPIC"}, driver.ServiceRPC))
	fmt.Fprintf(out, "notify anycast:  %s\n", a.Anycast(driver.Target{Topic: "TOPIC.PRIORITY"}, driver.ServiceNotify))
	// The driver's connection is closed first, so that the tables show the
	// management connection only, as qdstat's show its own.
	t.Close()

	switch product {
	case "qpid-dispatch-router":
	case "qpid-cpp":
		if c.Status == "" {
			fmt.Fprintf(out, "\nmanagement:      none shown: qpidd is managed over QMF (qpid-stat, qpid-config), which stat does not speak;\n"+
				"                 for the fake broker, --status names the status page of amqp1kit serve --http\n")
			return nil
		}
		return c.brokerView(ctx, out, t.URL().Hosts)
	default:
		fmt.Fprintf(out, "\nmanagement:      none shown: %s is not qdrouterd, whose $management node stat speaks\n", orNone(product))
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	mc, err := c.management(mctx)
	if err != nil {
		return err
	}
	defer mc.Close()
	var tables []statTable
	for _, f := range []func(context.Context, *qdmanagement.Client) (statTable, error){
		routerTable, connectionTable, linkTable, addressTable,
	} {
		tb, err := f(mctx, mc)
		if err != nil {
			return fmt.Errorf("management: %w", err)
		}
		tables = append(tables, tb)
	}
	for _, tb := range tables {
		fmt.Fprintln(out)
		tb.print(out)
	}
	return nil
}

// management opens a management client on the bus's hosts, the first that answers,
// with the URL's credentials (SASL PLAIN) and TLS options.
func (c *statCmd) management(ctx context.Context) (*qdmanagement.Client, error) {
	u, err := driver.ParseTransportURL(c.url)
	if err != nil {
		return nil, usageError{err}
	}
	o := c.opts
	if err := u.ApplyQuery(&o); err != nil {
		return nil, usageError{err}
	}
	var errs []error
	for _, h := range u.Hosts {
		co := &amqp.ConnOptions{ContainerID: "amqp1kit-stat-" + strconv.Itoa(os.Getpid()), IdleTimeout: -1}
		if h.Username != "" {
			co.SASLType = amqp.SASLTypePlain(h.Username, h.Password)
		}
		if u.VirtualHost != "" && !o.PseudoVhost {
			co.HostName = u.VirtualHost
		}
		scheme := "amqp"
		if o.SSL || o.SSLCAFile != "" || o.SSLCertFile != "" {
			scheme = "amqps"
			if co.TLSConfig, err = statTLS(&o, h.Hostname); err != nil {
				return nil, usageError{err}
			}
		}
		mc, err := qdmanagement.Dial(ctx, scheme+"://"+h.Address(), &qdmanagement.Options{Conn: co})
		if err == nil {
			return mc, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", h.Address(), err))
	}
	return nil, fmt.Errorf("management: %w", errors.Join(errs...))
}

// statTLS is the TLS the driver would use (ssl_ca_file's CAs, else the system's; the
// client certificate of ssl_cert_file and ssl_key_file).
func statTLS(o *driver.Options, host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if o.SSLCAFile != "" {
		pemBytes, err := os.ReadFile(o.SSLCAFile)
		if err != nil {
			return nil, fmt.Errorf("ssl_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("ssl_ca_file %s: no PEM certificate", o.SSLCAFile)
		}
		tc.RootCAs = pool
	}
	if o.SSLCertFile != "" {
		if o.SSLKeyPassword != "" {
			return nil, errors.New("stat's management connection cannot use an encrypted key (ssl_key_password)")
		}
		key := o.SSLKeyFile
		if key == "" {
			key = o.SSLCertFile
		}
		cert, err := tls.LoadX509KeyPair(o.SSLCertFile, key)
		if err != nil {
			return nil, fmt.Errorf("ssl_cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// statTable is a table printed as qdstat prints its own: a title, a header, a line of
// =, and left-aligned columns two spaces apart, indented by two.
type statTable struct {
	title string
	head  []string
	rows  [][]string
}

func (tb statTable) print(w io.Writer) {
	fmt.Fprintln(w, tb.title)
	if len(tb.rows) == 0 {
		return
	}
	widths := make([]int, len(tb.head))
	for i, h := range tb.head {
		widths[i] = len(h)
		for _, r := range tb.rows {
			if i < len(r) && len(r[i]) > widths[i] {
				widths[i] = len(r[i])
			}
		}
	}
	line := func(cells []string) string {
		var sb strings.Builder
		sb.WriteString("  ")
		for i, c := range cells {
			sb.WriteString(c)
			if i < len(cells)-1 {
				sb.WriteString(strings.Repeat(" ", widths[i]+2-len(c)))
			}
		}
		return sb.String()
	}
	fmt.Fprintln(w, line(tb.head))
	total := 0
	for _, wd := range widths {
		total += wd + 2
	}
	fmt.Fprintln(w, "  "+strings.Repeat("=", total))
	for _, r := range tb.rows {
		fmt.Fprintln(w, line(r))
	}
}

// cell formats a value as qdstat does: integers plainly, nulls empty.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

func count(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case uint32:
		return uint64(x)
	case int64:
		return uint64(max(x, 0))
	case int32:
		return uint64(max(x, 0))
	}
	return 0
}

// timeLong is qdstat's duration format, DDD:HH:MM:SS.
func timeLong(v any) string {
	d := time.Duration(count(v)) * time.Second
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	return fmt.Sprintf("%03d:%02d:%02d:%02d", days, d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second)
}

func routerTable(ctx context.Context, mc *qdmanagement.Client) (statTable, error) {
	t, err := mc.Query(ctx, qdmanagement.TypeRouter)
	if err != nil {
		return statTable{}, err
	}
	tb := statTable{title: "Router Statistics", head: []string{"attr", "value"}}
	rows := t.Maps()
	if len(rows) == 0 {
		return tb, nil
	}
	r := rows[0]
	for _, a := range []struct{ label, attr string }{
		{"Version", "version"}, {"Mode", "mode"}, {"Router Id", "id"}, {"Worker Threads", "workerThreads"},
		{"Uptime", "uptimeSeconds"}, {"Area", "area"}, {"Link Routes", "linkRouteCount"},
		{"Auto Links", "autoLinkCount"}, {"Links", "linkCount"}, {"Nodes", "nodeCount"},
		{"Addresses", "addrCount"}, {"Connections", "connectionCount"},
		{"Presettled Count", "presettledDeliveries"}, {"Dropped Presettled Count", "droppedPresettledDeliveries"},
		{"Accepted Count", "acceptedDeliveries"}, {"Rejected Count", "rejectedDeliveries"},
		{"Released Count", "releasedDeliveries"}, {"Modified Count", "modifiedDeliveries"},
		{"Ingress Count", "deliveriesIngress"}, {"Egress Count", "deliveriesEgress"},
		{"Transit Count", "deliveriesTransit"},
	} {
		v, ok := r[a.attr]
		if !ok {
			continue
		}
		s := cell(v)
		if a.attr == "uptimeSeconds" {
			s = timeLong(v)
		}
		tb.rows = append(tb.rows, []string{a.label, s})
	}
	return tb, nil
}

func connectionTable(ctx context.Context, mc *qdmanagement.Client) (statTable, error) {
	t, err := mc.Query(ctx, qdmanagement.TypeConnection)
	if err != nil {
		return statTable{}, err
	}
	tb := statTable{title: "Connections", head: []string{"id", "host", "container", "role", "proto", "dir",
		"security", "authentication", "tenant", "last dlv", "uptime"}}
	for _, c := range t.Maps() {
		security := "no-security"
		if c["isEncrypted"] == true {
			security = fmt.Sprintf("%s(%s)", cell(c["sslProto"]), cell(c["sslCipher"]))
		}
		auth := "no-auth"
		if c["isAuthenticated"] == true {
			switch sasl := cell(c["sasl"]); sasl {
			case "ANONYMOUS":
				auth = "anonymous-user"
			case "EXTERNAL":
				auth = fmt.Sprintf("%s(x.509)", cell(c["user"]))
			default:
				auth = fmt.Sprintf("%s(%s)", cell(c["user"]), sasl)
			}
		}
		last := "-"
		if v, ok := c["lastDlvSeconds"]; ok {
			last = timeLong(v)
		}
		tb.rows = append(tb.rows, []string{cell(c["identity"]), cell(c["host"]), cell(c["container"]), cell(c["role"]),
			cell(c["protocol"]), cell(c["dir"]), security, auth, strings.TrimSuffix(cell(c["tenant"]), "/"), last,
			timeLong(c["uptimeSeconds"])})
	}
	return tb, nil
}

// addrClass, addrText and addrPhase split an address key as qdstat does.
func addrClass(key string) string {
	if key == "" {
		return ""
	}
	switch key[0] {
	case 'M':
		return "mobile"
	case 'R':
		return "router"
	case 'A':
		return "area"
	case 'L':
		return "local"
	case 'T':
		return "topo"
	case 'C', 'E':
		return "link-in"
	case 'D', 'F':
		return "link-out"
	case 'H':
		return "edge"
	}
	return "unknown: " + key[:1]
}

func addrText(key string) string {
	switch {
	case key == "":
		return ""
	case key[0] == 'M' && len(key) >= 2:
		return key[2:]
	}
	return key[1:]
}

func addrPhase(key string) string {
	if len(key) >= 2 && key[0] == 'M' {
		return key[1:2]
	}
	return ""
}

func linkTable(ctx context.Context, mc *qdmanagement.Client) (statTable, error) {
	t, err := mc.Query(ctx, qdmanagement.TypeLink, "linkType", "linkDir", "connectionId", "identity", "peer",
		"owningAddr", "capacity", "undeliveredCount", "unsettledCount", "deliveryCount", "presettledCount",
		"droppedPresettledCount", "acceptedCount", "rejectedCount", "releasedCount", "modifiedCount", "creditAvailable")
	if err != nil {
		return statTable{}, err
	}
	tb := statTable{title: "Router Links", head: []string{"type", "dir", "conn id", "id", "peer", "class", "addr",
		"phs", "cap", "undel", "unsett", "deliv", "presett", "psdrop", "acc", "rej", "rel", "mod", "cred"}}
	for _, l := range t.Rows {
		key := cell(l[5])
		row := []string{cell(l[0]), cell(l[1]), cell(l[2]), cell(l[3]), cell(l[4]), addrClass(key), addrText(key), addrPhase(key)}
		for _, v := range l[6:] {
			row = append(row, cell(v))
		}
		tb.rows = append(tb.rows, row)
	}
	return tb, nil
}

func addressTable(ctx context.Context, mc *qdmanagement.Client) (statTable, error) {
	t, err := mc.Query(ctx, qdmanagement.TypeAddress, "name", "distribution", "subscriberCount", "remoteCount",
		"deliveriesIngress", "deliveriesEgress", "deliveriesTransit")
	if err != nil {
		return statTable{}, err
	}
	tb := statTable{title: "Router Addresses", head: []string{"class", "addr", "phs", "distrib", "local", "remote",
		"in", "out", "thru"}}
	for _, a := range t.Rows {
		key := cell(a[0])
		row := []string{addrClass(key), addrText(key), addrPhase(key)}
		for _, v := range a[1:] {
			row = append(row, cell(v))
		}
		tb.rows = append(tb.rows, row)
	}
	sort.SliceStable(tb.rows, func(i, j int) bool { return tb.rows[i][1] < tb.rows[j][1] })
	return tb, nil
}
