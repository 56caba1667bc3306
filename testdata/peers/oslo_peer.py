#!/usr/bin/python3
"""A real OpenStack-style peer built on oslo.messaging's public API (AMQP 1.0 driver).

Run by Go tests (internal/testenv/pyoslo) as a subprocess with Debian's /usr/bin/python3
(python3-oslo.messaging 14.0.3, python3-pyngus, python3-qpid-proton). Only the public
oslo.messaging API is used: get_rpc_transport, get_notification_transport, get_rpc_client,
get_rpc_server, Notifier, get_notification_listener, get_batch_notification_listener,
Target, NotificationResult, set_transport_defaults.

Subcommands (common options: --url URL, --opt [GROUP.]KEY=VALUE (repeatable; GROUP defaults
to oslo_messaging_amqp), --exchange NAME (control_exchange), --timeout SECONDS (default 10),
--config-file FILE, --no-stdin, --debug):

  rpc-server --topic T --server S [--executor threading] [--count N]
             [--namespace NS] [--version V]
      Serves echo, fail, boom, sleep, record, whoami and context (see PeerEndpoint).
      Prints {"event":"ready",...} after server.start() (the driver attaches its links
      asynchronously, so a peer must still wait at the intermediary), one
      {"event":"call","method":M,"server":S} when each request starts, and
      {"event":"cast","server":S,"kw":{...}} from record(). Stops on stdin EOF, SIGTERM,
      SIGINT, after N handled requests, or after --timeout seconds (0: no limit; prints
      {"event":"timeout"}), then server.stop(), server.wait(), transport.cleanup() and
      {"event":"stopped",...}.

  rpc-call --topic T [--server S] [--fanout] --method M [--args JSON] [--cast]
           [--call-timeout SECONDS] [--repeat N] [--context JSON] [--retry N]
           [--call-monitor-timeout SECONDS] [--namespace NS] [--version V]
           [--allowed-remote-exmods MOD,...]
      One line per call: {"result": R, "elapsed": s} or
      {"error": {"class", "module", "message", ...}, "elapsed": s}. --fanout implies
      --cast (oslo has no fanout call). A cast prints {"result": null, "cast": true}. The
      call timeout defaults to --timeout. Exit 0 whatever the outcome of the calls.

  notify --topic T --priority P --event-type E [--payload JSON] [--publisher-id ID]
         [--count N] [--driver messagingv2|messaging] [--retry N] [--context JSON]
      One {"event":"notified","n":i,...} line per notification; the Notifier swallows send
      errors, so errors it logs are captured and reported in an "error" field.

  listen --topic T [--priorities info,error,...] [--pool P] [--count N]
         [--requeue-first K] [--batch-size N --batch-timeout S]
      Prints {"event":"ready"} after listener.start(), then one
      {"event":"notification",...} per notification (or {"event":"batch","size":n,
      "items":[...]} with --batch-size), {"event":"requeued",...} for the first K that it
      answers with NotificationResult.REQUEUE. Stops like rpc-server (--count counts handled
      notifications).

  bench [--topic T] [--count N] [--runs R] [--concurrency C] [--no-server]
        [--only calls,concurrent,casts,notifications]
      Throughput of the driver itself, RPC server and client (and a listener and a
      notifier) in this process, each on its own transport: R runs (default 3) of N
      (default 1000) sequential calls of echo(value=i) with their latencies, N calls from
      C (default 16) threads, N casts (timed until the server has them all) and N
      notifications (each waits for the listener's acknowledgement, timed until the
      listener has them all). Prints one {"event":"bench_run",...} line per run and
      measurement, then {"event":"bench","count":N,"runs":R,"calls_per_s":...,"p50_us":...,
      "p99_us":...,"concurrency":C,"concurrent_calls_per_s":...,"concurrent_p50_us":...,
      "concurrent_p99_us":...,"casts_per_s":...,"notifications_per_s":...} with the median
      of the runs of each figure. --no-server measures only the calls, against a server
      that someone else runs on the topic (one with an echo(value) method).

  session
      One long-lived process that plays every role on command, for tests that would
      otherwise start many processes. Prints {"event":"ready"}, then reads one JSON command
      per line on stdin, runs each in a thread of its own and answers with one line
      {"id": ID, "op": OP, ...} per command:
        {"op":"call"|"cast","topic","server"?,"fanout"?,"method","args"?,"context"?,
         "timeout"?,"retry"?,"exchange"?,"url"?}  -> {"result"|"error","elapsed"}
        {"op":"notify","topic","priority","event_type","payload"?,"publisher_id"?,
         "driver"?,"retry"?,"count"?,"parallel"?,"number"?,"url"?}  -> {"notified",
         "errors"?} ("number" adds n=i to each payload; "parallel" sends from threads)
        {"op":"rpc-server","name"?,"topic","server","url"?}  -> {"ok"}; its endpoint
         prints the call and cast events of rpc-server
        {"op":"listen","name","topic","priorities"?,"pool"?,"batch_size"?,
         "batch_timeout"?,"requeue_first"?,"url"?}  -> {"ok"} or {"error"}; its events
         are listen's, with "listener": name
        {"op":"stop","name"}  -> stops that server or listener and its transport
      Each server and listener has a transport (a connection) of its own; calls and casts
      share one RPC transport, notifications one notification transport, per URL ("url"
      may carry [oslo_messaging_amqp] options as query parameters). Stops on stdin EOF:
      every server and listener is stopped, every transport cleaned up, then
      {"event":"stopped"}. --timeout bounds the whole process (watchdog).

  selftest [--topic T]
      RPC server and client (and a notifier and listener) in this process: echo, a remote
      ValueError, a remote custom exception, a call to a named server, a cast, a fanout
      cast, a call timeout and a notification. One {"check":NAME,"ok":bool,...} line per
      check, then {"event":"selftest","ok":bool,"checks":{...}}; exit 0 only if all pass.

Output: JSON lines on stdout, flushed one by one; logs on stderr (WARNING, DEBUG with
--debug). Exit status: 0 when the script did its job (whatever oslo raised), 1 on a crash or a
selftest failure, 2 on bad usage, 124 when the watchdog (--timeout plus a grace) fires.
"""

import argparse
import faulthandler
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid

# Imported by main() once the arguments are parsed, so that usage errors and --help are quick
# (importing oslo.messaging takes a second or more).
cfg = None
oslo_messaging = None

# Extra time the watchdog allows beyond --timeout for start-up and a clean stop.
GRACE = 15.0

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")

_out_lock = threading.Lock()


def emit(obj):
    """Writes one JSON line on stdout and flushes it."""
    line = json.dumps(obj, default=_json_default, sort_keys=False)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class CustomError(Exception):
    """Raised by the endpoint's boom(): a non-builtin exception for remote-error checks."""


def describe_error(exc):
    """The oslo exception as raised, for the JSON output."""
    d = {
        "class": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
    }
    if isinstance(exc, oslo_messaging.RemoteError):
        d["exc_type"] = exc.exc_type
        d["value"] = exc.value
    try:
        d["args"] = json.loads(json.dumps(list(exc.args), default=str))
    except Exception:  # pragma: no cover - args are best effort
        pass
    return d


class Stopper:
    """Collects the reasons to stop: stdin EOF, signals, a count reached, the timeout."""

    def __init__(self):
        self.event = threading.Event()
        self.reason = None
        self._lock = threading.Lock()

    def stop(self, reason):
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self.event.set()

    def wait(self, timeout):
        """Waits until a stop is requested or timeout seconds pass (0: forever)."""
        deadline = None if not timeout else time.monotonic() + timeout
        while not self.event.is_set():
            if deadline is None:
                self.event.wait(0.5)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop("timeout")
                emit({"event": "timeout", "after": timeout})
                break
            self.event.wait(min(left, 0.5))
        return self.reason


def install_stoppers(stopper, watch_stdin):
    def on_signal(signum, frame):
        stopper.stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if watch_stdin:
        def read_stdin():
            # os.read, not sys.stdin: a daemon thread blocked inside a BufferedReader makes
            # the interpreter abort at exit ("could not acquire lock ... at interpreter
            # shutdown").
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stopper.stop("stdin")

        threading.Thread(target=read_stdin, name="stdin-watch", daemon=True).start()


def start_watchdog(seconds, what):
    """Kills the process if it is still running after seconds (a hang guard)."""
    if not seconds:
        return

    def fire():
        emit({"event": "watchdog", "after": seconds, "what": what})
        sys.stderr.write("oslo_peer: watchdog fired after %.1fs (%s); thread stacks:\n"
                         % (seconds, what))
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(124)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


# --------------------------------------------------------------------------- configuration

def usage_error(message):
    sys.stderr.write("oslo_peer.py: error: %s\n" % message)
    sys.exit(2)


def parse_opt(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError("--opt wants [GROUP.]KEY=VALUE, got %r" % text)
    key, value = text.split("=", 1)
    group = "oslo_messaging_amqp"
    if "." in key:
        group, key = key.rsplit(".", 1)
    if not key:
        raise argparse.ArgumentTypeError("--opt wants [GROUP.]KEY=VALUE, got %r" % text)
    return group, key.strip(), value


def configure(args):
    """Loads the global CONF as an OpenStack service does: from a config file.

    The --opt settings are written to a temporary config file, so that they apply whenever
    the driver registers its options (the global cfg.CONF is needed: a fresh ConfigOpts
    makes the RPC client fail with NoSuchOptError).
    """
    if args.exchange:
        oslo_messaging.set_transport_defaults(args.exchange)
    groups = {}
    for group, key, value in args.opt or []:
        groups.setdefault(group, []).append((key, value))
    cli = []
    path = None
    if groups:
        fd, path = tempfile.mkstemp(prefix="oslo_peer-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            for group, items in groups.items():
                f.write("[%s]\n" % group)
                for key, value in items:
                    f.write("%s = %s\n" % (key, value))
                f.write("\n")
    for extra in args.config_file or []:
        cli += ["--config-file", extra]
    if path:
        cli += ["--config-file", path]
    # Every RPC client starts oslo.metrics' non-daemon send thread, which lingers for
    # metrics_thread_stop_timeout (10 s) and holds up the process exit even with metrics
    # disabled. A config file or --opt can still set it.
    cfg.CONF.set_default("metrics_thread_stop_timeout", 0, group="oslo_messaging_metrics")
    try:
        cfg.CONF(cli, project="oslo_peer", default_config_files=[])
    finally:
        if path:
            os.unlink(path)
    return cfg.CONF


def setup_logging(debug):
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")


def json_arg(text):
    try:
        return json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError("not JSON: %s (%s)" % (text, e))


def json_obj_arg(text):
    value = json_arg(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("want a JSON object, got %s" % text)
    return value


# --------------------------------------------------------------------------- rpc server

class PeerEndpoint(object):
    """The RPC endpoint served by rpc-server and selftest."""

    def __init__(self, server, on_done=None, namespace=None, version=None, records=None):
        self.server = server
        self._on_done = on_done
        self._records = records
        if namespace or version:
            self.target = oslo_messaging.Target(namespace=namespace, version=version)

    def _begin(self, method):
        emit({"event": "call", "method": method, "server": self.server})

    def _end(self):
        if self._on_done:
            self._on_done()

    def echo(self, ctxt, **kw):
        """Returns its keyword arguments, or the single argument value= as it is."""
        self._begin("echo")
        try:
            if set(kw) == {"value"}:
                return kw["value"]
            return kw
        finally:
            self._end()

    def fail(self, ctxt, message="failure requested"):
        """Raises ValueError(message)."""
        self._begin("fail")
        try:
            raise ValueError(message)
        finally:
            self._end()

    def boom(self, ctxt, message="boom"):
        """Raises CustomError (module __main__), which callers get as a RemoteError."""
        self._begin("boom")
        try:
            raise CustomError(message)
        finally:
            self._end()

    def sleep(self, ctxt, seconds=1):
        """Sleeps, then returns the seconds slept."""
        self._begin("sleep")
        try:
            time.sleep(float(seconds))
            return seconds
        finally:
            self._end()

    def record(self, ctxt, **kw):
        """Prints {"event":"cast","server":S,"kw":kw}: observes casts and fanouts."""
        self._begin("record")
        try:
            emit({"event": "cast", "server": self.server, "kw": kw})
            if self._records is not None:
                self._records(self.server, kw)
            return None
        finally:
            self._end()

    def whoami(self, ctxt):
        """Returns the server name."""
        self._begin("whoami")
        try:
            return self.server
        finally:
            self._end()

    def context(self, ctxt):
        """Returns the request context as received."""
        self._begin("context")
        try:
            return ctxt
        finally:
            self._end()


def cmd_rpc_server(args):
    stopper = Stopper()
    install_stoppers(stopper, not args.no_stdin)
    conf = configure(args)
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    handled = [0]
    lock = threading.Lock()

    def on_done():
        with lock:
            handled[0] += 1
            n = handled[0]
        if args.count and n >= args.count:
            stopper.stop("count")

    endpoint = PeerEndpoint(args.server, on_done, args.namespace, args.version)
    target = oslo_messaging.Target(topic=args.topic, server=args.server)
    server = oslo_messaging.get_rpc_server(transport, target, [endpoint],
                                           executor=args.executor)
    server.start()
    emit({"event": "ready", "topic": args.topic, "server": args.server, "pid": os.getpid()})
    reason = stopper.wait(args.timeout)
    server.stop()
    server.wait()
    transport.cleanup()
    emit({"event": "stopped", "reason": reason, "handled": handled[0]})
    return 0


# --------------------------------------------------------------------------- rpc client

def cmd_rpc_call(args):
    conf = configure(args)
    exmods = [m for m in (args.allowed_remote_exmods or "").split(",") if m]
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url,
                                                 allowed_remote_exmods=exmods)
    call_timeout = args.call_timeout if args.call_timeout is not None else args.timeout
    target = oslo_messaging.Target(topic=args.topic, server=args.server,
                                   fanout=args.fanout or None,
                                   namespace=args.namespace, version=args.version)
    kwargs = {"timeout": call_timeout}
    if args.retry is not None:
        kwargs["retry"] = args.retry
    if args.call_monitor_timeout is not None:
        kwargs["call_monitor_timeout"] = args.call_monitor_timeout
    client = oslo_messaging.get_rpc_client(transport, target, **kwargs)
    cast = args.cast or args.fanout
    try:
        for i in range(args.repeat):
            t0 = time.monotonic()
            try:
                if cast:
                    client.cast(args.context, args.method, **args.args)
                    out = {"result": None, "cast": True}
                else:
                    out = {"result": client.call(args.context, args.method, **args.args)}
            except Exception as e:  # the oslo outcome, reported as raised
                out = {"error": describe_error(e)}
            out["elapsed"] = round(time.monotonic() - t0, 3)
            if args.repeat > 1:
                out["n"] = i
            emit(out)
    finally:
        transport.cleanup()
    return 0


# --------------------------------------------------------------------------- notifications

class _ErrorCatcher(logging.Handler):
    """Catches the send errors that the Notifier logs and swallows."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.errors = []

    def emit(self, record):
        err = {"log": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            err.update(describe_error(record.exc_info[1]))
        self.errors.append(err)


def cmd_notify(args):
    conf = configure(args)
    catcher = _ErrorCatcher()
    for name in ("oslo_messaging.notify.messaging", "oslo_messaging.notify.notifier"):
        logging.getLogger(name).addHandler(catcher)
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    notifier = oslo_messaging.Notifier(transport, publisher_id=args.publisher_id,
                                       driver=args.driver, topics=[args.topic],
                                       retry=args.retry)
    send = getattr(notifier, "warning" if args.priority == "warn" else args.priority)
    try:
        for i in range(args.count):
            del catcher.errors[:]
            t0 = time.monotonic()
            send(args.context, args.event_type, args.payload)
            out = {"event": "notified", "n": i, "topic": args.topic,
                   "priority": args.priority, "event_type": args.event_type,
                   "elapsed": round(time.monotonic() - t0, 3)}
            if catcher.errors:
                out["error"] = catcher.errors[-1]
            emit(out)
    finally:
        transport.cleanup()
    return 0


def _notification(priority, ctxt, publisher_id, event_type, payload, metadata, event=None):
    head = {"event": event} if event else {}
    return dict(head, **{"priority": priority, "event_type": event_type, "payload": payload,
            "publisher_id": publisher_id, "message_id": metadata.get("message_id"),
            "timestamp": metadata.get("timestamp"), "ctxt": ctxt})


class _ListenState(object):
    def __init__(self, args, stopper):
        self.args = args
        self.stopper = stopper
        self.lock = threading.Lock()
        self.requeued = 0
        self.handled = 0

    def decide(self, n):
        """Returns True to requeue a delivery of n notifications."""
        with self.lock:
            if self.requeued < self.args.requeue_first:
                self.requeued += n
                return True
            return False

    def done(self, n):
        with self.lock:
            self.handled += n
            total = self.handled
        if self.args.count and total >= self.args.count:
            self.stopper.stop("count")


def _make_endpoint(priorities, state, batch, tag=None):
    """Builds an endpoint with one method per requested priority.

    tag, if given, is a dict merged into every line the endpoint prints (the session
    subcommand names its listeners this way)."""
    extra = dict(tag or {})

    def out(obj):
        emit(dict(obj, **extra) if extra else obj)

    def make_single(priority):
        def handler(self, ctxt, publisher_id, event_type, payload, metadata):
            requeue = state.decide(1)
            out(_notification(priority, ctxt, publisher_id, event_type, payload, metadata,
                              event="requeued" if requeue else "notification"))
            if requeue:
                return oslo_messaging.NotificationResult.REQUEUE
            state.done(1)
            return oslo_messaging.NotificationResult.HANDLED
        return handler

    def make_batch(priority):
        def handler(self, messages):
            items = [_notification(priority, m.get("ctxt"), m.get("publisher_id"),
                                   m.get("event_type"), m.get("payload"),
                                   m.get("metadata") or {}) for m in messages]
            if state.decide(len(items)):
                out({"event": "requeued", "batch": True, "priority": priority,
                     "size": len(items), "items": items})
                return oslo_messaging.NotificationResult.REQUEUE
            out({"event": "batch", "priority": priority, "size": len(items), "items": items})
            state.done(len(items))
            return oslo_messaging.NotificationResult.HANDLED
        return handler

    methods = {p: (make_batch(p) if batch else make_single(p)) for p in priorities}
    return type("PeerNotificationEndpoint", (object,), methods)()


def cmd_listen(args):
    stopper = Stopper()
    install_stoppers(stopper, not args.no_stdin)
    priorities = [p.strip().lower() for p in args.priorities.split(",") if p.strip()]
    for p in priorities:
        if p not in PRIORITIES:
            usage_error("unknown priority %r (want %s)" % (p, ",".join(PRIORITIES)))
    conf = configure(args)
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    state = _ListenState(args, stopper)
    batch = args.batch_size is not None
    endpoint = _make_endpoint(priorities, state, batch)
    targets = [oslo_messaging.Target(topic=args.topic)]
    kwargs = dict(executor=args.executor, allow_requeue=args.requeue_first > 0, pool=args.pool)
    try:
        if batch:
            listener = oslo_messaging.get_batch_notification_listener(
                transport, targets, [endpoint], batch_size=args.batch_size,
                batch_timeout=args.batch_timeout, **kwargs)
        else:
            listener = oslo_messaging.get_notification_listener(
                transport, targets, [endpoint], **kwargs)
        listener.start()
    except Exception as e:  # e.g. NotImplementedError for pools: the oslo outcome
        emit({"event": "error", "error": describe_error(e)})
        transport.cleanup()
        return 0
    emit({"event": "ready", "topic": args.topic, "priorities": priorities, "pid": os.getpid()})
    reason = stopper.wait(args.timeout)
    listener.stop()
    listener.wait()
    transport.cleanup()
    emit({"event": "stopped", "reason": reason, "handled": state.handled,
          "requeued": state.requeued})
    return 0


# --------------------------------------------------------------------------- selftest

def cmd_selftest(args):
    conf = configure(args)
    topic = args.topic or "oslo-peer-selftest-%s" % uuid.uuid4().hex[:8]
    server_name = "selftest-server"
    step = max(2.0, min(args.timeout, 10.0))
    records = {}
    records_cv = threading.Condition()

    def on_record(server, kw):
        with records_cv:
            records[kw.get("tag")] = server
            records_cv.notify_all()

    def wait_record(tag, timeout):
        deadline = time.monotonic() + timeout
        with records_cv:
            while tag not in records:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                records_cv.wait(left)
            return records[tag]

    checks = {}

    def check(name, fn):
        t0 = time.monotonic()
        try:
            ok, detail = fn()
        except Exception as e:
            ok, detail = False, {"error": describe_error(e)}
        checks[name] = {"ok": bool(ok), "detail": detail,
                        "elapsed": round(time.monotonic() - t0, 3)}
        emit(dict({"check": name}, **checks[name]))

    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    endpoint = PeerEndpoint(server_name, records=on_record)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server=server_name), [endpoint],
        executor="threading")
    server.start()
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic),
                                           timeout=step)
    ntransport = oslo_messaging.get_notification_transport(conf, url=args.url)
    listener = None
    try:
        def echo():
            got = client.call({}, "echo", value="hello")
            got2 = client.call({}, "echo", a=1, b=[1, "x"], c={"d": None})
            ok = got == "hello" and got2 == {"a": 1, "b": [1, "x"], "c": {"d": None}}
            return ok, {"value": got, "kw": got2}
        check("echo", echo)

        def fail():
            try:
                client.call({}, "fail", message="selftest failure")
            except ValueError as e:
                d = describe_error(e)
                return "selftest failure" in str(e), d
            except Exception as e:
                return False, describe_error(e)
            return False, "no exception"
        check("remote_valueerror", fail)

        def boom():
            try:
                client.call({}, "boom", message="selftest boom")
            except oslo_messaging.RemoteError as e:
                d = describe_error(e)
                return e.exc_type == "CustomError" and e.value == "selftest boom", d
            except Exception as e:
                return False, describe_error(e)
            return False, "no exception"
        check("remote_customerror", boom)

        def direct():
            got = client.prepare(server=server_name).call({}, "whoami")
            return got == server_name, got
        check("server_call", direct)

        def cast():
            client.cast({}, "record", tag="cast-1")
            got = wait_record("cast-1", step)
            return got == server_name, got
        check("cast", cast)

        def fanout():
            client.prepare(fanout=True).cast({}, "record", tag="fanout-1")
            got = wait_record("fanout-1", step)
            return got == server_name, got
        check("fanout", fanout)

        def timeout():
            nobody = oslo_messaging.get_rpc_client(
                transport, oslo_messaging.Target(topic=topic + "-nobody"), timeout=1)
            t0 = time.monotonic()
            try:
                nobody.call({}, "echo", value=1)
            except oslo_messaging.MessagingTimeout as e:
                d = describe_error(e)
                d["after"] = round(time.monotonic() - t0, 3)
                return True, d
            except Exception as e:
                return False, describe_error(e)
            return False, "no exception"
        check("call_timeout", timeout)

        def notification():
            got = []
            cv = threading.Condition()

            class Endpoint(object):
                def info(self, ctxt, publisher_id, event_type, payload, metadata):
                    with cv:
                        got.append(_notification("info", ctxt, publisher_id, event_type,
                                                 payload, metadata))
                        cv.notify_all()

            nonlocal listener
            listener = oslo_messaging.get_notification_listener(
                ntransport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
                executor="threading")
            listener.start()
            notifier = oslo_messaging.Notifier(ntransport, publisher_id="selftest",
                                               driver="messagingv2", topics=[topic])
            notifier.info({}, "selftest.event", {"k": "v"})
            deadline = time.monotonic() + step
            with cv:
                while not got and time.monotonic() < deadline:
                    cv.wait(max(0.0, deadline - time.monotonic()))
            ok = bool(got) and got[0]["event_type"] == "selftest.event" \
                and got[0]["payload"] == {"k": "v"} and got[0]["publisher_id"] == "selftest"
            return ok, got[0] if got else "no notification"
        check("notification", notification)
    finally:
        server.stop()
        server.wait()
        if listener is not None:
            listener.stop()
            listener.wait()
        transport.cleanup()
        ntransport.cleanup()
    ok = bool(checks) and all(c["ok"] for c in checks.values())
    emit({"event": "selftest", "ok": ok, "topic": topic,
          "checks": {k: v["ok"] for k, v in checks.items()}})
    return 0 if ok else 1


# --------------------------------------------------------------------------- bench

def _percentile(sorted_values, q):
    """The q-quantile (0..1) of sorted values, nearest rank, as the Go benchmarks do."""
    if not sorted_values:
        return 0.0
    i = int(q * len(sorted_values))
    return sorted_values[min(i, len(sorted_values) - 1)]


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


class _Counter(object):
    """Counts events and lets a thread wait until a number is reached."""

    def __init__(self):
        self.n = 0
        self.cv = threading.Condition()

    def add(self):
        with self.cv:
            self.n += 1
            self.cv.notify_all()

    def wait_for(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.n < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True


def cmd_bench(args):
    conf = configure(args)
    topic = args.topic or "oslo-peer-bench-%s" % uuid.uuid4().hex[:8]
    only = set(x.strip() for x in args.only.split(",") if x.strip())
    wait = max(args.timeout, 60.0)
    casts = _Counter()
    notes = _Counter()

    class BenchEndpoint(object):
        def echo(self, ctxt, value=None):
            return value

        def record(self, ctxt, **kw):
            casts.add()

    server_transport = server = None
    if not args.no_server:
        server_transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
        server = oslo_messaging.get_rpc_server(
            server_transport, oslo_messaging.Target(topic=topic, server="bench-server"),
            [BenchEndpoint()], executor="threading")
        server.start()
    transport = oslo_messaging.get_rpc_transport(conf, url=args.url)
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic),
                                           timeout=wait)
    n = args.count
    results = {"calls": [], "concurrent": [], "casts": [], "notifications": []}

    def run_calls():
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            s0 = time.perf_counter()
            client.call({}, "echo", value=i)
            lat.append(time.perf_counter() - s0)
        elapsed = time.perf_counter() - t0
        lat.sort()
        return {"rate": n / elapsed, "p50_us": _percentile(lat, 0.50) * 1e6,
                "p99_us": _percentile(lat, 0.99) * 1e6, "elapsed": elapsed}

    def run_concurrent():
        lat = []
        lock = threading.Lock()
        left = [n]
        errors = []

        def worker():
            mine = []
            try:
                while True:
                    with lock:
                        if left[0] <= 0:
                            break
                        left[0] -= 1
                    s0 = time.perf_counter()
                    client.call({}, "echo", value=1)
                    mine.append(time.perf_counter() - s0)
            except Exception as e:  # reported after the run
                errors.append(e)
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=worker, name="bench-%d" % i)
                   for i in range(args.concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        lat.sort()
        return {"rate": len(lat) / elapsed, "p50_us": _percentile(lat, 0.50) * 1e6,
                "p99_us": _percentile(lat, 0.99) * 1e6, "elapsed": elapsed}

    def run_casts():
        base = casts.n
        t0 = time.perf_counter()
        for i in range(n):
            client.cast({}, "record", i=i)
        if not casts.wait_for(base + n, wait):
            raise RuntimeError("only %d of %d casts arrived" % (casts.n - base, n))
        elapsed = time.perf_counter() - t0
        return {"rate": n / elapsed, "elapsed": elapsed}

    ntransport = listener = notifier = None

    def run_notifications():
        base = notes.n
        t0 = time.perf_counter()
        for i in range(n):
            notifier.info({}, "bench.event", {"i": i})
        if not notes.wait_for(base + n, wait):
            raise RuntimeError("only %d of %d notifications arrived" % (notes.n - base, n))
        elapsed = time.perf_counter() - t0
        return {"rate": n / elapsed, "elapsed": elapsed}

    try:
        # Warm up: the first call waits until the server's links are attached.
        for i in range(20):
            client.call({}, "echo", value=i)
        if "notifications" in only and not args.no_server:
            class NoteEndpoint(object):
                def info(self, ctxt, publisher_id, event_type, payload, metadata):
                    notes.add()

            ntransport = oslo_messaging.get_notification_transport(conf, url=args.url)
            listener = oslo_messaging.get_notification_listener(
                ntransport, [oslo_messaging.Target(topic=topic)], [NoteEndpoint()],
                executor="threading")
            listener.start()
            notifier = oslo_messaging.Notifier(ntransport, publisher_id="bench",
                                               driver="messagingv2", topics=[topic])
            notifier.info({}, "bench.warmup", {})
            notes.wait_for(1, wait)
        plan = [("calls", run_calls), ("concurrent", run_concurrent)]
        if not args.no_server:
            plan += [("casts", run_casts), ("notifications", run_notifications)]
        for run in range(args.runs):
            for name, fn in plan:
                if name not in only:
                    continue
                r = fn()
                results[name].append(r)
                emit(dict({"event": "bench_run", "what": name, "run": run, "count": n}, **r))
    finally:
        if listener is not None:
            listener.stop()
            listener.wait()
        if server is not None:
            server.stop()
            server.wait()
        transport.cleanup()
        if server_transport is not None:
            server_transport.cleanup()
        if ntransport is not None:
            ntransport.cleanup()

    def med(name, key):
        values = [r[key] for r in results[name]]
        return round(_median(values), 1) if values else None

    emit({"event": "bench", "topic": topic, "count": n, "runs": args.runs,
          "calls_per_s": med("calls", "rate"), "p50_us": med("calls", "p50_us"),
          "p99_us": med("calls", "p99_us"), "concurrency": args.concurrency,
          "concurrent_calls_per_s": med("concurrent", "rate"),
          "concurrent_p50_us": med("concurrent", "p50_us"),
          "concurrent_p99_us": med("concurrent", "p99_us"),
          "casts_per_s": med("casts", "rate"),
          "notifications_per_s": med("notifications", "rate")})
    return 0


# --------------------------------------------------------------------------- session

class _Session(object):
    """The session subcommand: one long-lived process that plays every role on command.

    Each RPC server and each listener gets a transport (a connection) of its own, as
    separate services would; calls and casts share one RPC transport per URL, and
    notifications one notification transport per URL."""

    def __init__(self, args, conf):
        self.args = args
        self.conf = conf
        self.lock = threading.Lock()
        self.clients = {}     # url -> (transport, RPCClient)
        self.ntransports = {}  # url -> transport
        self.notifiers = {}   # (url, publisher_id, driver, topic, retry) -> Notifier
        self.servers = {}     # name -> (server, transport)
        self.listeners = {}   # name -> (listener, transport, state)
        self.catcher = _ErrorCatcher()
        for name in ("oslo_messaging.notify.messaging", "oslo_messaging.notify.notifier"):
            logging.getLogger(name).addHandler(self.catcher)

    def _url(self, cmd):
        return cmd.get("url") or self.args.url

    def _client(self, url):
        with self.lock:
            if url not in self.clients:
                transport = oslo_messaging.get_rpc_transport(self.conf, url=url)
                client = oslo_messaging.get_rpc_client(
                    transport, oslo_messaging.Target(topic="oslo-peer-session"))
                self.clients[url] = (transport, client)
            return self.clients[url][1]

    def _notifier(self, cmd):
        url = self._url(cmd)
        key = (url, cmd.get("publisher_id") or "oslo-peer", cmd.get("driver") or "messagingv2",
               cmd["topic"], cmd.get("retry"))
        with self.lock:
            if url not in self.ntransports:
                self.ntransports[url] = oslo_messaging.get_notification_transport(
                    self.conf, url=url)
            if key not in self.notifiers:
                self.notifiers[key] = oslo_messaging.Notifier(
                    self.ntransports[url], publisher_id=key[1], driver=key[2],
                    topics=[key[3]], retry=key[4])
            return self.notifiers[key]

    def op_call(self, cmd):
        client = self._client(self._url(cmd))
        kw = {}
        for key in ("topic", "server", "exchange", "namespace", "version", "timeout",
                    "retry", "call_monitor_timeout"):
            if cmd.get(key) is not None:
                kw[key] = cmd[key]
        if cmd.get("fanout"):
            kw["fanout"] = True
        cctx = client.prepare(**kw)
        t0 = time.monotonic()
        try:
            if cmd["op"] == "cast" or cmd.get("fanout"):
                cctx.cast(cmd.get("context") or {}, cmd["method"], **(cmd.get("args") or {}))
                out = {"result": None, "cast": True}
            else:
                out = {"result": cctx.call(cmd.get("context") or {}, cmd["method"],
                                           **(cmd.get("args") or {}))}
        except Exception as e:  # the oslo outcome, reported as raised
            out = {"error": describe_error(e)}
        out["elapsed"] = round(time.monotonic() - t0, 3)
        return out

    op_cast = op_call

    def op_notify(self, cmd):
        notifier = self._notifier(cmd)
        priority = cmd["priority"]
        send = getattr(notifier, "warning" if priority == "warn" else priority)
        count = int(cmd.get("count") or 1)
        first = len(self.catcher.errors)
        t0 = time.monotonic()

        def one(i):
            payload = cmd.get("payload")
            if cmd.get("number"):
                payload = dict(payload or {}, n=i)
            send(cmd.get("context") or {}, cmd["event_type"], payload)

        if cmd.get("parallel") and count > 1:
            threads = [threading.Thread(target=one, args=(i,), daemon=True)
                       for i in range(count)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        else:
            for i in range(count):
                one(i)
        out = {"notified": count, "elapsed": round(time.monotonic() - t0, 3)}
        errors = self.catcher.errors[first:]
        if errors:
            out["errors"] = errors
        return out

    def op_rpc_server(self, cmd):
        name = cmd.get("name") or cmd["server"]
        transport = oslo_messaging.get_rpc_transport(self.conf, url=self._url(cmd))
        target = oslo_messaging.Target(topic=cmd["topic"], server=cmd["server"],
                                       exchange=cmd.get("exchange"))
        endpoint = PeerEndpoint(cmd["server"], None, cmd.get("namespace"), cmd.get("version"))
        server = oslo_messaging.get_rpc_server(transport, target, [endpoint],
                                               executor="threading")
        server.start()
        with self.lock:
            self.servers[name] = (server, transport)
        return {"ok": True, "name": name}

    def op_listen(self, cmd):
        name = cmd["name"]
        priorities = [p.lower() for p in (cmd.get("priorities") or PRIORITIES)]
        for p in priorities:
            if p not in PRIORITIES:
                raise ValueError("unknown priority %r" % p)
        largs = argparse.Namespace(requeue_first=int(cmd.get("requeue_first") or 0), count=0)
        state = _ListenState(largs, Stopper())
        batch = cmd.get("batch_size") is not None
        endpoint = _make_endpoint(priorities, state, batch, tag={"listener": name})
        transport = oslo_messaging.get_notification_transport(self.conf, url=self._url(cmd))
        kwargs = dict(executor="threading", allow_requeue=largs.requeue_first > 0,
                      pool=cmd.get("pool"))
        targets = [oslo_messaging.Target(topic=cmd["topic"])]
        try:
            if batch:
                listener = oslo_messaging.get_batch_notification_listener(
                    transport, targets, [endpoint], batch_size=int(cmd["batch_size"]),
                    batch_timeout=cmd.get("batch_timeout"), **kwargs)
            else:
                listener = oslo_messaging.get_notification_listener(
                    transport, targets, [endpoint], **kwargs)
            listener.start()
        except Exception as e:  # e.g. NotImplementedError for pools: the oslo outcome
            transport.cleanup()
            return {"error": describe_error(e)}
        with self.lock:
            self.listeners[name] = (listener, transport, state)
        return {"ok": True, "name": name, "priorities": priorities}

    def op_stop(self, cmd):
        name = cmd["name"]
        with self.lock:
            server = self.servers.pop(name, None)
            listener = self.listeners.pop(name, None)
        if server is not None:
            server[0].stop()
            server[0].wait()
            server[1].cleanup()
            return {"ok": True, "stopped": "rpc-server"}
        if listener is not None:
            listener[0].stop()
            listener[0].wait()
            listener[1].cleanup()
            return {"ok": True, "stopped": "listener", "handled": listener[2].handled,
                    "requeued": listener[2].requeued}
        return {"error": {"class": "KeyError", "module": "builtins",
                          "message": "no server or listener named %r" % name}}

    def run(self, cmd):
        op = str(cmd.get("op", "")).replace("-", "_")
        handler = getattr(self, "op_" + op, None)
        out = {"id": cmd.get("id"), "op": cmd.get("op")}
        if handler is None:
            out["error"] = {"class": "ValueError", "module": "builtins",
                            "message": "unknown op %r" % cmd.get("op")}
        else:
            try:
                out.update(handler(cmd))
            except Exception as e:
                logging.getLogger("oslo_peer").exception("session op %s failed", op)
                out["error"] = describe_error(e)
                out["crash"] = True
        emit(out)

    def close(self):
        with self.lock:
            servers = list(self.servers.values())
            listeners = list(self.listeners.values())
            self.servers.clear()
            self.listeners.clear()
        for server, transport in servers:
            server.stop()
            server.wait()
            transport.cleanup()
        for listener, transport, _ in listeners:
            listener.stop()
            listener.wait()
            transport.cleanup()
        for transport, _ in self.clients.values():
            transport.cleanup()
        for transport in self.ntransports.values():
            transport.cleanup()


def cmd_session(args):
    conf = configure(args)
    session = _Session(args, conf)
    emit({"event": "ready", "pid": os.getpid()})
    threads = []
    # The main thread reads stdin (a daemon thread blocked in a BufferedReader makes the
    # interpreter abort at exit); every command runs in a thread of its own.
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object")
        except ValueError as e:
            emit({"event": "error", "error": {"class": "ValueError", "module": "builtins",
                                              "message": "bad command: %s" % e}})
            continue
        th = threading.Thread(target=session.run, args=(cmd,), daemon=True,
                              name="op-%s" % cmd.get("id"))
        th.start()
        threads = [t for t in threads if t.is_alive()] + [th]
    for th in threads:
        th.join(GRACE)
    session.close()
    emit({"event": "stopped", "reason": "stdin"})
    return 0


# --------------------------------------------------------------------------- main

def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True, help="transport URL, amqp://host:port")
    common.add_argument("--opt", action="append", type=parse_opt, default=[],
                        metavar="[GROUP.]KEY=VALUE",
                        help="config option (group defaults to oslo_messaging_amqp)")
    common.add_argument("--config-file", action="append", default=[],
                        help="an extra oslo.config file")
    common.add_argument("--exchange", help="control_exchange (default openstack)")
    common.add_argument("--timeout", type=float, default=10.0,
                        help="bound on the command in seconds (default 10; for servers and "
                             "listeners the lifetime, 0 = until stdin EOF or SIGTERM)")
    common.add_argument("--no-stdin", action="store_true",
                        help="servers and listeners: do not stop on stdin EOF")
    common.add_argument("--debug", action="store_true", help="DEBUG logs on stderr")

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("rpc-server", parents=[common])
    s.add_argument("--topic", required=True)
    s.add_argument("--server", required=True)
    s.add_argument("--executor", default="threading", choices=["threading"])
    s.add_argument("--count", type=int, default=0, help="stop after N handled requests")
    s.add_argument("--namespace")
    s.add_argument("--version")
    s.set_defaults(func=cmd_rpc_server, watchdog="lifetime")

    c = sub.add_parser("rpc-call", parents=[common])
    c.add_argument("--topic", required=True)
    c.add_argument("--server")
    c.add_argument("--fanout", action="store_true", help="fanout cast (implies --cast)")
    c.add_argument("--method", required=True)
    c.add_argument("--args", type=json_obj_arg, default={}, help="keyword arguments (JSON object)")
    c.add_argument("--context", type=json_obj_arg, default={}, help="request context (JSON object)")
    c.add_argument("--cast", action="store_true")
    c.add_argument("--call-timeout", type=float, help="seconds (default: --timeout)")
    c.add_argument("--call-monitor-timeout", type=float)
    c.add_argument("--retry", type=int)
    c.add_argument("--repeat", type=int, default=1)
    c.add_argument("--namespace")
    c.add_argument("--version")
    c.add_argument("--allowed-remote-exmods", default="",
                   help="comma-separated modules whose exceptions are rebuilt")
    c.set_defaults(func=cmd_rpc_call, watchdog="calls")

    n = sub.add_parser("notify", parents=[common])
    n.add_argument("--topic", required=True)
    n.add_argument("--priority", required=True, choices=list(PRIORITIES))
    n.add_argument("--event-type", required=True)
    n.add_argument("--payload", type=json_arg, default={})
    n.add_argument("--context", type=json_obj_arg, default={})
    n.add_argument("--publisher-id", default="oslo-peer")
    n.add_argument("--count", type=int, default=1)
    n.add_argument("--driver", default="messagingv2", choices=["messagingv2", "messaging"])
    n.add_argument("--retry", type=int)
    n.set_defaults(func=cmd_notify, watchdog="command")

    li = sub.add_parser("listen", parents=[common])
    li.add_argument("--topic", required=True)
    li.add_argument("--priorities", default=",".join(PRIORITIES))
    li.add_argument("--pool")
    li.add_argument("--count", type=int, default=0, help="stop after N handled notifications")
    li.add_argument("--requeue-first", type=int, default=0)
    li.add_argument("--batch-size", type=int)
    li.add_argument("--batch-timeout", type=float)
    li.add_argument("--executor", default="threading", choices=["threading"])
    li.set_defaults(func=cmd_listen, watchdog="lifetime")

    b = sub.add_parser("bench", parents=[common])
    b.add_argument("--topic", help="default: a fresh one")
    b.add_argument("--count", type=int, default=1000, help="operations per run and measurement")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--concurrency", type=int, default=16)
    b.add_argument("--no-server", action="store_true",
                   help="calls only, to a server someone else runs on --topic")
    b.add_argument("--only", default="calls,concurrent,casts,notifications")
    b.set_defaults(func=cmd_bench, watchdog="command")

    se = sub.add_parser("session", parents=[common])
    se.set_defaults(func=cmd_session, watchdog="command")

    st = sub.add_parser("selftest", parents=[common])
    st.add_argument("--topic", help="default: a fresh one")
    st.set_defaults(func=cmd_selftest, watchdog="command")
    return p


def _import_oslo():
    global cfg, oslo_messaging
    from oslo_config import cfg as cfg_module
    import oslo_messaging as om
    cfg, oslo_messaging = cfg_module, om


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    if args.timeout < 0:
        usage_error("--timeout must be >= 0")
    if args.watchdog == "calls":
        per_call = args.call_timeout if args.call_timeout is not None else args.timeout
        start_watchdog(args.timeout + max(args.repeat, 1) * per_call + GRACE, args.command)
    elif args.timeout:
        start_watchdog(args.timeout + GRACE, args.command)
    _import_oslo()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
