package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// novaConf is a nova.conf as deployments write them: comments, other sections and
// options, the deprecated [amqp1] group, repeated pre_settled, quotes, "$"
// substitutions and escapes, a "key: value" line, an inline "comment" that is not
// one, a misspelt option, a repeated section and key.
const novaConf = `# nova.conf for a compute node
[DEFAULT]
my_ip = 10.0.0.5
state_path = /var/lib/nova
debug = True
transport_url = amqp://nova:S3cr$$et@ctrl1:5672,nova:S3cr\$et@ctrl2:5672/nova
control_exchange = "nova"
rpc_response_timeout: 90
notification_driver = log

[api]
auth_strategy = keystone

; the AMQP 1.0 driver
[oslo_messaging_amqp]
container_name = nova-compute-$my_ip
idle_timeout = 2
ssl = yes
ssl_ca_file = ${state_path}/ca.pem
pre_settled = rpc-cast
pre_settled = rpc-reply
pre_settled = notify
addressing_mode = routable
rpc_server_credit = 50
default_rpc_exchange = 'rpcx'
sasl_mechanisms = PLAIN # only PLAIN
sslverify = true
control_exchange = not-here

[amqp1]
ssl_cert_file = /etc/nova/cert.pem
ssl_key_file = /etc/nova/key.pem
ssl_key_password = 'k3y pass'
sasl_config_name = nova
container_name = ignored-the-new-group-wins
ssl = ignored-not-in-amqp1

[OSLO_MESSAGING_NOTIFICATIONS]
driver = messagingv2
topics = notifications, nova_notif,
retry = 3
transport_url = amqp://notify@broker:5673/

[oslo_messaging_amqp]
connection_retry_backoff = 3
connection_retry_backoff = 4
`

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nova.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigNovaConf(t *testing.T) {
	c, err := LoadConfig(writeConf(t, novaConf))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		TransportURL:             "amqp://nova:S3cr$et@ctrl1:5672,nova:S3cr$et@ctrl2:5672/nova",
		Options:                  DefaultOptions(),
		NotificationTransportURL: "amqp://notify@broker:5673/",
		NotificationDriver:       []string{"log", "messagingv2"}, // deprecated name first
		NotificationTopics:       []string{"notifications", "nova_notif"},
		NotificationRetry:        3,
		Unknown: []string{"oslo_messaging_amqp.sslverify", "oslo_messaging_amqp.control_exchange",
			"amqp1.ssl"},
	}
	o := &want.Options
	o.ContainerName = "nova-compute-10.0.0.5"
	o.IdleTimeout = 2 * time.Second
	o.SSL = true
	o.SSLCAFile = "/var/lib/nova/ca.pem"
	o.PreSettled = []string{"rpc-cast", "rpc-reply", "notify"}
	o.AddressingMode = "routable"
	o.RPCServerCredit = 50
	o.DefaultRPCExchange = "rpcx"
	o.SASLMechanisms = "PLAIN # only PLAIN"
	o.SSLCertFile = "/etc/nova/cert.pem"
	o.SSLKeyFile = "/etc/nova/key.pem"
	o.SSLKeyPassword = "k3y pass"
	o.SASLConfigName = "nova"
	o.ConnectionRetryBackoff = 4
	o.ControlExchange = "nova"
	o.RPCResponseTimeout = 90 * time.Second
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got\n %+v\nwant\n %+v", *c, want)
	}
	if err := c.Options.Validate(); err != nil {
		t.Error(err)
	}
	u, err := ParseTransportURL(c.TransportURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Hosts) != 2 || u.Hosts[1].Password != "S3cr$et" || u.VirtualHost != "nova" {
		t.Errorf("transport URL parsed as %+v", u)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(writeConf(t, "[DEFAULT]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Options: DefaultOptions(), NotificationTopics: []string{"notifications"}, NotificationRetry: -1}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got %+v\nwant %+v", *c, want)
	}
	c, err = LoadConfig(writeConf(t, ""))
	if err != nil || !reflect.DeepEqual(*c, want) {
		t.Errorf("empty file: %+v, %v", c, err)
	}
}

// configCases are files whose meaning under oslo.config is easy to get wrong. Each
// is also loaded by oslo.config in TestLoadConfigMatchesOsloConfig.
var configCases = []struct {
	name  string
	text  string
	check func(c *Config) bool
}{
	{"repeated pre_settled lines are values; a comma is not a separator",
		"[oslo_messaging_amqp]\npre_settled = rpc-call,notify\npre_settled = Notify\n",
		func(c *Config) bool {
			return reflect.DeepEqual(c.Options.PreSettled, []string{"rpc-call,notify", "Notify"}) &&
				c.Options.preSettledFor("notify") && !c.Options.preSettledFor("rpc-call")
		}},
	{"empty pre_settled pre-settles nothing",
		"[oslo_messaging_amqp]\npre_settled =\n",
		func(c *Config) bool {
			return reflect.DeepEqual(c.Options.PreSettled, []string{""}) && !c.Options.preSettledFor("rpc-cast")
		}},
	{"new group beats the deprecated one, in either order",
		"[amqp1]\nsasl_mechanisms = OLD\n[oslo_messaging_amqp]\nsasl_mechanisms = NEW\n[amqp1]\ntrace = true\nssl_ca_file = ca\n",
		func(c *Config) bool {
			return c.Options.SASLMechanisms == "NEW" && c.Options.Trace && c.Options.SSLCAFile == "ca"
		}},
	{"options without a deprecated group are ignored in [amqp1]",
		"[amqp1]\nssl = true\naddressing_mode = legacy\npseudo_vhost = false\n",
		func(c *Config) bool {
			return !c.Options.SSL && c.Options.AddressingMode == "dynamic" && c.Options.PseudoVhost &&
				reflect.DeepEqual(c.Unknown, []string{"amqp1.ssl", "amqp1.addressing_mode", "amqp1.pseudo_vhost"})
		}},
	{"continuation lines join with newlines, even comment-like ones",
		"[oslo_messaging_amqp]\nsasl_mechanisms = PLAIN\n  EXTERNAL\n\t# not a comment\n\nssl_ca_file = a\n",
		func(c *Config) bool {
			return c.Options.SASLMechanisms == "PLAIN\nEXTERNAL\n# not a comment" && c.Options.SSLCAFile == "a"
		}},
	{"quotes: one matching pair goes",
		"[oslo_messaging_amqp]\ncontainer_name = \"a b\"\nssl_ca_file = 'x\"\nssl_cert_file = \"\"\nssl_key_file = \"\nsasl_config_dir = \"'in'\"\n",
		func(c *Config) bool {
			o := c.Options
			return o.ContainerName == "a b" && o.SSLCAFile == "'x\"" && o.SSLCertFile == "" && o.SSLKeyFile == "" && o.SASLConfigDir == "'in'"
		}},
	{"first separator wins",
		"[oslo_messaging_amqp]\ncontainer_name: a=b\nssl_ca_file = c:d\n",
		func(c *Config) bool { return c.Options.ContainerName == "a=b" && c.Options.SSLCAFile == "c:d" }},
	{"section names fold case except DEFAULT",
		"[Oslo_Messaging_AMQP]\nssl = true\n[default]\ncontrol_exchange = lower\n[DEFAULT]\nrpc_response_timeout = 5\n",
		func(c *Config) bool {
			return c.Options.SSL && c.Options.ControlExchange == "openstack" && c.Options.RPCResponseTimeout == 5*time.Second
		}},
	{"keys are case-sensitive",
		"[oslo_messaging_amqp]\nSSL = true\n",
		func(c *Config) bool {
			return !c.Options.SSL && reflect.DeepEqual(c.Unknown, []string{"oslo_messaging_amqp.SSL"})
		}},
	{"substitutions: escapes, defaults, other groups, non-strings",
		"[DEFAULT]\ncontrol_exchange = ce$rpc_response_timeout\n[oslo_messaging_amqp]\n" +
			"container_name = ${ssl}_${trace}_${pre_settled}_${ssl_key_password}_${idle_timeout}_${control_exchange}_${default_rpc_exchange}\n" +
			"ssl_cert_file = ${oslo_messaging_notifications.topics}|${oslo_messaging_notifications.retry}|${oslo_messaging_notifications.transport_url}\n" +
			"sasl_mechanisms = ${transport_url} $$x \\$y $ ${ $1 ${unclosed\n" +
			"ssl_key_file = ${oslo_messaging_amqp.sasl_config_name}-$sasl_config_name\nsasl_config_name = n\n",
		func(c *Config) bool {
			o := c.Options
			return o.ContainerName == "False_False_['rpc-cast', 'rpc-reply']__0_ce60_" &&
				o.SSLCertFile == "['notifications']|-1|" &&
				o.SASLMechanisms == "rabbit:// $x $y $ ${ $1 ${unclosed" &&
				o.SSLKeyFile == "n-n"
		}},
	{"substitution of the service's own options set in the file",
		"[DEFAULT]\nmy_ip = 10.1.2.3\nstate_path = $my_ip/x\ntransport_url = amqp://$my_ip/\n[oslo_messaging_amqp]\nssl_ca_file = ${state_path}.pem\n",
		func(c *Config) bool {
			return c.TransportURL == "amqp://10.1.2.3/" && c.Options.SSLCAFile == "10.1.2.3/x.pem"
		}},
	{"unknown options are not evaluated",
		"[oslo_messaging_amqp]\nbogus = $nowhere\nssl_verify = maybe\n",
		func(c *Config) bool { return len(c.Unknown) == 2 }},
	{"notifications: deprecated names",
		"[DEFAULT]\nnotification_topics = a,b\nnotification_transport_url = amqp://old/\nnotification_driver = d1\nnotification_driver = d2\n",
		func(c *Config) bool {
			return reflect.DeepEqual(c.NotificationTopics, []string{"a", "b"}) && c.NotificationTransportURL == "amqp://old/" &&
				reflect.DeepEqual(c.NotificationDriver, []string{"d1", "d2"})
		}},
	{"notifications: rpc_notifier2 topics, new names win",
		"[rpc_notifier2]\ntopics = r2\n[DEFAULT]\nnotification_topics = old\nnotification_transport_url = amqp://old/\n[oslo_messaging_notifications]\ntransport_url = amqp://new/\n",
		func(c *Config) bool {
			return reflect.DeepEqual(c.NotificationTopics, []string{"r2"}) && c.NotificationTransportURL == "amqp://new/"
		}},
	{"topics list edge cases",
		"[oslo_messaging_notifications]\ntopics = , a ,, b ,,\nretry = -5\n",
		func(c *Config) bool {
			return reflect.DeepEqual(c.NotificationTopics, []string{"", "a", "", "b"}) && c.NotificationRetry == -5
		}},
	{"empty topics",
		"[oslo_messaging_notifications]\ntopics =\n",
		func(c *Config) bool { return c.NotificationTopics != nil && len(c.NotificationTopics) == 0 }},
	{"CRLF and CR line ends, trailing spaces",
		"[oslo_messaging_amqp]\r\nssl = true  \r\ntrace = on\rcontainer_name = c \t\r\n",
		func(c *Config) bool { return c.Options.SSL && c.Options.Trace && c.Options.ContainerName == "c" }},
	{"integers as Python reads them",
		"[oslo_messaging_amqp]\nidle_timeout = +1_0\nreply_link_credit = 007\n",
		func(c *Config) bool { return c.Options.IdleTimeout == 10*time.Second && c.Options.ReplyLinkCredit == 7 }},
}

func TestLoadConfigCases(t *testing.T) {
	for _, c := range configCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := LoadConfig(writeConf(t, c.text))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(got) {
				t.Errorf("got %+v", *got)
			}
		})
	}
}

// badConfigs are files oslo.config refuses (when the option is read), except those
// marked goOnly: oslo.config reads an empty integer as None, and substitutes an
// option the service registered (here state_path, registered as nova does) with its
// value, which we cannot know.
var badConfigs = []struct {
	name, text, field string
	line              int
	reason            string
	goOnly            bool
}{
	{"assignment before a section", "ssl = true\n", "config file", 1, "Section must be started", false},
	{"unclosed section", "[DEFAULT\n", "config file", 1, "must end with ]", false},
	{"empty section name", "[]\n", "config file", 1, "Empty section name", false},
	{"continuation with nothing to continue", "[DEFAULT]\n  x\n", "config file", 2, "Unexpected continuation", false},
	{"continuation after a comment", "[DEFAULT]\n# c\n  x\n", "config file", 3, "Unexpected continuation", false},
	{"no separator", "[DEFAULT]\njust words\n", "config file", 2, "No ':' or '='", false},
	{"empty key", "[DEFAULT]\n= v\n", "config file", 2, "Key cannot be empty", false},
	{"bad boolean", "[DEFAULT]\n\n[oslo_messaging_amqp]\nssl = maybe\n", "oslo_messaging_amqp.ssl", 4, "not a boolean", false},
	{"bad boolean in the deprecated group", "[amqp1]\ntrace = 2\n", "amqp1.trace", 2, "not a boolean", false},
	{"inline comment on an integer", "[oslo_messaging_amqp]\nlink_retry_delay = 3 # seconds\n", "oslo_messaging_amqp.link_retry_delay", 2, "not an integer", false},
	{"below the minimum", "[oslo_messaging_amqp]\nrpc_server_credit = 0\n", "oslo_messaging_amqp.rpc_server_credit", 2, "greater than or equal to 1", false},
	{"timeout below the minimum", "[oslo_messaging_amqp]\ndefault_send_timeout = 4\n", "oslo_messaging_amqp.default_send_timeout", 2, "greater than or equal to 5", false},
	{"empty integer", "[oslo_messaging_amqp]\nidle_timeout =\n", "oslo_messaging_amqp.idle_timeout", 2, "empty value", true},
	{"last value counts", "[oslo_messaging_amqp]\nssl = true\nssl = sometimes\n", "oslo_messaging_amqp.ssl", 3, "not a boolean", false},
	{"bad [DEFAULT] integer", "[DEFAULT]\nrpc_response_timeout = 1m\n", "DEFAULT.rpc_response_timeout", 2, "not an integer", false},
	{"bad notification retry", "[oslo_messaging_notifications]\nretry = never\n", "oslo_messaging_notifications.retry", 2, "not an integer", false},
	{"unknown substitution", "[oslo_messaging_amqp]\nssl_ca_file = $state_path/ca.pem\n", "oslo_messaging_amqp.ssl_ca_file", 2, "$state_path", true},
	{"substitution of an unknown option of the driver's group", "[oslo_messaging_amqp]\nbogus = x\nssl_ca_file = $bogus\n", "oslo_messaging_amqp.ssl_ca_file", 3, "$bogus", false},
	{"substitution with a dot", "[oslo_messaging_amqp]\ncontainer_name = $ssl.x\n", "oslo_messaging_amqp.container_name", 2, "$ssl.x", false},
	{"substitution in the deprecated group", "[amqp1]\nssl_ca_file = ${nope}\n", "amqp1.ssl_ca_file", 2, "$nope", false},
	{"substitution of a bad value", "[oslo_messaging_amqp]\nidle_timeout = x\ncontainer_name = $idle_timeout\n", "oslo_messaging_amqp.idle_timeout", 2, "not an integer", false},
	{"recursive substitution", "[oslo_messaging_amqp]\ncontainer_name = $sasl_mechanisms\nsasl_mechanisms = $container_name\n", "oslo_messaging_amqp.container_name", 2, "recursive", false},
}

func TestLoadConfigErrors(t *testing.T) {
	for _, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			path := writeConf(t, c.text)
			got, err := LoadConfig(path)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %+v, %v; want a *ConfigError", got, err)
			}
			if ce.Field != c.field || ce.File != path || ce.Line != c.line || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("got field %q file %q line %d reason %q\nwant %q, %q, %d, ~%q", ce.Field, ce.File, ce.Line, ce.Reason, c.field, path, c.line, c.reason)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%s:%d: %s: ", path, c.line, c.field)) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.conf"))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want a *ConfigError wrapping fs.ErrNotExist", err)
	}
}

// pyLoadConfig loads files with oslo.config, with the options registered as
// oslo.messaging registers them (and my_ip/state_path, as nova does).
const pyLoadConfig = `
import json, sys
from oslo_config import cfg
from oslo_messaging import transport
from oslo_messaging.rpc import client
from oslo_messaging.notify import notifier
from oslo_messaging._drivers.amqp1_driver import opts
def s(v):
    if v is None: return ""
    if isinstance(v, list): return repr(v)
    return str(v)
out = []
for path in json.load(sys.stdin):
    try:
        conf = cfg.ConfigOpts()
        conf.register_opts(transport._transport_opts)
        conf.register_opts(client._client_opts)
        conf.register_opts([cfg.StrOpt("my_ip"), cfg.StrOpt("state_path")])
        conf.register_opts(notifier._notifier_opts, group="oslo_messaging_notifications")
        conf.register_opts(opts.amqp1_opts, group="oslo_messaging_amqp")
        conf(args=["--config-file", path], project="x", default_config_files=[], default_config_dirs=[])
        r = {"transport_url": s(conf.transport_url), "control_exchange": s(conf.control_exchange),
             "rpc_response_timeout": s(conf.rpc_response_timeout)}
        for o in opts.amqp1_opts:
            r[o.name] = s(getattr(conf.oslo_messaging_amqp, o.name))
        n = conf.oslo_messaging_notifications
        r["notify.driver"] = s(n.driver)
        r["notify.topics"] = s(n.topics)
        r["notify.retry"] = s(n.retry)
        r["notify.transport_url"] = s(n.transport_url)
        out.append({"values": r})
    except BaseException as e:
        out.append({"error": type(e).__name__ + ": " + str(e)[:200]})
print(json.dumps(out))
`

// goConfigValues renders c as pyLoadConfig renders oslo's values.
func goConfigValues(c *Config) map[string]string {
	r := map[string]string{
		"transport_url":        c.TransportURL,
		"notify.driver":        pyListRepr(c.NotificationDriver),
		"notify.topics":        pyListRepr(c.NotificationTopics),
		"notify.retry":         fmt.Sprint(c.NotificationRetry),
		"notify.transport_url": c.NotificationTransportURL,
	}
	if r["transport_url"] == "" {
		r["transport_url"] = "rabbit://"
	}
	for i := range optionTable {
		r[optionTable[i].name] = optionTable[i].pyValue(&c.Options)
	}
	return r
}

func TestLoadConfigMatchesOsloConfig(t *testing.T) {
	texts := []string{novaConf}
	for _, c := range configCases {
		texts = append(texts, c.text)
	}
	goOnly := map[int]bool{}
	for _, c := range badConfigs {
		goOnly[len(texts)] = c.goOnly
		texts = append(texts, c.text)
	}
	dir := t.TempDir()
	var paths []string
	for i, text := range texts {
		p := filepath.Join(dir, fmt.Sprintf("case%02d.conf", i))
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var py []struct {
		Values map[string]string
		Error  string
	}
	runOslo(t, pyLoadConfig, paths, &py)
	if len(py) != len(paths) {
		t.Fatalf("python returned %d results for %d files", len(py), len(paths))
	}
	for i, p := range paths {
		c, err := LoadConfig(p)
		if goOnly[i] {
			if err == nil || py[i].Error != "" {
				t.Errorf("file %d:\n%s\ngo error: %v (want one)\npython error: %q (want none)", i, texts[i], err, py[i].Error)
			}
			continue
		}
		if err != nil || py[i].Error != "" {
			if err == nil || py[i].Error == "" {
				t.Errorf("file %d:\n%s\ngo error: %v\npython error: %s", i, texts[i], err, py[i].Error)
			}
			continue
		}
		mine := goConfigValues(c)
		for k, pv := range py[i].Values {
			if mine[k] != pv {
				t.Errorf("file %d, %s: go %q, python %q", i, k, mine[k], pv)
			}
		}
		if len(mine) != len(py[i].Values) {
			a, _ := json.Marshal(mine)
			b, _ := json.Marshal(py[i].Values)
			t.Errorf("file %d: go has %d values, python %d\n%s\n%s", i, len(mine), len(py[i].Values), a, b)
		}
	}
	t.Logf("%d files compared with oslo.config", len(paths))
}
