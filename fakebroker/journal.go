package fakebroker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
)

// The journal is one append-only file per broker directory:
//
//	magic   "amqp1kit fakebroker journal 1\n"
//	record  length uint32 | crc32c(body) uint32 | body      (big-endian)
//	body    'E' seq uint64 | expires int64 | delivery-count uint32 | len(node) uvarint | node | message
//	        'D' seq uint64                                    (acknowledged, rejected, expired, ...)
//	        'U' seq uint64 | delivery-count uint32            (the count was raised)
//
// Replay reads records up to the first one that is short, fails its checksum or does
// not parse, truncates the file there (a write cut by a crash) with a log line, and
// rewrites the file with only the live messages when it holds dead records. While
// the broker runs, the file is rewritten the same way once dead records outnumber
// live ones by far.
const (
	journalName  = "fakebroker.journal"
	journalMagic = "amqp1kit fakebroker journal 1\n"

	recEnqueue = 'E'
	recRemove  = 'D'
	recCount   = 'U'

	compactMinDead = 8192
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalMsg is one live message of the journal.
type journalMsg struct {
	seq     uint64
	node    string
	expires int64
	count   uint32
	payload []byte
}

type journal struct {
	f    *os.File
	path string
	sync bool
	log  *slog.Logger
	live int
	dead int
	buf  []byte
}

// openJournal opens (or creates) the journal in dir and returns the messages it
// holds in sequence order.
func openJournal(dir string, sync bool, log *slog.Logger) (*journal, []journalMsg, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("fakebroker: journal: %w", err)
	}
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("fakebroker: journal: %w", err)
	}
	j := &journal{f: f, path: path, sync: sync, log: log}
	msgs, dead, err := j.replay()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	j.live = len(msgs)
	if dead > 0 {
		if err := j.rewrite(msgs); err != nil {
			log.Warn("fakebroker: journal: could not compact; appending to it as it is", "file", path, "err", err)
		}
	}
	if _, err := j.f.Seek(0, io.SeekEnd); err != nil {
		j.f.Close()
		return nil, nil, fmt.Errorf("fakebroker: journal: %w", err)
	}
	return j, msgs, nil
}

// replay reads the file, truncating a corrupt tail, and returns the live messages and
// the number of dead records.
func (j *journal) replay() ([]journalMsg, int, error) {
	st, err := j.f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("fakebroker: journal: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(j.f, 256<<10)
	magic := make([]byte, len(journalMagic))
	n, err := io.ReadFull(r, magic)
	switch {
	case err == nil && string(magic) != journalMagic:
		return nil, 0, fmt.Errorf("fakebroker: %s is not a fakebroker journal (it starts with %q)", j.path, magic[:min(n, 16)])
	case err != nil:
		// An empty file, or one cut while its header was written: start afresh.
		if n > 0 && string(magic[:n]) != journalMagic[:n] {
			return nil, 0, fmt.Errorf("fakebroker: %s is not a fakebroker journal", j.path)
		}
		if n > 0 {
			j.log.Warn("fakebroker: journal: header cut short; starting an empty journal", "file", j.path, "bytes", n)
		}
		if err := j.f.Truncate(0); err != nil {
			return nil, 0, fmt.Errorf("fakebroker: journal: %w", err)
		}
		if _, err := j.f.WriteAt([]byte(journalMagic), 0); err != nil {
			return nil, 0, fmt.Errorf("fakebroker: journal: %w", err)
		}
		return nil, 0, nil
	}
	live := map[uint64]*journalMsg{}
	dead := 0
	off := int64(len(journalMagic))
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				break
			}
			j.truncate(off, size, "record header cut short")
			break
		}
		length := int64(binary.BigEndian.Uint32(hdr[:4]))
		sum := binary.BigEndian.Uint32(hdr[4:])
		if length == 0 || length > size-off-8 {
			j.truncate(off, size, fmt.Sprintf("record of %d bytes runs past the end of the file", length))
			break
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			j.truncate(off, size, "record cut short")
			break
		}
		if crc32.Checksum(body, crcTable) != sum {
			j.truncate(off, size, "record checksum mismatch")
			break
		}
		if err := applyRecord(body, live, &dead); err != nil {
			j.truncate(off, size, err.Error())
			break
		}
		off += 8 + length
	}
	msgs := make([]journalMsg, 0, len(live))
	for _, m := range live {
		msgs = append(msgs, *m)
	}
	sort.Slice(msgs, func(a, b int) bool { return msgs[a].seq < msgs[b].seq })
	return msgs, dead, nil
}

// truncate cuts the file at off after a corrupt record; the records before it stand.
func (j *journal) truncate(off, size int64, why string) {
	j.log.Warn("fakebroker: journal: corrupt tail; truncating", "file", j.path, "at", off, "dropped_bytes", size-off, "reason", why)
	if err := j.f.Truncate(off); err != nil {
		j.log.Error("fakebroker: journal: truncate failed", "file", j.path, "err", err)
	}
}

func applyRecord(body []byte, live map[uint64]*journalMsg, dead *int) error {
	switch body[0] {
	case recEnqueue:
		if len(body) < 1+8+8+4+1 {
			return errors.New("enqueue record too short")
		}
		m := &journalMsg{
			seq:     binary.BigEndian.Uint64(body[1:]),
			expires: int64(binary.BigEndian.Uint64(body[9:])),
			count:   binary.BigEndian.Uint32(body[17:]),
		}
		rest := body[21:]
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return errors.New("enqueue record: bad node name length")
		}
		m.node = string(rest[k : k+int(n)])
		m.payload = rest[k+int(n):]
		if _, dup := live[m.seq]; dup {
			*dead++
		}
		live[m.seq] = m
	case recRemove:
		if len(body) != 9 {
			return errors.New("remove record of the wrong size")
		}
		delete(live, binary.BigEndian.Uint64(body[1:]))
		*dead += 2
	case recCount:
		if len(body) != 13 {
			return errors.New("count record of the wrong size")
		}
		if m := live[binary.BigEndian.Uint64(body[1:])]; m != nil {
			m.count = binary.BigEndian.Uint32(body[9:])
		}
		*dead++
	default:
		return fmt.Errorf("unknown record type %q", body[0])
	}
	return nil
}

func appendEnqueue(b []byte, m journalMsg) []byte {
	b = append(b, recEnqueue)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.expires))
	b = binary.BigEndian.AppendUint32(b, m.count)
	b = binary.AppendUvarint(b, uint64(len(m.node)))
	b = append(b, m.node...)
	return append(b, m.payload...)
}

// frame wraps the body appended after start in a record header.
func frameRecord(b []byte, start int) []byte {
	body := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

func (j *journal) write(build func([]byte) []byte, sync bool) error {
	b := append(j.buf[:0], make([]byte, 8)...)
	b = frameRecord(build(b), 0)
	if cap(b) <= 1<<20 {
		j.buf = b
	}
	if _, err := j.f.Write(b); err != nil {
		return err
	}
	if sync {
		return j.f.Sync()
	}
	return nil
}

// enqueue writes a stored message; it is on file (and synced with SyncJournal) when
// enqueue returns nil.
func (j *journal) enqueue(m journalMsg) error {
	if err := j.write(func(b []byte) []byte { return appendEnqueue(b, m) }, j.sync); err != nil {
		return fmt.Errorf("fakebroker: journal: %w", err)
	}
	j.live++
	return nil
}

// remove records that a message is gone.
func (j *journal) remove(seq uint64) {
	err := j.write(func(b []byte) []byte {
		return binary.BigEndian.AppendUint64(append(b, recRemove), seq)
	}, false)
	if err != nil {
		j.log.Error("fakebroker: journal: writing a removal failed; the message may come back after a restart", "file", j.path, "err", err)
		return
	}
	j.live--
	j.dead += 2
}

// setCount records a message's new delivery-count.
func (j *journal) setCount(seq uint64, count uint32) {
	err := j.write(func(b []byte) []byte {
		b = binary.BigEndian.AppendUint64(append(b, recCount), seq)
		return binary.BigEndian.AppendUint32(b, count)
	}, false)
	if err != nil {
		j.log.Error("fakebroker: journal: writing a delivery-count failed", "file", j.path, "err", err)
		return
	}
	j.dead++
}

// wantsCompaction reports whether dead records outnumber live ones by far.
func (j *journal) wantsCompaction() bool {
	return j.dead >= compactMinDead && j.dead > 4*j.live
}

// rewrite replaces the file with one holding only msgs (written to a temporary file,
// synced, renamed over the journal) and appends to the new file from then on.
func (j *journal) rewrite(msgs []journalMsg) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if _, err := w.WriteString(journalMagic); err != nil {
		return fail(err)
	}
	var b []byte
	for _, m := range msgs {
		b = append(b[:0], make([]byte, 8)...)
		b = frameRecord(appendEnqueue(b, m), 0)
		if _, err := w.Write(b); err != nil {
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return err
	}
	j.f.Close()
	j.f = f
	j.live, j.dead = len(msgs), 0
	return nil
}

func (j *journal) close() error { return j.f.Close() }
