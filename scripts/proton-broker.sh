#!/usr/bin/env bash
# Qpid Proton's C++ example broker, built from Debian's example sources.
#
#   scripts/proton-broker.sh build      compile it (only if missing or older than its sources);
#                                       prints the binary's path on stdout
#   scripts/proton-broker.sh run PORT   build if needed, then exec the broker listening on
#                                       127.0.0.1:PORT (PORT 0 picks a free port; the broker
#                                       prints "broker listening on <port>" on stdout when ready)
#   scripts/proton-broker.sh path       print where the binary is (or would be) without building
#
# Needs the Debian packages libqpid-proton11-dev-examples, libqpid-proton-cpp12-dev and g++
# (scripts/test.sh installs them). Debian's pkg-config files for Proton are incomplete, so it
# links by hand. The cache directory is ${XDG_CACHE_HOME:-$HOME/.cache}/amqp1kit/proton-broker.
set -euo pipefail

SRC_DIR=/usr/share/proton/examples/cpp
CACHE_DIR="${XDG_CACHE_HOME:-${HOME:?neither XDG_CACHE_HOME nor HOME is set}/.cache}/amqp1kit/proton-broker"
BIN="$CACHE_DIR/broker"

die() { echo "proton-broker.sh: $*" >&2; exit 1; }

usage() {
	echo "usage: $0 build | run PORT | path" >&2
	exit 2
}

needs_build() {
	[[ -x "$BIN" ]] || return 0
	local f
	for f in "$SRC_DIR"/broker.cpp "$SRC_DIR"/*.hpp; do
		[[ "$f" -nt "$BIN" ]] && return 0
	done
	return 1
}

build() {
	[[ -f "$SRC_DIR/broker.cpp" ]] ||
		die "$SRC_DIR/broker.cpp not found: install libqpid-proton11-dev-examples (scripts/test.sh does)"
	[[ -f /usr/include/proton/container.hpp ]] ||
		die "Proton C++ headers not found: install libqpid-proton-cpp12-dev (scripts/test.sh does)"
	command -v g++ >/dev/null 2>&1 || die "g++ not found: install g++ (scripts/test.sh does)"
	if ! needs_build; then
		return 0
	fi
	mkdir -p "$CACHE_DIR"
	# Build into a temporary file and rename it, so that concurrent callers never see a
	# half-written binary.
	local tmp
	tmp="$(mktemp "$CACHE_DIR/broker.tmp.XXXXXX")"
	echo "proton-broker.sh: compiling $SRC_DIR/broker.cpp -> $BIN" >&2
	if ! g++ -O2 -std=gnu++17 -I"$SRC_DIR" -o "$tmp" "$SRC_DIR/broker.cpp" \
		-lqpid-proton-cpp -lqpid-proton -lpthread >&2; then
		rm -f "$tmp"
		die "compiling the Proton C++ example broker failed"
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$BIN"
}

cmd="${1:-}"
case "$cmd" in
build)
	[[ $# -eq 1 ]] || usage
	build
	echo "$BIN"
	;;
path)
	[[ $# -eq 1 ]] || usage
	echo "$BIN"
	;;
run)
	[[ $# -eq 2 ]] || usage
	port="$2"
	if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((10#$port > 65535)); then
		die "bad port: $port"
	fi
	port=$((10#$port))
	build
	# Always pass -a: the broker's own default is to listen on 0.0.0.0.
	exec "$BIN" -a "127.0.0.1:$port"
	;;
*)
	usage
	;;
esac
