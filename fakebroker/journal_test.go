package fakebroker_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// syncBuffer is a log sink safe for the broker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func journalPath(dir string) string { return filepath.Join(dir, "fakebroker.journal") }

func TestJournalRestartKeepsDurableMessages(t *testing.T) {
	dir := t.TempDir()
	b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir})
	addr := "unicast.openstack.notifications.info"
	send(t, connect(t, b.URL()).sender(addr), durable("d0"), durable("d1"), msg("plain"), durable("d2"))
	peek := b.Messages(addr)
	require.Len(t, peek, 4)
	require.True(t, peek[0].Journaled)
	require.False(t, peek[2].Journaled)

	c := connect(t, b.URL())
	rcv := c.receiver(addr, 2)
	m, body := receive(t, rcv)
	require.Equal(t, "d0", body)
	accept(t, rcv, m)
	_, body = receive(t, rcv) // d1 held unsettled across the restart
	require.Equal(t, "d1", body)
	require.NoError(t, b.WaitForStats(testCtx(t), func(c fakebroker.Counts) bool { return c.Acked == 1 }))

	require.NoError(t, b.Restart())
	// From the journal: d1 (back, delivery-count raised) and d2; the non-durable
	// message is lost, as in a qpidd restart.
	require.Equal(t, 2, b.Depth(addr), b.Dump())
	require.Equal(t, uint64(1), b.Stats().Dropped)
	rcv = connect(t, b.URL()).receiver(addr, 1)
	m, body = receive(t, rcv)
	require.Equal(t, "d1", body)
	require.Equal(t, uint32(1), deliveryCount(m))
	accept(t, rcv, m)
	waitDepth(t, b, addr, 1)
	require.NoError(t, b.Close())

	// Another broker on the same directory delivers what is left.
	b2 := fakebroker.RunT(t, &fakebroker.Options{Dir: dir})
	require.Equal(t, 1, b2.Depth(addr))
	info, _ := b2.Node(addr)
	require.Equal(t, "unicast", info.Pattern)
	rcv = connect(t, b2.URL()).receiver(addr, 1)
	m, body = receive(t, rcv)
	require.Equal(t, "d2", body)
	accept(t, rcv, m)
	waitDepth(t, b2, addr, 0)
	require.NoError(t, b2.Close())

	b3 := fakebroker.RunT(t, &fakebroker.Options{Dir: dir})
	require.Zero(t, b3.Depth(addr))
	require.NoError(t, b3.Close())
	st, err := os.Stat(journalPath(dir))
	require.NoError(t, err)
	require.Less(t, st.Size(), int64(64), "a journal with no live message is compacted to its header")
}

func TestJournalWrittenBeforeAccepted(t *testing.T) {
	// A second broker opened on the directory while the first still runs sees what
	// the first accepted: nothing is buffered in the process, so a crash (no Close)
	// loses nothing.
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir, SyncJournal: sync})
		send(t, connect(t, b.URL()).sender("unicast.crash"), durable("a"), durable("b"))
		other := fakebroker.RunT(t, &fakebroker.Options{Dir: dir})
		require.Equal(t, 2, other.Depth("unicast.crash"))
	}
}

func TestJournalAll(t *testing.T) {
	dir := t.TempDir()
	b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir, JournalAll: true})
	send(t, connect(t, b.URL()).sender("unicast.all"), msg("plain"))
	require.NoError(t, b.Restart())
	require.Equal(t, 1, b.Depth("unicast.all"))
}

func TestJournalCorruptTail(t *testing.T) {
	fill := func(t *testing.T) string {
		dir := t.TempDir()
		b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir})
		send(t, connect(t, b.URL()).sender("unicast.j"), durable("a"), durable("b"), durable("c"))
		require.NoError(t, b.Close())
		return dir
	}
	open := func(t *testing.T, dir string) (*fakebroker.Broker, string) {
		logs := &syncBuffer{}
		b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		return b, logs.String()
	}
	t.Run("cut record", func(t *testing.T) {
		dir := fill(t)
		f, err := os.OpenFile(journalPath(dir), os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte{0, 0, 0, 100, 1, 2, 3, 4, 'E', 0, 0}) // a record cut by a crash
		require.NoError(t, err)
		require.NoError(t, f.Close())
		before, _ := os.Stat(journalPath(dir))
		b, logs := open(t, dir)
		require.Equal(t, 3, b.Depth("unicast.j"))
		require.Contains(t, logs, "corrupt tail; truncating")
		after, _ := os.Stat(journalPath(dir))
		require.Equal(t, before.Size()-11, after.Size())
	})
	t.Run("bad checksum", func(t *testing.T) {
		dir := fill(t)
		raw, err := os.ReadFile(journalPath(dir))
		require.NoError(t, err)
		raw[len(raw)-1] ^= 0xff // the last record's last byte
		require.NoError(t, os.WriteFile(journalPath(dir), raw, 0o644))
		b, logs := open(t, dir)
		require.Equal(t, 2, b.Depth("unicast.j"))
		require.Contains(t, logs, "checksum mismatch")
		_, body := receive(t, connect(t, b.URL()).receiver("unicast.j", 1))
		require.Equal(t, "a", body)
	})
	t.Run("garbage", func(t *testing.T) {
		dir := fill(t)
		f, err := os.OpenFile(journalPath(dir), os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write(bytes.Repeat([]byte{0xff}, 300))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		b, logs := open(t, dir)
		require.Equal(t, 3, b.Depth("unicast.j"))
		require.Contains(t, logs, "runs past the end of the file")
	})
	t.Run("not a journal", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(journalPath(dir), []byte("something else entirely\n"), 0o644))
		_, err := fakebroker.Run(&fakebroker.Options{Dir: dir})
		require.ErrorContains(t, err, "is not a fakebroker journal")
	})
	t.Run("header cut", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(journalPath(dir), []byte("amqp1kit fake"), 0o644))
		b, logs := open(t, dir)
		require.Empty(t, b.Nodes())
		require.Contains(t, logs, "header cut short")
		send(t, connect(t, b.URL()).sender("unicast.j"), durable("x"))
		require.NoError(t, b.Restart())
		require.Equal(t, 1, b.Depth("unicast.j"))
	})
}

func TestJournalCompactsWhileRunning(t *testing.T) {
	dir := t.TempDir()
	b := fakebroker.RunT(t, &fakebroker.Options{Dir: dir, JournalAll: true})
	ctx := testCtx(t)
	addr := "unicast.compact"
	c := connect(t, b.URL())
	rcv, err := c.sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	const n, kept = 4200, 10
	require.NoError(t, enqueue(ctx, c.sender(addr), n, make([]byte, 100), 250))
	full, err := os.Stat(journalPath(dir))
	require.NoError(t, err)
	require.NoError(t, dequeue(ctx, rcv, n-kept))
	waitDepth(t, b, addr, kept)
	// Over 8 192 dead records and far more dead than live: rewritten with the live
	// ones only.
	now, err := os.Stat(journalPath(dir))
	require.NoError(t, err)
	require.Less(t, now.Size(), full.Size()/10, "the journal was compacted while the broker ran")
	require.NoError(t, b.Restart())
	require.Equal(t, kept, b.Depth(addr), "compaction kept the live messages")
}
