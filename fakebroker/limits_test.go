package fakebroker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// limitConn is a hand-written connection with one session, for the exact frames a
// broker answers a flood with.
type limitConn struct {
	*frameclient.Conn
	t     *testing.T
	outID uint32
}

func dialLimit(t *testing.T, addr string) *limitConn {
	t.Helper()
	fc, err := frameclient.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { fc.Close() })
	fc.Timeout = 10 * time.Second
	_, err = fc.Open(&wire.Open{ContainerID: "limits-" + t.Name(), MaxFrameSize: 65536, ChannelMax: 15})
	require.NoError(t, err)
	_, err = fc.Begin(0, &wire.Begin{IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 1023})
	require.NoError(t, err)
	return &limitConn{Conn: fc, t: t}
}

func (c *limitConn) attachSender(handle uint32, target *wire.Target) *wire.Attach {
	c.t.Helper()
	zero := uint32(0)
	a, err := c.Attach(0, &wire.Attach{Name: fmt.Sprint("snd-", handle), Handle: handle, Role: wire.RoleSender,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: target, InitialDeliveryCount: &zero})
	require.NoError(c.t, err)
	return a
}

func (c *limitConn) attachReceiver(handle uint32, addr string, credit uint32) {
	c.t.Helper()
	_, err := c.Attach(0, &wire.Attach{Name: fmt.Sprint("rcv-", handle), Handle: handle, Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	require.NoError(c.t, err)
	if credit > 0 {
		zero := uint32(0)
		require.NoError(c.t, c.Write(0, &wire.Flow{NextIncomingID: &zero, IncomingWindow: 5000, OutgoingWindow: 5000,
			Handle: &handle, DeliveryCount: &zero, LinkCredit: &credit}))
	}
}

// transfer sends payload on handle and returns its delivery-id.
func (c *limitConn) transfer(handle uint32, payload []byte, settled bool) uint32 {
	c.t.Helper()
	id, format := c.outID, uint32(0)
	c.outID++
	require.NoError(c.t, c.WriteTransfer(0, &wire.Transfer{Handle: handle, DeliveryID: &id,
		DeliveryTag: []byte(fmt.Sprint(id)), MessageFormat: &format, Settled: settled}, payload))
	return id
}

// answers reads what the broker sends until it is quiet for a moment: the delivery-ids
// it settled accepted, and the detach, if any.
func (c *limitConn) answers() (accepted []uint32, detach *wire.Detach) {
	c.t.Helper()
	for {
		f, err := c.Quiet(300 * time.Millisecond)
		require.NoError(c.t, err)
		switch b := f.Body.(type) {
		case nil:
			return accepted, detach
		case *wire.Disposition:
			_, ok := b.State.(*wire.Accepted)
			require.True(c.t, ok && b.Settled, "disposition %+v, want settled accepted", b)
			last := b.First
			if b.Last != nil {
				last = *b.Last
			}
			for id := b.First; id <= last; id++ {
				accepted = append(accepted, id)
			}
		case *wire.Detach:
			require.Nil(c.t, detach, "a second detach")
			detach = b
		case *wire.Flow, *wire.Transfer:
		default:
			c.t.Fatalf("unexpected %s", frameclient.Describe(f))
		}
	}
}

// body1000 is a message of 1008 bytes as encoded: 9 fit in 10000 bytes, 8 take a
// queue above 80% of it.
func body1000(t *testing.T) []byte {
	p, err := (&wire.Message{Data: [][]byte{[]byte(strings.Repeat("x", 1000))}}).AppendTo(nil)
	require.NoError(t, err)
	require.Len(t, p, 1008)
	return p
}

func ids(from, to uint32) []uint32 {
	var out []uint32
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// What qpidd 1.39.0 answers (default-queue-limit 10000, 1008-byte messages): 7
// accepted; the 8th and 9th take the queue above 80% and are stored with their outcome
// withheld; the 10th would exceed the limit: the link is detached, the message neither
// stored nor answered, and what follows on the link dropped. The withheld outcomes
// come once consumers take the queue below 70%.
func TestQueueLimitDetachesSender(t *testing.T) {
	for _, settled := range []bool{false, true} {
		t.Run(fmt.Sprint("settled=", settled), func(t *testing.T) {
			b := fakebroker.RunT(t, &fakebroker.Options{QueueLimit: 10000})
			addr := "unicast.limited"
			c := dialLimit(t, b.Addr())
			c.attachSender(0, &wire.Target{Address: addr})
			p := body1000(t)
			for range 30 {
				c.transfer(0, p, settled)
			}
			accepted, detach := c.answers()
			if settled {
				require.Empty(t, accepted)
			} else {
				require.Equal(t, ids(0, 6), accepted)
			}
			require.NotNil(t, detach, "the sender is detached")
			require.True(t, detach.Closed)
			require.Equal(t, &wire.Error{Condition: wire.ErrCondPreconditionFailed,
				Description: "resource-limit-exceeded: Maximum depth exceeded on unicast.limited: current=[count: 9, size: 9072], max=[size: 10000]"},
				detach.Error)
			n, _ := b.Node(addr)
			require.Equal(t, 9, n.Depth)
			require.Equal(t, int64(9072), n.Bytes)
			require.Equal(t, int64(10000), n.MaxBytes)
			require.Equal(t, uint64(1), n.Counts.Refused)
			require.True(t, n.FlowStopped)
			if settled {
				require.Zero(t, n.Withheld, "a pre-settled message has no outcome to withhold")
			} else {
				require.Equal(t, 2, n.Withheld)
			}

			// A consumer takes three: 6048 bytes is under 70%, and the withheld
			// outcomes come.
			r := dialLimit(t, b.Addr())
			r.attachReceiver(0, addr, 3)
			for range 3 {
				tr, _, err := frameclient.Expect[*wire.Transfer](r.Conn)
				require.NoError(t, err)
				require.NoError(t, r.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}))
			}
			require.NoError(t, b.WaitForDepth(testCtx(t), addr, 6))
			accepted, detach = c.answers()
			require.Nil(t, detach)
			if settled {
				require.Empty(t, accepted)
			} else {
				require.Equal(t, []uint32{7, 8}, accepted)
			}
			n, _ = b.Node(addr)
			require.False(t, n.FlowStopped)
			require.Zero(t, n.Withheld)
		})
	}
}

// A withheld outcome comes when its message leaves the queue, even while the flow is
// still stopped (qpid-cpp's QueueFlowLimit::dequeued); a queue that empties sends the
// rest.
func TestWithheldOutcomeOnDequeue(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{QueueLimit: 10000})
	addr := "unicast.held"
	c := dialLimit(t, b.Addr())
	c.attachSender(0, &wire.Target{Address: addr})
	p := body1000(t)
	for range 7 {
		c.transfer(0, p, false)
	}
	accepted, _ := c.answers()
	require.Equal(t, ids(0, 6), accepted)
	// One consumer holds the seven unsettled: they still count.
	holder := dialLimit(t, b.Addr())
	holder.attachReceiver(0, addr, 7)
	for range 7 {
		_, _, err := frameclient.Expect[*wire.Transfer](holder.Conn)
		require.NoError(t, err)
	}
	c.transfer(0, p, false)
	c.transfer(0, p, false)
	accepted, detach := c.answers()
	require.Empty(t, accepted, "8064 bytes is above 80%%: outcomes withheld")
	require.Nil(t, detach)
	// Another consumer takes the 8th: its outcome comes, the 9th's not (8064 bytes
	// is not under 70%).
	r := dialLimit(t, b.Addr())
	r.attachReceiver(0, addr, 1)
	tr, _, err := frameclient.Expect[*wire.Transfer](r.Conn)
	require.NoError(t, err)
	require.NoError(t, r.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}))
	accepted, _ = c.answers()
	require.Equal(t, []uint32{7}, accepted)
	n, _ := b.Node(addr)
	require.True(t, n.FlowStopped)
	require.Equal(t, 1, n.Withheld)
	require.Equal(t, 8, b.Purge(addr)+n.Acquired, "the 9th purged, the 7 held stay")
	accepted, _ = c.answers()
	require.Equal(t, []uint32{8}, accepted, "the 9th left the queue")
	n, _ = b.Node(addr)
	require.True(t, n.FlowStopped, "7056 bytes are still held by the first consumer: not under 70%%")
}

// A topic's message goes to every subscription queue with room; a full one detaches
// the sender, naming that subscription queue (qpidd's exchanges route to the others
// first, then raise the error). The stuck subscription withholds the outcomes above
// 80%, whichever subscribed first.
func TestTopicSubscriptionLimit(t *testing.T) {
	for _, stuckFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("stuckFirst=", stuckFirst), func(t *testing.T) { topicSubscriptionLimit(t, stuckFirst) })
	}
}

func topicSubscriptionLimit(t *testing.T, stuckFirst bool) {
	b := fakebroker.RunT(t, &fakebroker.Options{QueueLimit: 10000})
	addr := "broadcast.limited"
	c := dialLimit(t, b.Addr())
	fast := dialLimit(t, b.Addr())
	if stuckFirst {
		c.attachReceiver(1, addr, 0) // stuck: no credit
		fast.attachReceiver(0, addr, 1000)
	} else {
		fast.attachReceiver(0, addr, 1000)
		c.attachReceiver(1, addr, 0)
	}
	c.attachSender(0, &wire.Target{Address: addr})
	p := body1000(t)
	for range 12 {
		c.transfer(0, p, false)
	}
	accepted, detach := c.answers()
	require.Equal(t, ids(0, 6), accepted)
	require.NotNil(t, detach)
	require.Equal(t, "resource-limit-exceeded: Maximum depth exceeded on limits-"+t.Name()+"_rcv-1: current=[count: 9, size: 9072], max=[size: 10000]", detach.Error.Description)
	// The subscriber with credit got ten copies: the one the full queue refused too.
	for range 10 {
		_, _, err := frameclient.Expect[*wire.Transfer](fast.Conn)
		require.NoError(t, err)
	}
	n, _ := b.Node(addr)
	require.Equal(t, uint64(1), n.Counts.Refused)
}

// MaxDepth is qpid.max_count on every queue: the flow stops above 80% of it too, and
// the description names both limits.
func TestCountLimit(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{MaxDepth: 5})
	c := dialLimit(t, b.Addr())
	c.attachSender(0, &wire.Target{Address: "unicast.counted"})
	for range 8 {
		c.transfer(0, []byte("\x00\x53\x77\xa1\x01x"), false)
	}
	accepted, detach := c.answers()
	require.Equal(t, ids(0, 3), accepted, "the 5th is above 4 (80%% of 5, rounded): withheld")
	require.NotNil(t, detach)
	require.Equal(t, "resource-limit-exceeded: Maximum depth exceeded on unicast.counted: current=[count: 5, size: 30], max=[count: 5, size: 104857600]", detach.Error.Description)
}

// Options.QueueLimits set limits by pattern; a create-on-demand attach sets them with
// node properties, echoed in the answer, as qpidd takes qpid.max_count and qpid.max_size.
func TestQueueLimitsByPatternAndNodeProperties(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{QueueLimits: []fakebroker.QueueLimit{
		{Pattern: "^unicast\\.small\\.", MaxSize: 3000},
		{Pattern: "^unicast\\.unbounded$", MaxSize: -1},
		{Pattern: "broadcast\\.few", MaxCount: 2},
	}})
	c := dialLimit(t, b.Addr())
	c.attachSender(0, &wire.Target{Address: "unicast.small.x"})
	c.attachSender(1, &wire.Target{Address: "unicast.unbounded"})
	c.attachReceiver(2, "broadcast.few", 0)
	answer := c.attachSender(3, &wire.Target{Address: "unicast.ondemand", Capabilities: []wire.Symbol{"create-on-demand"},
		DynamicNodeProperties: wire.Fields{"qpid.max_count": int64(7), "qpid.max_size": uint32(50000), "other": "x"}})
	require.Equal(t, wire.Fields{"qpid.max_count": int64(7), "qpid.max_size": uint32(50000), "supported-dist-modes": "move"},
		answer.Target.DynamicNodeProperties)
	for _, tc := range []struct {
		name     string
		maxBytes int64
		maxCount int
	}{
		{"unicast.small.x", 3000, 0},
		{"unicast.unbounded", 0, 0},
		{"limits-" + t.Name() + "_rcv-2", fakebroker.DefaultQueueLimit, 2},
		{"unicast.ondemand", 50000, 7},
	} {
		n, ok := b.Node(tc.name)
		require.True(t, ok, tc.name)
		require.Equal(t, tc.maxBytes, n.MaxBytes, tc.name)
		require.Equal(t, tc.maxCount, n.MaxCount, tc.name)
	}
	// An existing queue keeps its limits, whatever a later attach asks.
	answer = c.attachSender(4, &wire.Target{Address: "unicast.small.x", Capabilities: []wire.Symbol{"create-on-demand"},
		DynamicNodeProperties: wire.Fields{"qpid.max_size": int64(1)}})
	require.NotContains(t, answer.Target.DynamicNodeProperties, wire.Symbol("qpid.max_size"))
	n, _ := b.Node("unicast.small.x")
	require.Equal(t, int64(3000), n.MaxBytes)
}

func TestQueueLimitConfig(t *testing.T) {
	cfg, err := fakebroker.ParseConfig(strings.NewReader("default-queue-limit=5000\ndefault-flow-stop-threshold=0\n"))
	require.NoError(t, err)
	require.Equal(t, uint64(5000), *cfg.QueueLimit)
	require.Equal(t, 0, *cfg.FlowStopThreshold)
	require.Nil(t, cfg.FlowResumeThreshold)
	require.Empty(t, cfg.Ignored)
	for _, bad := range []string{"default-queue-limit=lots", "default-flow-stop-threshold=101", "default-flow-resume-threshold=-1"} {
		_, err := fakebroker.ParseConfig(strings.NewReader(bad))
		require.Error(t, err, bad)
	}

	// From the file: 5000 bytes, and no flow control (threshold 0).
	path := t.TempDir() + "/qpidd.conf"
	require.NoError(t, os.WriteFile(path, []byte("queue-patterns=unicast\ndefault-queue-limit=5000\ndefault-flow-stop-threshold=0\n"), 0o600))
	b := fakebroker.RunT(t, &fakebroker.Options{ConfigFile: path})
	c := dialLimit(t, b.Addr())
	c.attachSender(0, &wire.Target{Address: "unicast.conf"})
	p := body1000(t)
	for range 6 {
		c.transfer(0, p, false)
	}
	accepted, detach := c.answers()
	require.Equal(t, ids(0, 3), accepted, "no outcome withheld without flow control")
	require.NotNil(t, detach)
	require.Contains(t, detach.Error.Description, "max=[size: 5000]")

	// default-queue-limit=0: no limit at all.
	require.NoError(t, os.WriteFile(path, []byte("queue-patterns=unicast\ndefault-queue-limit=0\n"), 0o600))
	b = fakebroker.RunT(t, &fakebroker.Options{ConfigFile: path})
	c = dialLimit(t, b.Addr())
	c.attachSender(0, &wire.Target{Address: "unicast.conf"})
	n, _ := b.Node("unicast.conf")
	require.Zero(t, n.MaxBytes)

	_, err = fakebroker.New(&fakebroker.Options{FlowStopThreshold: 50})
	require.Error(t, err, "resume 70%% above stop 50%%")
}

// The memory ceiling: whatever senders flood into queues whose consumers are stuck, the
// broker holds no more than the queues' limits, and its heap stays within a generous
// multiple of them. A sender detached at a limit attaches again and keeps flooding, as
// a client that retries would; half the messages are sent unsettled.
func TestMemoryCeiling(t *testing.T) {
	if testing.Short() {
		t.Skip("floods 60 MB through the broker; skipped with -short")
	}
	const (
		limit = 5 << 20
		flood = 30 << 20 // into each of the two nodes
	)
	b := fakebroker.RunT(t, &fakebroker.Options{QueueLimit: limit})
	// 60 MB through the broker under -race on a busy 2-core machine can take longer
	// than testCtx's 15 s: this bounds a hang, it measures nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stuck := connect(t, b.URL())
	// A consumer that takes 100 and never settles them, and a subscriber that never
	// grants credit.
	_ = stuck.receiver("unicast.flooded", 100)
	_, err := stuck.sess.NewReceiver(ctx, "broadcast.flooded", &amqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	waitConsumers(t, b, "broadcast.flooded", 1)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	body := make([]byte, 1024)
	errs := make(chan error, 2)
	detaches := make(chan int, 2)
	for _, addr := range []string{"unicast.flooded", "broadcast.flooded"} {
		go func() {
			c := connect(t, b.URL())
			snd, err := c.sess.NewSender(ctx, addr, nil)
			if err != nil {
				errs <- err
				return
			}
			n := 0
			for sent := 0; sent < flood; {
				m := amqp.NewMessage(body)
				if sent/len(body)%2 == 0 {
					err = snd.Send(ctx, m, &amqp.SendOptions{Settled: true})
				} else {
					_, err = snd.SendWithReceipt(ctx, m, nil)
				}
				var le *amqp.LinkError
				switch {
				case errors.As(err, &le):
					n++
					if snd, err = c.sess.NewSender(ctx, addr, nil); err != nil {
						errs <- err
						return
					}
				case err != nil:
					errs <- err
					return
				default:
					sent += len(body)
				}
			}
			detaches <- n
			errs <- nil
		}()
	}
	for range 2 {
		require.NoError(t, <-errs)
	}
	require.Positive(t, <-detaches+<-detaches, "the floods met the limits")

	var held int64
	for _, name := range []string{"unicast.flooded", "broadcast.flooded"} {
		n, _ := b.Node(name)
		require.LessOrEqual(t, n.Bytes, int64(limit), name)
		require.Greater(t, n.Bytes, int64(limit*8/10), "%s filled up", name)
		held += n.Bytes
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("held %d bytes in two queues of limit %d; heap grew %d bytes during a flood of %d", held, limit, growth, 2*flood)
	require.Less(t, growth, int64(4*2*limit), "the heap stays within four times the two queues' limits")
}

// Flow thresholds that contradict each other or the limit refuse the attach as qpidd
// refuses it: no terminus, then a detach with amqp:internal-error in qpid-cpp's words;
// the queue is not kept.
func TestContradictoryFlowThresholdsRefused(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	c := dialLimit(t, b.Addr())
	for i, tc := range []struct {
		props wire.Fields
		want  string
	}{
		{wire.Fields{"qpid.max_count": int64(5), "qpid.flow_stop_count": int64(2), "qpid.flow_resume_count": int64(4)},
			"qpid.flow_resume_count=4 must be less or equal to qpid.flow_stop_count=2"},
		{wire.Fields{"qpid.max_count": int64(5), "qpid.flow_stop_count": int64(6)},
			"qpid.flow_stop_count=6 must be less than qpid.max_count=5"},
		{wire.Fields{"qpid.max_size": int64(1000), "qpid.flow_stop_size": int64(900), "qpid.flow_resume_size": int64(950)},
			"qpid.flow_resume_size=950 must be less or equal to qpid.flow_stop_size=900"},
	} {
		addr := fmt.Sprint("limitq.bad-", i)
		answer := c.attachSender(uint32(i), &wire.Target{Address: addr, Capabilities: []wire.Symbol{"create-on-demand"}, DynamicNodeProperties: tc.props})
		require.Nil(t, answer.Target, "refused: no terminus")
		_, detach := c.answers()
		require.NotNil(t, detach)
		require.Equal(t, &wire.Error{Condition: wire.ErrCondInternalError, Description: `invalid-argument: Queue "` + addr + `": ` + tc.want}, detach.Error)
		_, ok := b.Node(addr)
		require.False(t, ok, "the queue is not kept")
	}
}
