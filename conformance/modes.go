package conformance

import (
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// settleModesAnswered: the settle modes an intermediary answers an attach with (part
// 2.7.3: the answer says which modes are in use; a client that insists on others must
// refuse the link, as go-amqp does). qdrouterd answers every attach with snd-settle-mode
// mixed and rcv-settle-mode first, whatever was asked. qpidd answers rcv-settle-mode
// first too; where it sends it keeps the sender mode asked for (settled means it sends
// every message settled), and where it receives it answers mixed.
func settleModesAnswered(t testingT, h *Harness) {
	c := connectFrames(t, h)
	addr := h.queue("modes")
	zero := uint32(0)
	for _, clientRole := range []wire.Role{wire.RoleReceiver, wire.RoleSender} {
		for _, snd := range []wire.SenderSettleMode{wire.SenderSettleModeUnsettled, wire.SenderSettleModeSettled, wire.SenderSettleModeMixed} {
			for _, rcv := range []wire.ReceiverSettleMode{wire.ReceiverSettleModeFirst, wire.ReceiverSettleModeSecond} {
				a := &wire.Attach{Role: clientRole, SndSettleMode: snd, RcvSettleMode: rcv,
					Source: &wire.Source{Address: addr}, Target: &wire.Target{Address: addr}}
				if clientRole == wire.RoleSender {
					a.InitialDeliveryCount = &zero
				}
				peer := c.attach(a)
				wantSnd := wire.SenderSettleModeMixed
				if h.Kind == Broker && clientRole == wire.RoleReceiver {
					wantSnd = snd
				}
				if peer.SndSettleMode != wantSnd || peer.RcvSettleMode != wire.ReceiverSettleModeFirst {
					t.Errorf("a %s's %s link asking snd-settle-mode %v, rcv-settle-mode %v was answered %v, %v; want %v, first",
						h.Kind, roleName(clientRole), snd, rcv, peer.SndSettleMode, peer.RcvSettleMode, wantSnd)
				}
			}
		}
	}
}

// roleName names the client's side of a link.
func roleName(clientRole wire.Role) string {
	if clientRole == wire.RoleSender {
		return "sending"
	}
	return "receiving"
}
