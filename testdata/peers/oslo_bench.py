#!/usr/bin/python3
"""The Python oslo.messaging AMQP 1.0 driver's calls, for cmd/benchmatrix.

An RPC server (echo(payload) returns its argument) and an RPC client, each on its own
transport (connection), in this one process, over --url, as cmd/benchmatrix runs the Go
driver's server and client in one process. Calls echo(payload="x" * --size) one at a time
(--mode calls) or from --threads threads at once (--mode concurrent): first for --warmup
seconds, then for --duration seconds, measured.

Prints JSON lines on stdout: {"event":"measuring"} when the measured window starts, then
{"event":"result","ops":N,"seconds":S,"p50_us":...,"p99_us":...,"info":...} (and then waits
until its stdin ends, at most 10 s, so that the harness can sample the process), or
{"event":"error","message":...} (exit status 1). Only oslo.messaging's public API is used
(Debian python3-oslo.messaging, python3-pyngus, python3-qpid-proton; /usr/bin/python3).
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def percentile(sorted_values, p):
    """Nearest rank, as cmd/benchmatrix's Go clients compute it."""
    if not sorted_values:
        return 0.0
    rank = (p * len(sorted_values) + 99) // 100
    return sorted_values[max(rank, 1) - 1]


def run_for(client, seconds, threads, payload):
    """Calls echo from threads until seconds have passed; returns (latencies, elapsed)."""
    end = time.perf_counter() + seconds
    lats = []
    errors = []
    lock = threading.Lock()

    def worker():
        mine = []
        try:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                got = client.call({}, "echo", payload=payload)
                mine.append(time.perf_counter() - t0)
                if len(got) != len(payload):
                    raise RuntimeError("echo returned %d characters, not %d" % (len(got), len(payload)))
        except Exception as e:  # reported by the caller
            errors.append(e)
        with lock:
            lats.extend(mine)

    start = time.perf_counter()
    if threads == 1:
        worker()
    else:
        ts = [threading.Thread(target=worker, name="caller-%d" % i) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return lats, elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--mode", choices=["calls", "concurrent"], default="calls")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--timeout", type=float, default=60.0, help="call timeout (seconds)")
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    # A hang guard: the harness kills a client that overstays too, this says why.
    def watchdog():
        emit({"event": "error", "message": "oslo_bench.py: watchdog fired"})
        os._exit(124)
    guard = threading.Timer(args.warmup + args.duration + args.timeout + 60, watchdog)
    guard.daemon = True
    guard.start()

    from oslo_config import cfg
    import oslo_messaging

    # Every RPC client starts oslo.metrics' non-daemon thread, which would hold the exit.
    cfg.CONF.set_default("metrics_thread_stop_timeout", 0, group="oslo_messaging_metrics")
    cfg.CONF([], project="oslo_bench", default_config_files=[])

    class Echo(object):
        def echo(self, ctxt, payload=None):
            return payload

    topic = "benchmatrix-py-%s" % uuid.uuid4().hex[:8]
    server_transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=args.url)
    server = oslo_messaging.get_rpc_server(
        server_transport, oslo_messaging.Target(topic=topic, server="bench"),
        [Echo()], executor="threading")
    server.start()
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=args.url)
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic=topic),
                                           timeout=args.timeout)
    payload = "x" * args.size
    threads = 1 if args.mode == "calls" else args.threads
    code = 0
    try:
        # The first call waits until the intermediary routes to the server's links.
        client.call({}, "echo", payload=payload)
        if args.warmup > 0:
            run_for(client, args.warmup, threads, payload)
        emit({"event": "measuring"})
        lats, elapsed = run_for(client, args.duration, threads, payload)
        lats.sort()
        emit({"event": "result", "ops": len(lats), "seconds": elapsed,
              "p50_us": percentile(lats, 50) * 1e6, "p99_us": percentile(lats, 99) * 1e6,
              "info": "oslo.messaging %s, %d thread(s)" % (_version(), threads)})
        # The harness samples this process until it closes our stdin.
        _wait_stdin_eof(10)
    except Exception as e:
        emit({"event": "error", "message": "%s: %s" % (type(e).__name__, e)})
        code = 1

    # Clean up in the background, bounded: an intermediary that does not answer a detach
    # must not hold the harness.
    def cleanup():
        server.stop()
        server.wait()
        transport.cleanup()
        server_transport.cleanup()
    t = threading.Thread(target=cleanup, daemon=True)
    t.start()
    t.join(5)
    sys.stdout.flush()
    os._exit(code)


def _wait_stdin_eof(seconds):
    t = threading.Thread(target=sys.stdin.read, daemon=True)
    t.start()
    t.join(seconds)


def _version():
    try:
        from importlib.metadata import version
        return version("oslo.messaging")
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
