#!/usr/bin/python3
"""Independent AMQP 1.0 client test peer built on Qpid Proton's Python API.

Run by Go tests as a subprocess with Debian's /usr/bin/python3 (python3-qpid-proton 0.37):

  proton_client.py --url amqp://[user:pass@]127.0.0.1:PORT
      [--sasl-mechs "PLAIN"|"ANONYMOUS"] [--allow-insecure] [--no-sasl]
      [--max-frame-size BYTES]
      [--send ADDRESS --count N --size BYTES [--presettled]]
      [--receive ADDRESS --count N [--size BYTES]]
      [--timeout SECONDS]

Sending: N messages; message i (0-based) carries i in the application property
"seq" and a body of BYTES bytes all equal to i % 256 (a data section by default,
--body-section value for an amqp-value holding binary). Each delivery's outcome
(accepted, rejected, released, modified; "presettled" with --presettled) is
recorded.

Receiving: grants exactly N credits, receives N messages, accepts each and checks
every body (size equal to --size when given, content consistent with "seq").

When both --send and --receive are given, the sends complete (all outcomes known)
before the receiver attaches. Both use the same connection.

Output: one JSON object on stdout, e.g.
  {"sent": 5, "outcomes": {"accepted": 5}, "outcome_list": [...],
   "received": 5, "received_seq": [0, 1, 2, 3, 4], "received_sizes": [...],
   "peer": {"container_id": ..., "properties": {...}}, "error": null}
Exit status: 0 on success; 1 on an AMQP error (connection, session, link or
transport error, SASL failure), a timeout or a body check failure, with "error"
set to "<condition>: <description>"; 2 on bad usage (from argparse).

--no-sasl connects without any SASL layer: the AMQP protocol header comes first, as
the Python oslo driver does when it has no credentials. --max-frame-size sets the
max-frame-size Proton announces in its open (Proton's default is unlimited), so that
the peer must split large messages it sends to this client.

Every wait is bounded by --timeout (default 10 s): the client never reconnects.
"""

import argparse
import json
import sys

from proton import Delivery, Described, Message
from proton.handlers import MessagingHandler
from proton.reactor import AtMostOnce, AtLeastOnce, Container


def _jsonable(value):
    """Turns AMQP values from Proton into something json.dumps accepts."""
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, Described):
        return {"descriptor": _jsonable(value.descriptor), "value": _jsonable(value.value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _condition_text(cond, fallback):
    if cond is None:
        return fallback
    text = "%s: %s" % (cond.name, cond.description or "")
    if cond.info:
        text += " %s" % (_jsonable(dict(cond.info)) if hasattr(cond.info, "items") else cond.info)
    return text.strip()


class _Stopper:
    """Timer target that stops the container: bounds the wait for a peer's close."""

    def __init__(self, container):
        self.container = container

    def on_timer_task(self, event):
        self.container.stop()


class Client(MessagingHandler):
    def __init__(self, args):
        # prefetch=0: credit is granted by hand (exactly --count), so no message
        # beyond the requested ones is taken off the peer.
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True)
        self.args = args
        self.conn = None
        self.timer = None
        self.stopper = None
        self.sender = None
        self.receiver = None
        self.phase = None  # "send", "receive", "done"
        self.error = None
        self.sent = 0
        self.outcome_by_seq = {}  # seq -> outcome
        self.conditions = {}  # seq -> rejection condition
        self.tag_to_seq = {}
        self.received_seq = []
        self.received_sizes = []
        self.body_errors = []
        self.peer = None
        self.send_size = 16 if args.size is None else args.size
        self.check_size = args.size  # receive sizes are checked only when --size is given

    # ---- helpers -------------------------------------------------------
    def fail(self, text):
        if self.error is None:
            self.error = text
        self.finish()
        # A failing peer may never answer our close: stop regardless after a grace period.
        if self.stopper is None:
            self.stopper = self.container.schedule(1.0, _Stopper(self.container))

    def cancel_stopper(self):
        if self.stopper is not None:
            self.stopper.cancel()
            self.stopper = None

    def finish(self):
        self.phase = "done"
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def body_for(self, seq):
        return bytes([seq % 256]) * self.send_size

    def start_send(self):
        self.phase = "send"
        opts = [AtMostOnce()] if self.args.presettled else [AtLeastOnce()]
        self.sender = self.container.create_sender(self.conn, self.args.send, options=opts)

    def start_receive(self):
        self.phase = "receive"
        self.receiver = self.container.create_receiver(self.conn, self.args.receive)
        if self.args.count > 0:
            self.receiver.flow(self.args.count)

    def next_phase(self):
        if self.phase == "send":
            if self.sender is not None:
                self.sender.close()
                self.sender = None
            if self.args.receive is not None and self.args.count > 0:
                self.start_receive()
                return
        if self.phase == "receive" and self.receiver is not None:
            self.receiver.close()
            self.receiver = None
        self.finish()

    def sends_complete(self):
        return self.sent >= self.args.count and len(self.outcome_by_seq) >= self.args.count

    # ---- events --------------------------------------------------------
    def on_start(self, event):
        self.container = event.container
        self.timer = event.container.schedule(self.args.timeout, self)
        kwargs = {
            "reconnect": False,
            "allow_insecure_mechs": self.args.allow_insecure,
        }
        if self.args.no_sasl:
            kwargs["sasl_enabled"] = False
        elif self.args.sasl_mechs:
            kwargs["allowed_mechs"] = self.args.sasl_mechs
        if self.args.max_frame_size:
            kwargs["max_frame_size"] = self.args.max_frame_size
        self.conn = event.container.connect(self.args.url, **kwargs)

    def on_timer_task(self, event):
        self.timer = None
        if self.peer is None:
            self.fail("timeout: connection not open within %gs (TCP connect, SASL authentication "
                      "or AMQP open did not complete)" % self.args.timeout)
            return
        where = self.phase
        self.fail("timeout: no completion within %gs (phase %s, sent %d, outcomes %d, received %d)"
                  % (self.args.timeout, where, self.sent, len(self.outcome_by_seq),
                     len(self.received_seq)))

    def on_connection_opened(self, event):
        conn = event.connection
        self.peer = {
            "container_id": conn.remote_container,
            "hostname": conn.remote_hostname,
            "properties": _jsonable(dict(conn.remote_properties)) if conn.remote_properties else None,
            "offered_capabilities": _jsonable(list(conn.remote_offered_capabilities))
            if conn.remote_offered_capabilities else None,
            "sasl_mech": None,
        }
        try:
            # transport.sasl() would create a SASL layer: not on a --no-sasl transport.
            if event.transport is not None and not self.args.no_sasl:
                self.peer["sasl_mech"] = event.transport.sasl().mech or None
        except Exception:  # noqa: BLE001 - SASL disabled or not negotiated
            pass
        if self.phase is not None:
            return
        if self.args.send is not None and self.args.count > 0:
            self.start_send()
        elif self.args.receive is not None and self.args.count > 0:
            self.start_receive()
        else:
            self.finish()

    def on_sendable(self, event):
        if self.phase != "send" or event.sender != self.sender:
            return
        while self.sender.credit > 0 and self.sent < self.args.count:
            seq = self.sent
            msg = Message(body=self.body_for(seq), properties={"seq": seq}, durable=False)
            msg.inferred = self.args.body_section == "data"
            dlv = self.sender.send(msg)
            self.sent += 1
            if self.args.presettled:
                self.outcome_by_seq[seq] = "presettled"
            else:
                self.tag_to_seq[dlv.tag] = seq
        if self.args.presettled and self.sends_complete():
            self.next_phase()

    def _outcome(self, event, outcome):
        seq = self.tag_to_seq.get(event.delivery.tag)
        if seq is None or seq in self.outcome_by_seq:
            return
        self.outcome_by_seq[seq] = outcome
        if outcome in ("rejected", "modified"):
            cond = getattr(event.delivery.remote, "condition", None)
            if cond is not None:
                self.conditions[seq] = _condition_text(cond, "")
        if self.phase == "send" and self.sends_complete():
            self.next_phase()

    def on_accepted(self, event):
        self._outcome(event, "accepted")

    def on_rejected(self, event):
        self._outcome(event, "rejected")

    def on_released(self, event):
        if event.delivery.remote_state == Delivery.MODIFIED:
            self._outcome(event, "modified")
        else:
            self._outcome(event, "released")

    def on_settled(self, event):
        # Settled by the peer without a known outcome.
        if event.delivery.link.is_sender:
            self._outcome(event, "settled")

    def on_message(self, event):
        if self.phase != "receive" or event.receiver != self.receiver:
            return
        msg = event.message
        seq = None
        if msg.properties and "seq" in msg.properties:
            seq = msg.properties["seq"]
            seq = int(seq) if isinstance(seq, int) else seq
        body = msg.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body)
            size = len(body)
        elif isinstance(body, str):
            size = len(body.encode("utf-8"))
            body = None
        else:
            size = None
            body = None
        self.received_seq.append(seq)
        self.received_sizes.append(size)
        if self.check_size is not None and size != self.check_size:
            self.body_errors.append("message %d (seq %r): body size %r, want %d"
                                    % (len(self.received_seq) - 1, seq, size, self.check_size))
        elif body is not None and isinstance(seq, int) and body != bytes([seq % 256]) * size:
            self.body_errors.append("message %d (seq %r): body content does not match seq"
                                    % (len(self.received_seq) - 1, seq))
        self.accept(event.delivery)
        if len(self.received_seq) >= self.args.count:
            self.next_phase()

    # ---- errors --------------------------------------------------------
    def on_transport_error(self, event):
        cond = event.transport.condition
        text = _condition_text(cond, "transport error")
        if cond is not None and cond.name == "amqp:unauthorized-access" and \
                "auth" not in text.lower():
            text += " (authentication failed)"
        if "mech=none" in text:
            text += (" (no SASL mechanism in common with the peer; PLAIN without TLS also needs"
                     " --allow-insecure)")
        if self.error is None:
            self.error = text
        self.finish()
        # The transport is gone: nothing left to wait for.
        event.container.stop()

    def on_connection_error(self, event):
        self.fail(_condition_text(event.connection.remote_condition, "connection closed by peer"))

    def on_session_error(self, event):
        self.fail(_condition_text(event.session.remote_condition, "session ended by peer"))

    def on_link_error(self, event):
        self.fail(_condition_text(event.link.remote_condition, "link detached by peer"))

    def on_connection_closed(self, event):
        self.conn = None
        if self.phase != "done":
            self.fail("connection closed by peer before completion")
        elif self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.cancel_stopper()

    def on_transport_closed(self, event):
        self.cancel_stopper()

    def on_link_closed(self, event):
        if self.phase == "done":
            return
        link = event.link
        if link == self.sender or link == self.receiver:
            self.fail(_condition_text(link.remote_condition, "link detached by peer"))

    def on_disconnected(self, event):
        if self.phase != "done":
            cond = event.transport.condition if event.transport else None
            self.fail(_condition_text(cond, "disconnected before completion"))

    # ---- result --------------------------------------------------------
    def result(self):
        out = {}
        if self.args.send is not None:
            counts = {}
            outcome_list = []
            for seq in range(self.sent):
                outcome = self.outcome_by_seq.get(seq, "unsettled")
                outcome_list.append(outcome)
                counts[outcome] = counts.get(outcome, 0) + 1
            out["sent"] = self.sent
            out["outcomes"] = counts
            out["outcome_list"] = outcome_list
            if self.conditions:
                out["conditions"] = {str(k): v for k, v in sorted(self.conditions.items())}
        if self.args.receive is not None:
            out["received"] = len(self.received_seq)
            out["received_seq"] = self.received_seq
            out["received_sizes"] = self.received_sizes
        out["peer"] = self.peer
        error = self.error
        if error is None and self.body_errors:
            error = "body check failed: " + "; ".join(self.body_errors[:5])
        out["error"] = error
        return out


def parse_args(argv):
    p = argparse.ArgumentParser(description="Qpid Proton AMQP 1.0 client test peer")
    p.add_argument("--url", required=True, help="amqp://[user:pass@]host:port")
    p.add_argument("--sasl-mechs", default=None,
                   help='space-separated SASL mechanisms to allow, e.g. "PLAIN" or "ANONYMOUS"')
    p.add_argument("--allow-insecure", action="store_true",
                   help="allow mechanisms that send clear-text passwords (PLAIN) without TLS")
    p.add_argument("--no-sasl", action="store_true",
                   help="no SASL layer at all: send the AMQP protocol header first")
    p.add_argument("--max-frame-size", type=int, default=None, metavar="BYTES",
                   help="max-frame-size announced in open (default: Proton's, unlimited)")
    p.add_argument("--send", metavar="ADDRESS", default=None)
    p.add_argument("--receive", metavar="ADDRESS", default=None)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--size", type=int, default=None,
                   help="body size in bytes (sending: default 16; receiving: checked if given)")
    p.add_argument("--presettled", action="store_true", help="send pre-settled (at-most-once)")
    p.add_argument("--body-section", choices=("data", "value"), default="data",
                   help="send the binary body as a data section (default) or an amqp-value")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.send is None and args.receive is None:
        p.error("give --send ADDRESS and/or --receive ADDRESS")
    if args.count < 0:
        p.error("--count must be >= 0")
    if args.size is not None and args.size < 0:
        p.error("--size must be >= 0")
    if args.timeout <= 0:
        p.error("--timeout must be > 0")
    if args.max_frame_size is not None and args.max_frame_size < 512:
        p.error("--max-frame-size must be >= 512 (AMQP's minimum)")
    if args.no_sasl and args.sasl_mechs:
        p.error("--no-sasl and --sasl-mechs exclude each other")
    return args


def main(argv):
    args = parse_args(argv)
    client = Client(args)
    try:
        Container(client).run()
    except Exception as e:  # noqa: BLE001 - report anything as a JSON error
        if client.error is None:
            client.error = "client exception: %s: %s" % (type(e).__name__, e)
    result = client.result()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
