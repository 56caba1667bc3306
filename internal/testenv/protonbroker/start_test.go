package protonbroker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeBroker writes a shell script that stands in for the broker. The tests that use
// it do not run in parallel: a fork elsewhere in the process while the script is open
// for writing makes its exec fail with "text file busy" (ETXTBSY).
func fakeBroker(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return p
}

func TestStartFails(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"exits", "echo 'listen error: no' >&2; exit 3",
			[]string{"exited (exit status 3) before it listened", "\tlisten error: no"}},
		{"wrong first line", "echo hello; echo more; exec sleep 60",
			[]string{`printed "hello", not "broker listening on PORT"`, "\thello"}},
		{"bad port", "echo 'broker listening on x'; exec sleep 60",
			[]string{`printed "broker listening on x"`}},
		{"silent", "echo 'starting' >&2; exec sleep 60",
			[]string{"did not say it listens within 300ms", "\tstarting"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := fakeBroker(t, c.body)
			var out []string
			b, err := start(bin, &Options{Output: func(l string) { out = append(out, l) }}, 300*time.Millisecond)
			require.Nil(t, b)
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotEmpty(t, out, "Output got the lines")
		})
	}
}

func TestCloseAfterCrash(t *testing.T) {
	bin := fakeBroker(t, "echo 'broker listening on 5672'; sleep 0.5; echo 'crashed' >&2; exit 1")
	b, err := start(bin, nil, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "amqp://127.0.0.1:5672", b.URL())
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake broker did not exit")
	}
	err = b.Close()
	require.ErrorIs(t, err, errExited)
	require.Contains(t, err.Error(), "exit status 1")
	require.Contains(t, err.Error(), "\tcrashed")
}

func TestFindBinaryFromEnv(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-broker")
	t.Setenv(EnvBinary, missing)
	_, err := findBinary()
	require.ErrorContains(t, err, "$"+EnvBinary)
	require.ErrorContains(t, err, "no-such-broker")

	bin := fakeBroker(t, "exit 0")
	t.Setenv(EnvBinary, bin)
	got, err := findBinary()
	require.NoError(t, err)
	require.Equal(t, bin, got)
}

func TestFindScript(t *testing.T) {
	p, err := findScript()
	require.NoError(t, err)
	require.True(t, filepath.IsAbs(p), p)
	require.True(t, strings.HasSuffix(filepath.ToSlash(p), "/"+ScriptPath), p)
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(l string) { got = append(got, l) }}
	for _, s := range []string{"a\r\nb", "c\n", "\nd\ne", "f"} {
		n, err := w.Write([]byte(s))
		require.NoError(t, err)
		require.Equal(t, len(s), n)
	}
	require.Equal(t, []string{"a", "bc", "", "d"}, got)
	w.flush()
	require.Equal(t, []string{"a", "bc", "", "d", "ef"}, got)
}
