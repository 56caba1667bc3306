package fakebroker

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// How qpidd 1.39.0 bounds a queue, as its frames show it (probed with a frame-level
// client, default-queue-limit 10000) and as qpid-cpp's Queue::checkDepth and
// QueueFlowLimit say:
//
//   - Every queue has a limit in bytes, default-queue-limit (104857600 unless
//     configured; 0 means none), and may have one in messages (qpid.max_count, none by
//     default). A message counts by its bytes as its sender sent them (the whole
//     encoded message, sections and all), from the moment it is stored until it
//     leaves the queue for good: a message delivered to a consumer and not yet
//     settled still counts.
//   - A message that would take a queue beyond either limit is not stored, and the
//     sending link is detached (closed) with amqp:precondition-failed
//     "resource-limit-exceeded: Maximum depth exceeded on QUEUE: current=[count: N,
//     size: S], max=[count: C, size: M]" (max names only the limits the queue has;
//     qpidd appends the source location of the check). The message gets no
//     disposition. Transfers that follow on the detached link are dropped unanswered.
//     Until then the sender keeps being granted credit, 500 topped up after every
//     message: the limit never takes credit away.
//   - For a topic, every subscription queue with room gets its copy; if one is full
//     the sender is detached all the same, naming the first full subscription queue.
//   - Producer flow control: once a message takes a queue above 80% of a limit
//     (default-flow-stop-threshold; of the count limit only when there is one), that
//     message and every one stored after it are not settled with their sender
//     (accepted is withheld) until the queue is back strictly below 70%
//     (default-flow-resume-threshold); then all are settled at once. A withheld
//     message that leaves the queue meanwhile (consumed) is settled then. A topic's
//     message is settled once every subscription queue that withheld it has released
//     it.
//   - A queue created by an attach with the create-on-demand capability takes
//     qpid.max_count, qpid.max_size, qpid.flow_stop_count, qpid.flow_stop_size,
//     qpid.flow_resume_count and qpid.flow_resume_size from the terminus's
//     dynamic-node-properties, and the answer echoes them; a queue made by a pattern
//     has the broker's defaults. A resume threshold above its stop threshold, or a
//     stop threshold above its limit, refuses the attach (no terminus, then a detach
//     with amqp:internal-error "invalid-argument: Queue "NAME": qpid.flow_... must
//     be ...").

// DefaultQueueLimit is qpidd's default-queue-limit: the bytes a queue holds at most
// unless configured otherwise, 100 MiB.
const DefaultQueueLimit = 104857600

// DefaultMaxConnections is qpidd's max-connections: the client connections it serves
// at once.
const DefaultMaxConnections = 500

// The producer flow-control thresholds of qpidd, in percent of a queue's limits:
// default-flow-stop-threshold and default-flow-resume-threshold.
const (
	DefaultFlowStopThreshold   = 80
	DefaultFlowResumeThreshold = 70
)

// QueueLimit sets the limits of the queues whose name Pattern matches, in place of the
// broker's defaults (Options.QueueLimit and Options.MaxDepth): what qpidd does with
// qpid.max_size and qpid.max_count set on a queue (qpid-config, or node properties).
type QueueLimit struct {
	// Pattern is an unanchored POSIX basic regular expression, as queue-patterns. It
	// is matched against a queue's name and, for a topic's subscription queue, against
	// the topic's address too.
	Pattern string
	// MaxSize bounds the bytes of the queue's messages (qpid.max_size). Zero keeps
	// the broker's default; negative means none.
	MaxSize int64
	// MaxCount bounds the number of messages (qpid.max_count). Zero keeps the
	// broker's default; negative means none.
	MaxCount int
}

// The node properties a create-on-demand queue takes its limits from.
const (
	propMaxCount        = "qpid.max_count"
	propMaxSize         = "qpid.max_size"
	propFlowStopCount   = "qpid.flow_stop_count"
	propFlowStopSize    = "qpid.flow_stop_size"
	propFlowResumeCount = "qpid.flow_resume_count"
	propFlowResumeSize  = "qpid.flow_resume_size"
)

var limitProps = []wire.Symbol{propMaxCount, propMaxSize, propFlowStopCount, propFlowStopSize, propFlowResumeCount, propFlowResumeSize}

type queueLimitRule struct {
	re       *regexp.Regexp
	maxSize  int64
	maxCount int
}

func compileQueueLimits(ls []QueueLimit) ([]queueLimitRule, error) {
	out := make([]queueLimitRule, 0, len(ls))
	for _, l := range ls {
		re, err := compileBRE(l.Pattern)
		if err != nil {
			return nil, fmt.Errorf("fakebroker: queue limit pattern %q: %w", l.Pattern, err)
		}
		out = append(out, queueLimitRule{re: re, maxSize: l.MaxSize, maxCount: l.MaxCount})
	}
	return out, nil
}

// queueLimits are the limits of one queue and its producer flow control (zero: none).
type queueLimits struct {
	maxCount    int
	maxSize     int64
	stopCount   int
	resumeCount int
	stopSize    int64
	resumeSize  int64
}

// ingress is a sender's unsettled delivery whose outcome waits for the queues that
// withheld it (producer flow control).
type ingress struct {
	d       *engine.Delivery
	pending int  // queues holding the message back
	refused bool // a queue refused it: the sender was detached, no outcome is sent
}

// setLimitsLocked gives a queue the broker's limits, or those of the first
// Options.QueueLimits pattern that matches one of names, and qpidd's flow-control
// thresholds for them.
func (b *Broker) setLimitsLocked(n *node, names ...string) {
	size, count := b.opts.QueueLimit, int64(b.opts.MaxDepth)
rules:
	for _, r := range b.limits {
		for _, name := range names {
			if r.re.MatchString(name) {
				if r.maxSize != 0 {
					size = r.maxSize
				}
				if r.maxCount != 0 {
					count = int64(r.maxCount)
				}
				break rules
			}
		}
	}
	_ = b.applyLimitsLocked(n, max(size, 0), max(count, 0), nil) // the ratios are valid
}

// applyLimitsLocked sets n's limits as qpid-cpp's QueueFlowLimit::createLimit does:
// the thresholds are the broker's ratios of the limits (of the default queue limit
// for a queue without a size limit), and props (node properties) override any. Flow
// thresholds that contradict each other or the limit are refused, as qpidd refuses
// them (n keeps its limits).
func (b *Broker) applyLimitsLocked(n *node, size, count int64, props map[wire.Symbol]int64) error {
	if v, ok := props[propMaxSize]; ok && v > 0 {
		size = v
	}
	if v, ok := props[propMaxCount]; ok && v > 0 {
		count = v
	}
	l := queueLimits{maxCount: int(count), maxSize: size}
	flowSize := size
	if flowSize == 0 {
		flowSize = max(b.opts.QueueLimit, 0)
	}
	stop, resume := float64(b.opts.FlowStopThreshold)/100, float64(b.opts.FlowResumeThreshold)/100
	l.stopSize, l.resumeSize = int64(float64(flowSize)*stop+0.5), int64(float64(flowSize)*resume)
	l.stopCount, l.resumeCount = int(float64(count)*stop+0.5), int(float64(count)*resume)
	if v, ok := props[propFlowStopCount]; ok {
		l.stopCount = int(max(v, 0))
	}
	if v, ok := props[propFlowStopSize]; ok {
		l.stopSize = max(v, 0)
	}
	if v, ok := props[propFlowResumeCount]; ok {
		l.resumeCount = int(max(v, 0))
	}
	if v, ok := props[propFlowResumeSize]; ok {
		l.resumeSize = max(v, 0)
	}
	if l.stopCount > 0 || l.stopSize > 0 {
		if err := validateFlow(n.name, "count", int64(l.maxCount), int64(l.stopCount), int64(l.resumeCount)); err != nil {
			return err
		}
		if err := validateFlow(n.name, "size", flowSize, l.stopSize, l.resumeSize); err != nil {
			return err
		}
	}
	if l.resumeCount == 0 {
		l.resumeCount = l.stopCount
	}
	if l.resumeSize == 0 {
		l.resumeSize = l.stopSize
	}
	n.limits = l
	return nil
}

// validateFlow checks a queue's flow thresholds of one kind (count or size) against
// each other and the limit, in qpid-cpp's words (QueueFlowLimit.cpp validateFlowConfig);
// qpidd refuses the attach that asks for them with amqp:internal-error.
func validateFlow(queue, kind string, limit, stop, resume int64) *wire.Error {
	if stop == 0 {
		return nil
	}
	var msg string
	switch {
	case resume > stop:
		msg = fmt.Sprintf("qpid.flow_resume_%s=%d must be less or equal to qpid.flow_stop_%s=%d", kind, resume, kind, stop)
	case limit != 0 && limit < stop:
		msg = fmt.Sprintf("qpid.flow_stop_%s=%d must be less than qpid.max_%s=%d", kind, stop, kind, limit)
	default:
		return nil
	}
	return &wire.Error{Condition: wire.ErrCondInternalError, Description: fmt.Sprintf("invalid-argument: Queue %q: %s", queue, msg)}
}

// limitProperties reads the limit properties of dynamic-node-properties; nil when
// there are none.
func limitProperties(props wire.Fields) map[wire.Symbol]int64 {
	var out map[wire.Symbol]int64
	for _, k := range limitProps {
		v, ok := props[k]
		if !ok {
			continue
		}
		i, ok := propInt(v)
		if !ok {
			continue
		}
		if out == nil {
			out = map[wire.Symbol]int64{}
		}
		out[k] = i
	}
	return out
}

// propInt reads a node property's number, however the client encoded it (qpidd takes
// any integer type, and strings of digits).
func propInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint64:
		return int64(min(x, 1<<62)), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// absentLocked reports whether no node is called addr (a retired queue is gone, for
// qpidd): an attach there creates one.
func (b *Broker) absentLocked(addr string) bool {
	n := b.nodes[addr]
	return n == nil || n.retired
}

// onDemandLimitsLocked applies the limit properties of a terminus with the
// create-on-demand capability to the queue its attach created (fresh; an existing
// queue keeps its limits, as in qpidd), and returns the properties to echo in the
// answer (nil for none). Contradictory flow thresholds refuse the attach, and the
// queue is not made.
func (b *Broker) onDemandLimitsLocked(n *node, fresh bool, caps []wire.Symbol, props wire.Fields) (wire.Fields, error) {
	lp := limitProperties(props)
	if !fresh || n.kind != Queue || len(lp) == 0 || !hasCap(caps, capCreateOnDemand) {
		return nil, nil
	}
	if err := b.applyLimitsLocked(n, n.limits.maxSize, int64(n.limits.maxCount), lp); err != nil {
		if n.users() == 0 && n.depth() == 0 {
			if n.counts == (Counts{}) {
				delete(b.nodes, n.name)
			} else {
				n.retired = true // as it was
			}
			b.notifyLocked()
		}
		return nil, err
	}
	out := wire.Fields{}
	for _, k := range limitProps {
		if v, ok := props[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// withLimits adds the echoed limit properties to an answer's
// dynamic-node-properties.
func withLimits(answer, limits wire.Fields) wire.Fields {
	if len(limits) == 0 {
		return answer
	}
	if answer == nil {
		answer = wire.Fields{}
	}
	for k, v := range limits {
		answer[k] = v
	}
	return answer
}

// full reports whether a message of size bytes would take q beyond a limit.
func (q *node) full(size int64) bool {
	l := q.limits
	return (l.maxCount > 0 && q.msgs+1 > l.maxCount) || (l.maxSize > 0 && q.bytes+size > l.maxSize)
}

// limitError is the error qpidd detaches a sender with when q has no room.
func (q *node) limitError() *wire.Error {
	var lim []string
	if q.limits.maxCount > 0 {
		lim = append(lim, fmt.Sprintf("count: %d", q.limits.maxCount))
	}
	if q.limits.maxSize > 0 {
		lim = append(lim, fmt.Sprintf("size: %d", q.limits.maxSize))
	}
	return &wire.Error{Condition: wire.ErrCondPreconditionFailed, Description: fmt.Sprintf(
		"resource-limit-exceeded: Maximum depth exceeded on %s: current=[count: %d, size: %d], max=[%s]",
		q.name, q.msgs, q.bytes, strings.Join(lim, ", "))}
}

// enqueued accounts for a message stored in q (QueueFlowLimit::enqueued): it
// may stop the flow, and a message stored while the flow is stopped holds back its
// sender's outcome.
func (q *node) enqueued(m *message) {
	l := q.limits
	if !q.flowStopped && ((l.stopCount > 0 && q.msgs > l.stopCount) || (l.stopSize > 0 && q.bytes > l.stopSize)) {
		q.flowStopped = true
	}
	if (q.flowStopped || q.heldCount > 0) && m.ingress != nil {
		m.held = true
		m.ingress.pending++
		q.held = append(q.held, m)
		q.heldCount++
	}
}

// dequeued accounts for a message that left q for good (QueueFlowLimit::dequeued),
// once msgs and bytes no longer count it: under the resume thresholds the flow starts
// again and every withheld outcome is sent; otherwise only the message's own, if it
// was withheld.
func (q *node) dequeued(m *message) {
	l := q.limits
	if q.flowStopped && (l.resumeSize == 0 || q.bytes < l.resumeSize) && (l.resumeCount == 0 || q.msgs < l.resumeCount) {
		q.flowStopped = false
	}
	if q.heldCount == 0 {
		return
	}
	if !q.flowStopped {
		q.releaseHeld()
		return
	}
	if m.held {
		q.release(m)
		if len(q.held) > 64 && len(q.held) > 2*q.heldCount {
			kept := q.held[:0]
			for _, h := range q.held {
				if h.held {
					kept = append(kept, h)
				}
			}
			clear(q.held[len(kept):])
			q.held = kept
		}
	}
}

// releaseHeld sends every outcome q withholds.
func (q *node) releaseHeld() {
	for _, m := range q.held {
		if m.held {
			q.release(m)
		}
	}
	q.held, q.heldCount = nil, 0
}

// release stops q withholding m's outcome; the sender learns accepted once no queue
// withholds it.
func (q *node) release(m *message) {
	m.held = false
	q.heldCount--
	in := m.ingress
	m.ingress = nil
	in.pending--
	if in.pending == 0 && !in.refused {
		in.d.Settle(&wire.Accepted{})
	}
}
