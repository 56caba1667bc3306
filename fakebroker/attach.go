package fakebroker

import (
	"fmt"
	"slices"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// How qpidd 1.39.0 answers attaches (src/qpid/broker/amqp/Session.cpp): with termini
// of its own, not the client's. The node's side carries the node's address, the
// capabilities asked for that the node has, distribution-mode move for a queue
// source, the subscription's binding as a filter for a topic source, and
// dynamic-node-properties when some were sent; everything else is left to the
// defaults (durable none, expiry-policy session-end, timeout 0, dynamic false). The
// other side is an empty terminus.

// lifetime says when a node goes away, as qpidd's queue settings do.
type lifetime int

const (
	// lifeManual: never (configured queues, create-on-demand, shared subscriptions
	// that are not auto-deleted).
	lifeManual lifetime = iota
	// lifeUnusedAndEmpty: once no link uses it and it holds no message (queues made by
	// a pattern: qpidd's delete-if-unused-and-empty). The fake keeps such a queue for
	// its counts but treats it as gone (retired) until a link attaches to it again.
	lifeUnusedAndEmpty
	// lifeUnused: once no link uses it, messages and all (dynamic nodes, and
	// subscriptions that are not durable and whose link did not ask for unsettled
	// delivery: qpidd's auto-delete), after the source's timeout when it set one.
	lifeUnused
	// lifeOnClose: when the link that made it goes (a dynamic node asking for
	// lifetime-policy delete-on-close); links still attached to it are detached.
	lifeOnClose
	// lifeDetach: when the client detaches its subscriber's link; it outlives the
	// link's session and connection, so the same container-id and link name resume it
	// (durable subscriptions, and those whose link asked for unsettled delivery).
	lifeDetach
)

const (
	capQueue          = "queue"
	capTopic          = "topic"
	capShared         = "shared"
	capDurable        = "durable"
	capCreateOnDemand = "create-on-demand"
	capDirectBinding  = "legacy-amqp-direct-binding"
	capTopicBinding   = "legacy-amqp-topic-binding"
)

// legacyTopicBinding is the descriptor of apache.org:legacy-amqp-topic-binding:string,
// the filter qpidd answers a topic subscription with.
const legacyTopicBinding = uint64(0x0000468C00000001)

// The selector filter's descriptor, apache.org:selector-filter:string, as a code and
// as a symbol: qpidd takes either.
const (
	selectorFilterCode   = uint64(0x0000468C00000004)
	selectorFilterSymbol = wire.Symbol("apache.org:selector-filter:string")
)

// askedSelector returns the selector filter of a source's filter set with the key the
// client gave it (nil when there is none): a string described by the selector
// descriptor. qpidd keeps the first one of the map; the fake, which has no order of
// the map's entries, the one of the lowest key.
func askedSelector(filter wire.Fields) wire.Fields {
	var key wire.Symbol
	var found *wire.Described
	for k, v := range filter {
		d, ok := v.(*wire.Described)
		if !ok {
			continue
		}
		if _, isString := d.Value.(string); !isString {
			continue
		}
		if d.Descriptor != selectorFilterCode && d.Descriptor != selectorFilterSymbol {
			continue
		}
		if found == nil || k < key {
			key, found = k, d
		}
	}
	if found == nil {
		return nil
	}
	return wire.Fields{key: &wire.Described{Descriptor: found.Descriptor, Value: found.Value}}
}

func hasCap(caps []wire.Symbol, c wire.Symbol) bool { return slices.Contains(caps, c) }

// answerCaps keeps the capabilities asked for that a node of kind has, in the order
// asked (qpidd's collectQueueCapabilities and collectExchangeCapabilities; the fake's
// nodes are never durable).
func answerCaps(asked []wire.Symbol, kind Kind) []wire.Symbol {
	var out []wire.Symbol
	for _, c := range asked {
		switch c {
		case capCreateOnDemand, capTopicBinding:
		case capQueue, capDirectBinding:
			if kind != Queue {
				continue
			}
		case capTopic, capShared:
			if kind != Topic {
				continue
			}
		default:
			continue
		}
		out = append(out, c)
	}
	return out
}

// nodeProperties answers dynamic-node-properties a client sent (none when it sent
// none): the distribution modes the node supports and, when one was asked for, the
// lifetime policy the node has.
func nodeProperties(asked wire.Fields, n *node) wire.Fields {
	if len(asked) == 0 {
		return nil
	}
	out := wire.Fields{"supported-dist-modes": "move"}
	if n.kind == Topic {
		out["supported-dist-modes"] = "copy"
		return out
	}
	_, lp := asked["lifetime-policy"]
	_, ad := asked["auto-delete"]
	if lp || ad {
		switch n.life {
		case lifeOnClose:
			out["lifetime-policy"] = &wire.DeleteOnClose{}
		case lifeUnused:
			out["lifetime-policy"] = &wire.DeleteOnNoLinks{}
		case lifeUnusedAndEmpty:
			out["lifetime-policy"] = &wire.DeleteOnNoLinksOrMessages{}
		}
	}
	return out
}

func preconditionFailed(desc string) *wire.Error {
	return &wire.Error{Condition: wire.ErrCondPreconditionFailed, Description: desc}
}

func nodeNotFound(addr string) *wire.Error {
	return &wire.Error{Condition: wire.ErrCondNotFound, Description: "Node not found: " + addr}
}

// emptySource and emptyTarget are what qpidd answers for the client's side of a link.
func emptySource() *wire.Source {
	return &wire.Source{ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd}
}
func emptyTarget() *wire.Target {
	return &wire.Target{ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd}
}

// resolveLocked returns the node called addr. A node that does not exist is created
// when the terminus asks for create-on-demand (a queue, or a topic when it asks for
// the topic capability; kept until the broker goes) or else when a pattern matches; a
// retired queue comes back.
func (b *Broker) resolveLocked(addr string, caps []wire.Symbol) (*node, error) {
	if n := b.nodes[addr]; n != nil {
		n.retired = false
		return n, nil
	}
	if hasCap(caps, capCreateOnDemand) {
		kind := Queue
		if hasCap(caps, capTopic) && !hasCap(caps, capQueue) {
			kind = Topic
		}
		return b.newNodeLocked(addr, kind), nil
	}
	kind, pattern, ok := b.policy.lookup(addr)
	if !ok {
		b.opts.Logger.Debug("fakebroker: no node, and no pattern creates it", "address", addr, "patterns", b.policy.describe())
		return nil, nodeNotFound(addr)
	}
	n := b.newNodeLocked(addr, kind)
	n.pattern = pattern
	if kind == Queue {
		n.life = lifeUnusedAndEmpty
	}
	return n, nil
}

// dynamicLocked returns the node of a dynamic terminus: a queue named
// <container-id>_<link-name> (qpidd's name; an existing node of that name is used as
// it is), deleted once no link uses it, or with its link when the terminus asks for
// lifetime-policy delete-on-close.
func (b *Broker) dynamicLocked(l *engine.Link, props wire.Fields) *node {
	name := l.Conn().ContainerID()
	if name == "" {
		name = newUUID()
	}
	name += "_" + l.Name()
	if n := b.nodes[name]; n != nil {
		n.retired = false
		n.deleteAt = 0
		return n
	}
	n := b.newNodeLocked(name, Queue)
	n.temporary, n.dynamic, n.owner = true, true, l
	n.life = lifeUnused
	if _, ok := props["lifetime-policy"].(*wire.DeleteOnClose); ok {
		n.life = lifeOnClose
	}
	return n
}

// attach decides on a link a client attached.
func (b *Broker) attach(l *engine.Link) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// qpidd answers rcv-settle-mode first whatever was asked; where it sends it keeps
	// the sender settle mode asked for, where it receives it answers mixed.
	if l.Role() == wire.RoleSender {
		l.SetSettleModes(l.SenderSettleMode(), wire.ReceiverSettleModeFirst)
		l.SetTarget(emptyTarget())
		return b.attachConsumerLocked(l)
	}
	l.SetSettleModes(wire.SenderSettleModeMixed, wire.ReceiverSettleModeFirst)
	l.SetSource(emptySource())
	return b.attachSenderLocked(l)
}

func (b *Broker) attachConsumerLocked(l *engine.Link) error {
	src := l.Source()
	if src == nil || (src.Address == "" && !src.Dynamic) {
		return preconditionFailed("No source specified!")
	}
	var n *node
	var limits wire.Fields
	if src.Dynamic {
		n = b.dynamicLocked(l, src.DynamicNodeProperties)
	} else {
		fresh := b.absentLocked(src.Address)
		var err error
		if n, err = b.resolveLocked(src.Address, src.Capabilities); err != nil {
			return err
		}
		if limits, err = b.onDemandLimitsLocked(n, fresh, src.Capabilities, src.DynamicNodeProperties); err != nil {
			return err
		}
	}
	answer := &wire.Source{Address: n.name, ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd,
		Capabilities: answerCaps(src.Capabilities, n.kind), DynamicNodeProperties: withLimits(nodeProperties(src.DynamicNodeProperties, n), limits)}
	co := &consumer{link: l, unacked: map[*message]struct{}{}}
	// A selector is answered as qpidd answers it, under the client's key, but not
	// applied (see the package doc).
	answer.Filter = askedSelector(src.Filter)
	if n.kind == Topic {
		sub, err := b.subscribeLocked(l, n, src)
		if err != nil {
			return err
		}
		if answer.Filter == nil {
			answer.Filter = wire.Fields{}
		}
		answer.Filter["default-subject-filter"] = &wire.Described{Descriptor: legacyTopicBinding, Value: "#"}
		// A subscription's copies go pre-settled unless the link asked for unsettled
		// delivery (qpidd: unreliable unless reliable is asked for, on exclusive
		// subscriptions).
		co.presettle = sub.exclusive && l.SenderSettleMode() != wire.SenderSettleModeUnsettled
		n = sub
	} else if src.DistributionMode == wire.Symbol(wire.StdDistModeCopy) {
		// A browser: it sees the queue's messages and takes none (browse.go).
		answer.DistributionMode = wire.Symbol(wire.StdDistModeCopy)
		co.browse = true
	} else {
		answer.DistributionMode = wire.Symbol(wire.StdDistModeMove)
	}
	l.SetSource(answer)
	co.node = n
	n.deleteAt = 0
	l.Context = co
	n.consumers = append(n.consumers, co)
	b.notifyLocked()
	return nil
}

// subscribeLocked returns the subscription queue of a receiver on topic t: named
// <container-id>_<link-name>, or the link's name alone for a shared subscription (the
// shared capability), and bound to t. An existing one is resumed; a subscription
// that is not shared and has a consumer already refuses another (qpidd:
// resource-locked, sent as amqp:internal-error).
func (b *Broker) subscribeLocked(l *engine.Link, t *node, src *wire.Source) (*node, error) {
	shared := hasCap(src.Capabilities, capShared)
	name := l.Name()
	if !shared {
		name = l.Conn().ContainerID() + "_" + name
	}
	if n := b.nodes[name]; n != nil {
		if n.exclusive && len(n.consumers) > 0 {
			return nil, &wire.Error{Condition: wire.ErrCondInternalError,
				Description: fmt.Sprintf("resource-locked: Queue %s already has consumers. Exclusive access denied.", name)}
		}
		if n.topic == t {
			n.retired = false
			return n, nil
		}
		// A node of that name that is not a subscription of t: qpidd would bind it
		// to t as well; the fake makes a subscription of another name.
		for i := 2; b.nodes[name] != nil; i++ {
			name = fmt.Sprintf("%s_%s_%d", l.Conn().ContainerID(), l.Name(), i)
		}
	}
	sub := b.newNodeLocked(name, Queue)
	sub.temporary, sub.topic, sub.exclusive = true, t, !shared
	b.setLimitsLocked(sub, name, t.name)
	t.subs = append(t.subs, sub)
	durable := src.Durable != wire.TerminusDurabilityNone
	autoDelete := !durable && l.SenderSettleMode() != wire.SenderSettleModeUnsettled
	switch {
	case src.Timeout > 0:
		sub.life, sub.delay = lifeUnused, int64(src.Timeout)*1e9
	case autoDelete:
		sub.life = lifeUnused
	case !shared:
		sub.life = lifeDetach
	default:
		sub.life = lifeManual
	}
	return sub, nil
}

func (b *Broker) attachSenderLocked(l *engine.Link) error {
	tgt := l.Target()
	if tgt == nil {
		return preconditionFailed("No target specified!")
	}
	s := &sender{link: l}
	var limits wire.Fields
	answer := &wire.Target{ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd}
	switch {
	case tgt.Dynamic:
		s.node = b.dynamicLocked(l, tgt.DynamicNodeProperties)
	case tgt.Address == "":
		// Anonymous relay: each message goes where its to property says.
	default:
		fresh := b.absentLocked(tgt.Address)
		n, err := b.resolveLocked(tgt.Address, tgt.Capabilities)
		if err != nil {
			return err
		}
		s.node = n
		answer.Capabilities = answerCaps(tgt.Capabilities, n.kind)
		if limits, err = b.onDemandLimitsLocked(n, fresh, tgt.Capabilities, tgt.DynamicNodeProperties); err != nil {
			return err
		}
	}
	if n := s.node; n != nil {
		answer.Address = n.name
		answer.DynamicNodeProperties = withLimits(nodeProperties(tgt.DynamicNodeProperties, n), limits)
		n.deleteAt = 0
		n.senders = append(n.senders, s)
		b.notifyLocked()
	}
	l.SetTarget(answer)
	l.Context = s
	if !b.creditStopped {
		return l.SetCredit(b.opts.LinkCredit)
	}
	return nil
}

// users counts the links attached to n.
func (n *node) users() int { return len(n.consumers) + len(n.senders) }

// linkLeftLocked applies n's lifetime once link l, one of its users, is gone (detached
// by the client when byClient). It returns links to close when n was deleted.
func (b *Broker) linkLeftLocked(n *node, l *engine.Link, byClient bool) []*engine.Link {
	if n.deleted {
		return nil
	}
	switch n.life {
	case lifeOnClose:
		if n.owner == l {
			return b.deleteNodeLocked(n)
		}
	case lifeDetach:
		if byClient {
			if co, ok := l.Context.(*consumer); ok && co.node == n {
				return b.deleteNodeLocked(n)
			}
		}
	case lifeUnused:
		if n.users() == 0 {
			// A subscriber's closing detach deletes its subscription at once.
			if n.delay > 0 && !(n.exclusive && l.ClosedByPeer()) {
				n.deleteAt = b.opts.Now().UnixNano() + n.delay
				return nil
			}
			return b.deleteNodeLocked(n)
		}
	case lifeUnusedAndEmpty:
		b.maybeRetireLocked(n)
	}
	return nil
}

// maybeRetireLocked retires a queue made by a pattern once no link uses it and it is
// empty: qpidd deletes it then.
func (b *Broker) maybeRetireLocked(n *node) {
	if n.life == lifeUnusedAndEmpty && !n.retired && n.users() == 0 && n.depth() == 0 {
		n.retired = true
		b.notifyLocked()
	}
}

// sweepDeletionsLocked deletes the unused nodes whose delay (a subscriber's source
// timeout) has run out.
func (b *Broker) sweepDeletionsLocked(now int64) {
	for _, n := range b.nodes {
		if n.deleteAt != 0 && n.deleteAt <= now && n.users() == 0 {
			b.deleteNodeLocked(n) // unused: no link to close
		}
	}
}
