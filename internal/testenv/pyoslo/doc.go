// Package pyoslo runs the real Python oslo.messaging AMQP 1.0 driver as a peer for Go tests.
//
// The peer is testdata/peers/oslo_peer.py, a program that drives oslo.messaging's public API
// (RPC server and client, Notifier, notification listeners) over a transport URL
// amqp://host:port, as an OpenStack service would. It runs under Debian's /usr/bin/python3
// (or $AMQP1KIT_PYTHON) with the Debian packages python3-oslo.messaging (14.0.3, which still
// ships the AMQP 1.0 driver), python3-pyngus and python3-qpid-proton.
//
// A test calls [Require] (or just [Start] or [Run], which call it) to skip when the peer is
// missing; under CI=true a missing peer fails the test instead, because CI must run it.
//
// The script prints one JSON object per line on stdout; [Proc.Next] and [Proc.WaitEvent]
// read them as map[string]any (JSON numbers are float64). Its stderr (Python logs) is kept,
// and its last lines are part of every error and of the test log when the test fails.
//
// Subcommands (every one takes --url URL, repeated --opt [GROUP.]KEY=VALUE for
// [oslo_messaging_amqp] options such as addressing_mode=legacy, --exchange NAME for
// control_exchange, --debug for DEBUG logs on stderr, and --timeout SECONDS, default 10,
// which for rpc-server and listen is their lifetime: pass more, or 0 for no limit, to a
// server that a test keeps longer):
//
//	rpc-server --topic T --server S [--count N] [--namespace NS] [--version V]
//	    endpoint methods echo(**kw), fail(message), boom(message), sleep(seconds),
//	    record(**kw), whoami(), context(); prints {"event":"ready"} after server.start(),
//	    {"event":"call","method":M,"server":S} as each request starts, and
//	    {"event":"cast","server":S,"kw":{...}} from record; stops on stdin EOF (see
//	    [Proc.Stop]), SIGTERM, after N handled requests, or after --timeout seconds (its
//	    lifetime for servers and listeners; 0 means no limit), printing {"event":"stopped"}.
//	rpc-call --topic T [--server S] [--fanout] --method M [--args JSON] [--cast]
//	    [--call-timeout S] [--repeat N] [--context JSON] [--retry N]
//	    [--call-monitor-timeout S] [--allowed-remote-exmods M,...]
//	    one {"result":R,"elapsed":s} or {"error":{"class","module","message",...},"elapsed":s}
//	    line per call (the call timeout defaults to --timeout; --fanout implies --cast, and
//	    a cast prints {"result":null,"cast":true}); exits 0 whatever oslo raised.
//	notify --topic T --priority P --event-type E [--payload JSON] [--publisher-id P] [--count N]
//	    one {"event":"notified",...} line per notification, with "error" when the Notifier
//	    logged (and swallowed) a send error.
//	listen --topic T [--priorities info,error] [--pool P] [--count N] [--requeue-first K]
//	    [--batch-size N --batch-timeout S]
//	    {"event":"ready"}, then {"event":"notification",...} per notification (or
//	    {"event":"batch","size":n,"items":[...]}) and {"event":"requeued",...} for the
//	    first K; stops like rpc-server.
//	selftest
//	    server, client, notifier and listener in one process; exits 0 only if all checks pass.
//	bench [--no-server] [--runs N] [--count N]
//	    throughput of the Python driver as JSON (see driver/bench_test.go).
//	session
//	    one long-lived process taking JSON commands on stdin: servers, calls, casts,
//	    notifications and listeners, each on its own connection (see interop/).
//
// The driver's listen() returns before its links are attached, so "ready" means that the
// server or listener has started, not that an intermediary already has its links: a test that
// needs them waits at the intermediary. Exit status: 0 when the script did its job, 1 on a
// crash (or a failed selftest), 2 on bad usage, 124 when its own watchdog fired.
package pyoslo
