package fakebroker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// guideConf is the deployment guide's qpidd.conf (doc/source/admin/AMQP1.0.rst),
// with a few keys a real file has around it.
const guideConf = `# /etc/qpid/qpidd.conf
auth=no
log-enable=info+   # comments may follow a value
port=0

queue-patterns=exclusive
queue-patterns=unicast
topic-patterns=broadcast
`

func writeConf(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qpidd.conf")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestGuideQpiddConfLoads(t *testing.T) {
	path := writeConf(t, guideConf)
	cfg, err := fakebroker.LoadConfig(path)
	require.NoError(t, err)
	require.Equal(t, []string{"exclusive", "unicast"}, cfg.QueuePatterns)
	require.Equal(t, []string{"broadcast"}, cfg.TopicPatterns)
	require.Equal(t, "0", cfg.Port)
	require.Equal(t, []string{"auth", "log-enable"}, cfg.Ignored)
	require.Equal(t, []string{"info+"}, cfg.Options["log-enable"])

	b := fakebroker.RunT(t, &fakebroker.Options{ConfigFile: path})
	require.True(t, strings.HasPrefix(b.Addr(), "127.0.0.1:"), b.Addr())
	for addr, want := range map[string]fakebroker.Kind{
		"exclusive.openstack.compute.node1":    fakebroker.Queue,
		"unicast.openstack.notifications.info": fakebroker.Queue,
		"broadcast.openstack.compute.all":      fakebroker.Topic,
	} {
		kind, ok := b.Kind(addr)
		require.True(t, ok, addr)
		require.Equal(t, want, kind, addr)
	}
	send(t, connect(t, b.URL()).sender("unicast.openstack.notifications.info"), msg("n"))
	require.Equal(t, 1, b.Depth("unicast.openstack.notifications.info"))
}

func TestConfigPatternsReplaceDefaults(t *testing.T) {
	// qpidd has no built-in patterns: a file with queue patterns only makes no topics.
	b := fakebroker.RunT(t, &fakebroker.Options{ConfigFile: writeConf(t, "queue-patterns=^jobs\\.\n")})
	_, ok := b.Kind("broadcast.x.all")
	require.False(t, ok)
	kind, ok := b.Kind("jobs.build")
	require.True(t, ok)
	require.Equal(t, fakebroker.Queue, kind)
	// Options fields win over the file.
	b = fakebroker.RunT(t, &fakebroker.Options{ConfigFile: writeConf(t, "queue-patterns=x\n"), QueuePatterns: []string{"y"}})
	_, ok = b.Kind("x")
	require.False(t, ok)
}

func TestMalformedConfigIsAClearError(t *testing.T) {
	for name, conf := range map[string]string{
		"no equals":     "queue-patterns exclusive\n",
		"bad key":       "queue patterns=x\n",
		"port":          "port=amqp\n",
		"port range":    "port=70000\n",
		"empty pattern": "topic-patterns=\n",
		"bad pattern":   "queue-patterns=a\\(b\n",
		"backreference": "queue-patterns=\\(a\\)\\1\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConf(t, conf)
			_, err := fakebroker.New(&fakebroker.Options{ConfigFile: path})
			require.Error(t, err)
			require.Contains(t, err.Error(), path)
			require.Contains(t, err.Error(), "line 1")
		})
	}
	_, err := fakebroker.New(&fakebroker.Options{ConfigFile: "/nonexistent/qpidd.conf"})
	require.Error(t, err)
	_, err = fakebroker.New(&fakebroker.Options{TopicPatterns: []string{"[abc"}})
	require.ErrorContains(t, err, `topic pattern "[abc"`)
}
