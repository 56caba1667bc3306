package driver

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTransportURL(t *testing.T) {
	lh := []Host{{Hostname: "localhost", Port: 5672}}
	cases := []struct {
		url  string
		want TransportURL
	}{
		{"amqp://", TransportURL{Scheme: "amqp", Hosts: lh}},
		{"amqp:///", TransportURL{Scheme: "amqp", Hosts: lh}},
		{"amqp://h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h"}}}},
		{"AMQP://H:5673", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "H", Port: 5673}}}},
		{"amqp+ssl://h:0/", TransportURL{Scheme: "amqp+ssl", Hosts: []Host{{Hostname: "h"}}}},
		// credentials: last '@' splits, first ':' splits user and password
		{"amqp://joe@myrealm:secret@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Username: "joe@myrealm", Password: "secret"}}}},
		{"amqp://u:p:a:s@h:1", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Port: 1, Username: "u", Password: "p:a:s"}}}},
		{"amqp://u@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Username: "u"}}}},
		{"amqp://:pw@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Password: "pw"}}}},
		// percent-encoding in credentials and vhost, not in host names
		{"amqp://us%40er:p%3Aw%2Fd%25@h%41/v%2Fh", TransportURL{Scheme: "amqp", VirtualHost: "v/h",
			Hosts: []Host{{Hostname: "h%41", Username: "us@er", Password: "p:w/d%"}}}},
		{"amqp://u:%E2%82%AC%zz%4@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Username: "u", Password: "€%zz%4"}}}},
		{"amqp://u:a%E2%82b@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Username: "u", Password: "a\uFFFDb"}}}},
		{"amqp://u:+x+@h", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Username: "u", Password: "+x+"}}}},
		// IPv6
		{"amqp://[::1]:5672", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "::1", Port: 5672}}}},
		{"amqp://u:p@[fe80::1%25eth0]", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "fe80::1%25eth0", Username: "u", Password: "p"}}}},
		{"amqp://[::1]:", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "::1"}}}},
		// Python checks the brackets of the FIRST host of the whole netloc only
		{"amqp://[::1]:1,[::2]:99", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "::1", Port: 1}, {Hostname: "::2", Port: 99}}}},
		{"amqp://u@[::1]:1,[::2]junk", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "::1", Port: 1, Username: "u"}, {Hostname: "::2"}}}},
		// several hosts, each with its own credentials; empty entries skipped
		{"amqp://a:1@h1:5672,b:2@h2,,h3:5673/", TransportURL{Scheme: "amqp", Hosts: []Host{
			{Hostname: "h1", Port: 5672, Username: "a", Password: "1"},
			{Hostname: "h2", Username: "b", Password: "2"},
			{Hostname: "h3", Port: 5673},
		}}},
		// empty port
		{"amqp://h:", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h"}}}},
		{"amqp://h: 42 ", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Port: 42}}}},
		{"amqp://h:+5_672", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h", Port: 5672}}}},
		// vhost: "" and "/" mean none; only the leading "/" goes
		{"amqp://h/", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h"}}}},
		{"amqp://h//", TransportURL{Scheme: "amqp", VirtualHost: "/", Hosts: []Host{{Hostname: "h"}}}},
		{"amqp://h/vh", TransportURL{Scheme: "amqp", VirtualHost: "vh", Hosts: []Host{{Hostname: "h"}}}},
		{"amqp://h/a/b;c", TransportURL{Scheme: "amqp", VirtualHost: "a/b;c", Hosts: []Host{{Hostname: "h"}}}},
		{"amqp:/vh", TransportURL{Scheme: "amqp", VirtualHost: "vh", Hosts: lh}},
		// query: repeated keys kept, empty values and bare keys dropped, '+' is space
		{"amqp://h/vh?ssl=1&pre_settled=rpc-call&pre_settled=notify&empty=&bare&&a+b=c%20d+e#frag",
			TransportURL{Scheme: "amqp", VirtualHost: "vh", Hosts: []Host{{Hostname: "h"}},
				Query: map[string][]string{"ssl": {"1"}, "pre_settled": {"rpc-call", "notify"}, "a b": {"c d e"}}}},
		{"amqp://h?x=1/2", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h"}}, Query: map[string][]string{"x": {"1/2"}}}},
		{"amqp://h#frag/x?y=1", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h"}}}},
		// urlsplit drops leading control characters and tabs/newlines anywhere
		{" \x00amqp://h\n1:5\t672", TransportURL{Scheme: "amqp", Hosts: []Host{{Hostname: "h1", Port: 5672}}}},
		// hosts without a name
		{"amqp://u@", TransportURL{Scheme: "amqp", Hosts: []Host{{Username: "u"}}}},
		{"amqp://:5673", TransportURL{Scheme: "amqp", Hosts: []Host{{Port: 5673}}}},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			got, err := ParseTransportURL(c.url)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %#v\nwant %#v", *got, c.want)
			}
		})
	}
}

func TestParseTransportURLErrors(t *testing.T) {
	cases := []struct {
		url, field, value, reason string
	}{
		{"rabbit://h", "transport_url scheme", "rabbit", "not an AMQP 1.0"},
		{"amqps://h", "transport_url scheme", "amqps", "not an AMQP 1.0"},
		{"kafka+amqp://h", "transport_url scheme", "kafka+amqp", "not an AMQP 1.0"},
		{"h:5672", "transport_url scheme", "h", "not an AMQP 1.0"},
		{"//h:5672", "transport_url", "", "no scheme"},
		{"", "transport_url", "", "no scheme"},
		{"1amqp://h", "transport_url", "", "no scheme"},
		{"am_qp://h", "transport_url", "", "no scheme"},
		{"amqp://h:port", "transport_url port", "port", "bad port"},
		{"amqp://h:5672:1", "transport_url port", "5672:1", "bad port"},
		{"amqp://h:1.5", "transport_url port", "1.5", "bad port"},
		{"amqp://h:0x10", "transport_url port", "0x10", "bad port"},
		{"amqp://h:65536", "transport_url port", "65536", "out of range"},
		{"amqp://h:-1", "transport_url port", "-1", "out of range"},
		{"amqp://h: ", "transport_url port", " ", "not an integer"},
		{"amqp://h1,h2:x", "transport_url port", "x", "bad port"},
		{"amqp://[::1", "transport_url host", "[::1", "invalid IPv6"},
		{"amqp://::1]", "transport_url host", "::1]", "invalid IPv6"},
		{"amqp://[1.2.3.4]", "transport_url host", "1.2.3.4", "IPv4"},
		{"amqp://[nothost]", "transport_url host", "nothost", "not an IP"},
		{"amqp://[::1]x", "transport_url host", "[::1]x", "between ']' and ':'"},
		{"amqp://h1,[::1]", "transport_url host", "h1,[::1]", "text before '['"},
		{"amqp://[::1],[::2]:99", "transport_url host", "[::1],[::2]:99", "between ']' and ':'"},
		{"amqp://[::1]:1,[::2", "transport_url host", "[::2", "no closing"},
		{"amqp://[vz.x]", "transport_url host", "vz.x", "IPvFuture"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			u, err := ParseTransportURL(c.url)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %+v, %v; want a *ConfigError", u, err)
			}
			if ce.Field != c.field || ce.Value != c.value || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("got field %q value %q reason %q; want %q, %q, ~%q", ce.Field, ce.Value, ce.Reason, c.field, c.value, c.reason)
			}
			if !strings.HasPrefix(err.Error(), "amqp1kit driver: "+c.field+": ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestParseTransportURLIPvFuture(t *testing.T) {
	u, err := ParseTransportURL("amqp://[v1.fe80::a+en1]:5")
	if err != nil {
		t.Fatal(err)
	}
	if h := u.Hosts[0]; h.Hostname != "v1.fe80::a+en1" || h.Port != 5 {
		t.Errorf("got %+v", h)
	}
}

func TestConfigErrorFormat(t *testing.T) {
	base := errors.New("boom")
	e := &ConfigError{Field: "ssl", Value: "maybe", Reason: "not a boolean"}
	if got, want := e.Error(), `amqp1kit driver: ssl: not a boolean (value "maybe")`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &ConfigError{Field: "oslo_messaging_amqp.ssl", Value: "x", Reason: "bad", Err: base, File: "/etc/nova/nova.conf", Line: 7}
	if got, want := e.Error(), `amqp1kit driver: /etc/nova/nova.conf:7: oslo_messaging_amqp.ssl: bad (value "x"): boom`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, base) {
		t.Error("errors.Is does not reach the underlying error")
	}
}

func TestTransportURLStringRoundTrip(t *testing.T) {
	urls := []string{
		"amqp://",
		"amqp://h",
		"amqp+ssl://joe@myrealm:se%3Acr@t@[::1]:5673,h1:5672,h3/v%20h/x?ssl=1&pre_settled=rpc-call&pre_settled=a+b%26c",
		"amqp://:pw@h//",
		"amqp://u%2C1:p%2C%40@h?ssl_key_password=s3cr%3Dt",
		"amqp://h/%C3%A9t%C3%A9?x=%E2%82%AC",
	}
	for _, s := range urls {
		u, err := ParseTransportURL(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		again, err := ParseTransportURL(u.String())
		if err != nil {
			t.Fatalf("%s → %s: %v", s, u.String(), err)
		}
		if !reflect.DeepEqual(u, again) {
			t.Errorf("%s → %s →\n %#v\nwant %#v", s, u.String(), again, u)
		}
	}
	u, _ := ParseTransportURL("AMQP://joe@realm:p%40ss@[::1]:5672,h/vh?b=2&a=1&a=x y")
	if got, want := u.String(), "amqp://joe%40realm:p%40ss@[::1]:5672,h/vh?a=1&a=x+y&b=2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestTransportURLRedacted(t *testing.T) {
	u, err := ParseTransportURL("amqp://joe:s3cret@h1,:only@h2,nopass@h3/vh?ssl_key_password=k3y&ssl=1")
	if err != nil {
		t.Fatal(err)
	}
	r := u.Redacted()
	if want := "amqp://joe:***@h1,:***@h2,nopass@h3/vh?ssl=1&ssl_key_password=***"; r != want {
		t.Errorf("Redacted() = %q, want %q", r, want)
	}
	for _, secret := range []string{"s3cret", "only", "k3y"} {
		if strings.Contains(r, secret) {
			t.Errorf("Redacted() %q leaks %q", r, secret)
		}
		if !strings.Contains(u.String(), secret) {
			t.Errorf("String() %q lost %q", u.String(), secret)
		}
	}
}

func TestHostAddress(t *testing.T) {
	cases := []struct {
		h    Host
		want string
	}{
		{Host{Hostname: "h"}, "h:5672"},
		{Host{Hostname: "h", Port: 5671}, "h:5671"},
		{Host{Hostname: "::1"}, "[::1]:5672"},
		{Host{Hostname: "fe80::1%eth0", Port: 1}, "[fe80::1%eth0]:1"},
		{Host{}, ":5672"},
	}
	for _, c := range cases {
		if got := c.h.Address(); got != c.want {
			t.Errorf("%+v.Address() = %q, want %q", c.h, got, c.want)
		}
	}
}

func TestSASLUser(t *testing.T) {
	cases := []struct {
		realm, user, want string
	}{
		{"", "joe", "joe"},
		{"myrealm", "joe", "joe@myrealm"},
		{"myrealm", "joe@other", "joe@other"},
		{"myrealm", "", ""},
	}
	for _, c := range cases {
		o := DefaultOptions()
		o.SASLDefaultRealm = c.realm
		if got := o.saslUser(Host{Username: c.user}); got != c.want {
			t.Errorf("realm %q user %q: got %q, want %q", c.realm, c.user, got, c.want)
		}
	}
}

func TestApplyQuery(t *testing.T) {
	u, err := ParseTransportURL("amqp://h/?ssl=1&rpc_server_credit=7&pre_settled=rpc-call&pre_settled=notify&idle_timeout=4&addressing_mode=legacy&sasl_mechanisms=PLAIN+EXTERNAL")
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	if err := u.ApplyQuery(&o); err != nil {
		t.Fatal(err)
	}
	want := DefaultOptions()
	want.SSL = true
	want.RPCServerCredit = 7
	want.PreSettled = []string{"rpc-call", "notify"}
	want.IdleTimeout = 4 * time.Second
	want.AddressingMode = "legacy"
	want.SASLMechanisms = "PLAIN EXTERNAL"
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}
	if !o.preSettledFor("notify") || o.preSettledFor("rpc-cast") {
		t.Error("pre_settled from the query not applied")
	}
}

func TestApplyQueryErrors(t *testing.T) {
	cases := []struct {
		query, field, reason string
	}{
		{"bogus=1", "bogus", "unknown option in the transport URL query"},
		{"control_exchange=nova", "control_exchange", "unknown option"}, // [DEFAULT], not the driver's group
		{"rpc_response_timeout=5", "rpc_response_timeout", "unknown option"},
		{"SSL=1", "SSL", "unknown option"},
		{"ssl=maybe", "ssl", "not a boolean"},
		{"rpc_server_credit=0", "rpc_server_credit", "greater than or equal to 1"},
		{"link_retry_delay=soon", "link_retry_delay", "not an integer"},
		{"ssl=1&ssl=0", "ssl", "not a boolean"}, // joined: "1,0"
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			u, err := ParseTransportURL("amqp://h/?" + c.query)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			err = u.ApplyQuery(&o)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if ce.Field != c.field || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("got %q / %q, want %q / ~%q", ce.Field, ce.Reason, c.field, c.reason)
			}
		})
	}
}

// pyParseURL runs oslo's TransportURL.parse.
const pyParseURL = `
import json, sys
from oslo_config import cfg
from oslo_messaging import transport
conf = cfg.ConfigOpts()
out = []
for url in json.load(sys.stdin):
    try:
        u = transport.TransportURL.parse(conf, url)
    except Exception as e:
        out.append({"error": type(e).__name__ + ": " + str(e)})
        continue
    out.append({"scheme": u.transport, "vhost": u.virtual_host or "", "query": u.query,
                "hosts": [{"hostname": h.hostname or "", "port": h.port or 0,
                           "username": h.username or "", "password": h.password or ""} for h in u.hosts]})
print(json.dumps(out))
`

func TestParseTransportURLMatchesPython(t *testing.T) {
	urls := []string{
		"amqp://",
		"amqp://h",
		"AMQP://H:5673/",
		"amqp+ssl://h:0",
		"amqp://joe@myrealm:secret@h",
		"amqp://u:p:a:s@h:1",
		"amqp://us%40er:p%3Aw%2Fd%25@h%41/v%2Fh",
		"amqp://u:%E2%82%AC%zz%4@h",
		"amqp://u:a%E2%82b%F0%9F%98%ED%A0%80c@h",
		"amqp://u:%C3%28%E0%80%AF%F4%90%80%80z@h",
		"amqp://[::1]:5672",
		"amqp://u:p@[fe80::1%25eth0]",
		"amqp://[::1],[::2]:99",
		"amqp://[::1]:1,[::2]:99",
		"amqp://u@[::1]:1,[::2]junk",
		"amqp://[::1]:1,[::2",
		"amqp://a:1@h1:5672,b:2@h2,,h3:5673/",
		"amqp://h:",
		"amqp://h: 42 ",
		"amqp://h:+5_672",
		"amqp://h//",
		"amqp://h/a/b;c",
		"amqp:/vh",
		"amqp://h/vh?ssl=1&pre_settled=rpc-call&pre_settled=notify&empty=&bare&&a+b=c%20d+e#frag",
		"amqp://h#frag/x?y=1",
		" \x00amqp://h\n1:5\t672",
		"amqp://u@",
		"amqp://:5673",
		"amqp://[v1.fe80::a+en1]:5",
		// errors
		"//h:5672",
		"1amqp://h",
		"amqp://h:port",
		"amqp://h:5672:1",
		"amqp://h:1.5",
		"amqp://h:0x10",
		"amqp://h: ",
		"amqp://[::1",
		"amqp://::1]",
		"amqp://[1.2.3.4]",
		"amqp://[nothost]",
		"amqp://[::1]x",
		"amqp://h1,[::1]",
		"amqp://[vz.x]",
		"amqp://u[1]@h",
	}
	type pyHost struct {
		Hostname, Username, Password string
		Port                         int
	}
	type pyURL struct {
		Error  string
		Scheme string
		Vhost  string
		Query  map[string]string
		Hosts  []pyHost
	}
	var got []pyURL
	runOslo(t, pyParseURL, urls, &got)
	if len(got) != len(urls) {
		t.Fatalf("python returned %d results for %d URLs", len(got), len(urls))
	}
	for i, s := range urls {
		py := got[i]
		u, err := ParseTransportURL(s)
		if py.Error != "" || err != nil {
			if py.Error == "" || err == nil {
				t.Errorf("%q: go error %v, python error %q", s, err, py.Error)
			}
			continue
		}
		if len(py.Hosts) == 0 { // Python leaves the default to controller.py:Hosts
			py.Hosts = []pyHost{{Hostname: "localhost", Port: 5672}}
		}
		var q map[string]string
		if u.Query != nil {
			q = map[string]string{}
			for k, v := range u.Query {
				q[k] = strings.Join(v, ",")
			}
		}
		if len(py.Query) == 0 {
			py.Query = nil
		}
		var hosts []pyHost
		for _, h := range u.Hosts {
			hosts = append(hosts, pyHost{h.Hostname, h.Username, h.Password, h.Port})
		}
		mine := pyURL{Scheme: u.Scheme, Vhost: u.VirtualHost, Query: q, Hosts: hosts}
		if !reflect.DeepEqual(mine, py) {
			t.Errorf("%q:\n go     %+v\n python %+v", s, mine, py)
		}
	}
	t.Logf("%d URLs compared with oslo.messaging", len(urls))
}

func TestParseTransportURLBeyondPython(t *testing.T) {
	// Python parses these and fails only when connecting (or never): we refuse them
	// at once. Checked against Python in TestPythonAcceptsWhatWeRefuse.
	for _, s := range []string{"amqp://h:65536", "amqp://h:-1", "rabbit://h"} {
		if _, err := ParseTransportURL(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestPythonAcceptsWhatWeRefuse(t *testing.T) {
	var got []struct{ Error string }
	runOslo(t, pyParseURL, []string{"amqp://h:65536", "amqp://h:-1", "rabbit://h"}, &got)
	for i, r := range got {
		if r.Error != "" {
			t.Errorf("case %d: Python now refuses it too (%s): update the doc of ParseTransportURL", i, r.Error)
		}
	}
}
