package realpeer

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/internal/testenv/peers"
)

// A port found taken by the time the program binds it is replaced by another: the
// first port picked here is held by a listener of the test.
func TestStartPicksAnotherPortWhenTaken(t *testing.T) {
	if _, err := Qdrouterd.Binary(); err != nil {
		peers.Missing(t, "%v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	var picked []int
	orig := pickPort
	defer func() { pickPort = orig }()
	pickPort = func() (int, error) {
		if len(picked) == 0 {
			picked = append(picked, taken)
			return taken, nil
		}
		p, err := orig()
		picked = append(picked, p)
		return p, err
	}
	r, err := Start(Qdrouterd, &Options{Dir: t.TempDir()})
	require.NoError(t, err)
	defer r.Close()
	require.Len(t, picked, 2)
	require.Equal(t, picked[1], r.Port())
	require.NotEqual(t, taken, r.Port())
}

// A peer that dies by itself is a failure that Close reports, quoting its log.
func TestCloseAfterCrash(t *testing.T) {
	t.Parallel()
	if _, err := Qdrouterd.Binary(); err != nil {
		peers.Missing(t, "%v", err)
	}
	r, err := Start(Qdrouterd, nil)
	require.NoError(t, err)
	require.NoError(t, r.cmd.Process.Kill())
	select {
	case <-r.exited:
	case <-time.After(closeTimeout):
		t.Fatal("the killed qdrouterd was not reaped")
	}
	err = r.Close()
	require.ErrorIs(t, err, errExited)
	require.ErrorContains(t, err, "Router started")
	require.NoDirExists(t, r.Dir(), "Close removes the directory Start made, crash or not")
}

// A program that is not AMQP never passes for ready: Start gives up at its timeout,
// kills it, and says what it waited for.
func TestStartTimesOut(t *testing.T) {
	t.Parallel()
	// A shell that listens on nothing stands in for the program.
	bin := filepath.Join(t.TempDir(), "qdrouterd")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho starting\nexec sleep 60\n"), 0o755))
	r, err := launch(Qdrouterd, bin, &Options{Config: "${PORT}", Dir: t.TempDir(), StartTimeout: 300 * time.Millisecond}, 1)
	require.Nil(t, r)
	require.ErrorContains(t, err, "was not ready within")
	require.ErrorContains(t, err, "it does not listen on the port")
	require.ErrorContains(t, err, "\tstarting")
}

func TestAMQPAnswers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, reply string
		ok          bool
	}{
		{"sasl", "AMQP\x03\x01\x00\x00", true},
		{"plain", "AMQP\x00\x01\x00\x00", true},
		{"0-10", "AMQP\x01\x01\x00\x0a", false},
		{"closed", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer l.Close()
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				buf := make([]byte, 8)
				_, _ = conn.Read(buf)
				_, _ = conn.Write([]byte(c.reply))
			}()
			err = amqpAnswers(l.Addr().String())
			if c.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// listens tells this process's listening socket from another process's.
func TestListens(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	require.True(t, listens(os.Getpid(), port))
	require.False(t, listens(os.Getppid(), port))
}
