#!/usr/bin/env bash
# A private RabbitMQ 3.10 node with the rabbitmq_amqp1_0 plugin, for tests.
#
#   scripts/rabbitmq.sh start DIR PORT   start a node whose files all live in DIR, with AMQP
#                                        (0-9-1 and 1.0 share the port) on 127.0.0.1:PORT; wait
#                                        until the port answers an AMQP 1.0 protocol header; print
#                                        the node's (beam) pid on stdout
#   scripts/rabbitmq.sh stop DIR         stop that node (SIGTERM to the beam pid, bounded wait,
#                                        then SIGKILL) and its private epmd; safe to repeat
#
# No RabbitMQ CLI tool is used (docs/peers.md): the plugin is enabled through an enabled_plugins
# file and the node is configured through RABBITMQ_* variables and a rabbitmq.conf in DIR.
# Everything listens on 127.0.0.1 only: AMQP (listeners.tcp.default), Erlang distribution
# (-kernel inet_dist_use_interface, on a free port) and a private epmd (ERL_EPMD_ADDRESS, on
# a free port), so several nodes can run side by side, each with its own node name.
#
# Environment: AMQP1KIT_RABBITMQ_START_TIMEOUT (seconds, default 60: a warm start takes ~7 s,
#              a node's very first boot on a cold machine took ~20 s here),
#              AMQP1KIT_RABBITMQ_STOP_TIMEOUT (seconds, default 20),
#              AMQP1KIT_PYTHON (default /usr/bin/python3; only the standard library is used).
# Files in DIR: rabbitmq.conf, enabled_plugins, rabbitmq.pid (beam pid), launcher.pid,
# epmd.port, epmd.pid, dist.port, node.name, mnesia/ (kept across restarts: queues survive),
# log/ (log/startup.log has the launcher's output).
set -euo pipefail

RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
PYTHON="${AMQP1KIT_PYTHON:-/usr/bin/python3}"
START_TIMEOUT="${AMQP1KIT_RABBITMQ_START_TIMEOUT:-60}"
STOP_TIMEOUT="${AMQP1KIT_RABBITMQ_STOP_TIMEOUT:-20}"

die() { echo "rabbitmq.sh: $*" >&2; exit 1; }
say() { echo "rabbitmq.sh: $*" >&2; }

usage() {
	echo "usage: $0 start DIR PORT | stop DIR" >&2
	exit 2
}

# free_port prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
	"$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# port_free PORT succeeds if a listener could bind 127.0.0.1:PORT now.
port_free() {
	"$PYTHON" - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()
EOF
}

# amqp10_ready PORT succeeds when 127.0.0.1:PORT answers the AMQP 1.0 SASL protocol header
# with the same header (before the amqp1_0 plugin is up, RabbitMQ answers with 0-9-1's).
amqp10_ready() {
	"$PYTHON" - "$1" <<'EOF' 2>/dev/null
import socket, sys
hdr = b"AMQP\x03\x01\x00\x00"
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(hdr)
    got = b""
    while len(got) < 8:
        chunk = s.recv(8 - len(got))
        if not chunk:
            break
        got += chunk
    s.close()
except OSError:
    sys.exit(1)
sys.exit(0 if got == hdr else 1)
EOF
}

# is_beam PID succeeds if PID is a running Erlang VM.
is_beam() {
	local pid="$1" comm
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
	[[ "$comm" == beam* ]] && pid_alive "$pid"
}

# epmd_pid PORT prints the pid of the epmd started by start() on PORT, if it runs.
epmd_pid() {
	local want="epmd -address 127.0.0.1 -port $1 -daemon" d comm cmd
	for d in /proc/[0-9]*; do
		comm=""
		read -r comm 2>/dev/null <"$d/comm" || continue
		[[ "$comm" == epmd ]] || continue
		cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" || continue
		cmd="${cmd% }"
		if [[ "$cmd" == "$want" || "$cmd" == */"$want" ]]; then
			echo "${d#/proc/}"
			return 0
		fi
	done
	return 1
}

# pid_alive PID succeeds while process PID exists (zombies excluded).
pid_alive() {
	local state
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[[ -n "$state" && "$state" != Z ]]
}

# group_alive PGID succeeds while any process of process group PGID exists.
group_alive() {
	kill -0 -- "-$1" 2>/dev/null
}

# wait_gone SECONDS CMD... polls CMD every 0.1 s until it fails or SECONDS pass.
wait_gone() {
	local deadline=$((SECONDS + $1))
	shift
	while "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

show_logs() {
	local dir="$1" f
	for f in "$dir"/log/*.log; do
		[[ -s "$f" ]] || continue
		echo "----- $f (last 25 lines) -----" >&2
		tail -n 25 "$f" >&2
	done
}

start() {
	local dir="$1" port="$2"
	if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
		die "bad port: $port"
	fi
	port=$((10#$port))
	[[ -x "$RABBITMQ_SERVER" ]] || die "$RABBITMQ_SERVER not found: install rabbitmq-server (scripts/test.sh does)"
	command -v epmd >/dev/null 2>&1 || die "epmd not found: install rabbitmq-server (it brings Erlang)"
	[[ -x "$PYTHON" ]] || die "$PYTHON not found (set AMQP1KIT_PYTHON)"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if [[ -f "$dir/rabbitmq.pid" ]] && is_beam "$(cat "$dir/rabbitmq.pid")"; then
		die "a node is already running from $dir (pid $(cat "$dir/rabbitmq.pid")); stop it first"
	fi
	port_free "$port" || die "127.0.0.1:$port is already in use"
	mkdir -p "$dir/log" "$dir/mnesia"
	rm -f "$dir/rabbitmq.pid" "$dir/launcher.pid"

	local node="amqp1kit_rmq_${port}@localhost" epmd_port dist_port
	epmd_port="$(free_port)"
	dist_port="$(free_port)"
	while [[ "$dist_port" == "$epmd_port" ]]; do dist_port="$(free_port)"; done
	echo "$epmd_port" >"$dir/epmd.port"
	echo "$dist_port" >"$dir/dist.port"
	echo "$node" >"$dir/node.name"

	echo '[rabbitmq_amqp1_0].' >"$dir/enabled_plugins"
	cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
log.console = false
log.file.level = info
EOF
	: >"$dir/rabbitmq-env.conf" # keeps /etc/rabbitmq/rabbitmq-env.conf out

	# A private epmd, on loopback only; stop kills it.
	epmd -address 127.0.0.1 -port "$epmd_port" -daemon </dev/null >"$dir/log/epmd.log" 2>&1 ||
		die "could not start epmd on 127.0.0.1:$epmd_port: $(cat "$dir/log/epmd.log")"
	local epid=""
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		epid="$(epmd_pid "$epmd_port")" && break
		sleep 0.1
	done
	[[ -n "$epid" ]] || die "epmd did not stay up on 127.0.0.1:$epmd_port"
	echo "$epid" >"$dir/epmd.pid"

	# setsid: the node gets a process group of its own, which stop can clean up.
	(
		cd "$dir"
		export HOME="$dir" # the Erlang cookie goes to $dir/.erlang.cookie
		export ERL_EPMD_ADDRESS=127.0.0.1
		export ERL_EPMD_PORT="$epmd_port"
		export RABBITMQ_NODENAME="$node"
		export RABBITMQ_USE_LONGNAME=false
		export RABBITMQ_DIST_PORT="$dist_port"
		export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
		export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
		export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
		export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
		export RABBITMQ_MNESIA_BASE="$dir/mnesia"
		export RABBITMQ_LOG_BASE="$dir/log"
		export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
		export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
		unset RABBITMQ_ALLOW_INPUT RABBITMQ_NODE_PORT RABBITMQ_NODE_IP_ADDRESS
		exec setsid "$RABBITMQ_SERVER" </dev/null >"$dir/log/startup.log" 2>&1
	) &
	local launcher=$!
	echo "$launcher" >"$dir/launcher.pid"

	local deadline=$((SECONDS + START_TIMEOUT))
	until amqp10_ready "$port"; do
		if ! kill -0 "$launcher" 2>/dev/null; then
			say "RabbitMQ exited during start-up (node $node, port $port)"
			show_logs "$dir"
			stop "$dir" >/dev/null 2>&1 || true
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			say "RabbitMQ did not accept an AMQP 1.0 connection on 127.0.0.1:$port within ${START_TIMEOUT}s"
			show_logs "$dir"
			stop "$dir" >/dev/null 2>&1 || true
			exit 1
		fi
		sleep 0.2
	done

	# The pid file is written during boot, before the listener opens; allow a moment anyway.
	local pid=""
	deadline=$((SECONDS + 5))
	while :; do
		[[ -f "$dir/rabbitmq.pid" ]] && pid="$(tr -d '[:space:]' <"$dir/rabbitmq.pid")"
		is_beam "$pid" && break
		if ((SECONDS >= deadline)); then
			say "RabbitMQ answers on port $port but wrote no valid pid file $dir/rabbitmq.pid"
			stop "$dir" >/dev/null 2>&1 || true
			exit 1
		fi
		sleep 0.1
	done
	say "RabbitMQ node $node ready on amqp://127.0.0.1:$port (pid $pid, dir $dir)"
	echo "$pid"
}

stop() {
	local dir="$1"
	[[ -d "$dir" ]] || die "no such directory: $dir"
	dir="$(cd "$dir" && pwd)"
	local pid="" launcher=""
	[[ -f "$dir/rabbitmq.pid" ]] && pid="$(tr -d '[:space:]' <"$dir/rabbitmq.pid")"
	[[ -f "$dir/launcher.pid" ]] && launcher="$(tr -d '[:space:]' <"$dir/launcher.pid")"
	[[ "$launcher" =~ ^[0-9]+$ ]] || launcher=""

	if is_beam "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$STOP_TIMEOUT" is_beam "$pid"; then
			say "node (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone 5 is_beam "$pid" || say "pid $pid survived SIGKILL"
		fi
	fi
	# Whatever is left of the node's process group (launcher shell, erl_child_setup, ...).
	if [[ -n "$launcher" ]] && group_alive "$launcher"; then
		kill -TERM -- "-$launcher" 2>/dev/null || true
		if ! wait_gone 5 group_alive "$launcher"; then
			kill -KILL -- "-$launcher" 2>/dev/null || true
			wait_gone 2 group_alive "$launcher" || true
		fi
	fi
	# The private epmd: -kill refuses while any node is still registered with it, which after
	# the node is gone means someone else's node uses it; then it is left alone.
	if [[ -f "$dir/epmd.port" ]]; then
		local epmd_port epid=""
		epmd_port="$(tr -d '[:space:]' <"$dir/epmd.port")"
		if [[ "$epmd_port" =~ ^[0-9]+$ ]]; then
			epid="$(epmd_pid "$epmd_port")" || epid=""
			ERL_EPMD_PORT="$epmd_port" timeout 5 epmd -kill >/dev/null 2>&1 || true
			if [[ -n "$epid" ]] && ! wait_gone 5 pid_alive "$epid"; then
				say "epmd (pid $epid, port $epmd_port) did not exit"
			fi
		fi
	fi
	rm -f "$dir/rabbitmq.pid" "$dir/launcher.pid" "$dir/epmd.port" "$dir/epmd.pid" "$dir/dist.port"
}

cmd="${1:-}"
case "$cmd" in
start)
	[[ $# -eq 3 ]] || usage
	start "$2" "$3"
	;;
stop)
	[[ $# -eq 2 ]] || usage
	stop "$2"
	;;
*)
	usage
	;;
esac
