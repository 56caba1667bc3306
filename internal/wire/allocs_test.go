package wire

import (
	"bytes"
	"sync"
	"testing"
)

// TestHotPathAllocations pins the allocation counts of the transfer path, so that a
// change that adds one shows up. (Counts, not timings: they do not depend on the
// machine.)
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts (sync.Pool drops items)")
	}
	msg, err := benchMessage().AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := benchTransfer()
	frame, _ := AppendFrame(nil, FrameAMQP, 0, tr, msg)
	buf := make([]byte, 0, 4096)
	m := benchMessage()
	cases := []struct {
		name string
		max  float64
		f    func()
	}{
		{"encode transfer frame into a reused buffer", 0, func() { buf, _ = AppendFrame(buf[:0], FrameAMQP, 0, tr, msg) }},
		{"encode message into a reused buffer", 0, func() { buf, _ = m.AppendTo(buf[:0]) }},
		// the Transfer, and one each for delivery-id, delivery-tag and message-format
		{"decode transfer", 4, func() { _, _, _ = DecodePerformative(frame[8:]) }},
		// Properties, three strings (and the message-id's box), the map, two keys,
		// one string value and its box, the data slice and its bytes
		{"decode message", 13, func() {
			var m Message
			_ = m.Unmarshal(msg)
		}},
		// Properties and its strings; the data section is not read
		{"scan message", 5, func() { _, _, _ = ScanMessage(msg) }},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(200, c.f); got > c.max {
			t.Errorf("%s: %.0f allocations, want at most %.0f", c.name, got, c.max)
		}
	}
}

// TestConcurrentDecode decodes frames from many goroutines at once (run with -race):
// the decoders share a pool.
func TestConcurrentDecode(t *testing.T) {
	frames := validFrames(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				for name, frame := range frames {
					_, v, rest, err := decodeFrame(frame, 0)
					if err != nil {
						t.Errorf("goroutine %d round %d %s: %v", g, i, name, err)
						return
					}
					out, err := AppendFrame(nil, frame[5], 1, v.(Marshaler), rest)
					if err != nil || !bytes.Equal(out[8:], frame[8:]) {
						t.Errorf("goroutine %d %s: re-encoding differs (%v)", g, name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
