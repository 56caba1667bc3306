#!/usr/bin/env bash
# Builds the Docker image amqp1kit/rabbitmq-amqp1:3.10 from Debian packages, without a registry:
# RabbitMQ 3.10 (Debian bookworm's rabbitmq-server) with the rabbitmq_amqp1_0 plugin enabled.
#
#   bash scripts/rabbitmq-image.sh            build the image unless it exists (then a no-op)
#   bash scripts/rabbitmq-image.sh --force    rebuild it
#
# Prints progress on stderr and the image name on stdout. How: debootstrap --variant=minbase
# bookworm into a temporary rootfs (from the Debian mirror apt uses on this machine), chroot
# apt-get install --no-install-recommends rabbitmq-server, write /etc/rabbitmq/enabled_plugins
# and /etc/rabbitmq/rabbitmq.conf, clean apt's caches, `tar | docker import` with the image's
# configuration, check that a container of it starts RabbitMQ with the plugin, then tag it.
# A failed build leaves no image, no container and no rootfs behind; --force removes the
# previous image once the new one is tagged (unless a container still uses it).
#
# The image reads its configuration where the official rabbitmq image does, so the
# containers/rabbitmq module drives both the same way:
#   /etc/rabbitmq/enabled_plugins   [rabbitmq_amqp1_0].
#   /etc/rabbitmq/rabbitmq.conf     loopback_users = none (guest from any host),
#                                   listeners.tcp.default = 0.0.0.0:5672
# The entrypoint is /usr/lib/rabbitmq/bin/rabbitmq-server in the foreground, no CLI tool, as
# user rabbitmq (HOME /var/lib/rabbitmq, where the Erlang cookie goes), node rabbit@localhost
# (Docker's /etc/hosts resolves localhost; erl starts epmd itself, inside the container), logs
# on stdout (RABBITMQ_LOGS=-). SIGTERM to the container stops the node cleanly.
#
# Needs root (or sudo), debootstrap, the docker command with a running engine, and the Debian
# archive. Environment: AMQP1KIT_DEBIAN_MIRROR (default: the bookworm mirror of apt's sources,
# else http://deb.debian.org/debian), AMQP1KIT_DEBIAN_SECURITY (default: from apt's sources;
# "none" to leave bookworm-security out), TMPDIR (where the rootfs is made; default /var/tmp).
set -euo pipefail

IMAGE=amqp1kit/rabbitmq-amqp1:3.10
SUITE=bookworm
PLUGIN=rabbitmq_amqp1_0
START_TIMEOUT=120 # seconds for the check container to log "Server startup complete"

say() { printf 'rabbitmq-image.sh: %s\n' "$*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}
usage() {
	echo "usage: $0 [--force]" >&2
	exit 2
}

force=""
case "$#:${1:-}" in
0:) ;;
1:--force) force=1 ;;
*) usage ;;
esac

command -v docker >/dev/null 2>&1 || die "no docker command"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer (docker version)"

exists() {
	if [[ -z "$force" ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
		say "$IMAGE exists ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19)); --force rebuilds it"
		echo "$IMAGE"
		exit 0
	fi
}
exists
# One build at a time (test packages may ask at once); the first one's image serves the rest.
LOCK="${TMPDIR:-/var/tmp}/amqp1kit-rabbitmq-image.lock"
exec 9>>"$LOCK"
if ! flock -n 9; then
	say "another build holds $LOCK: waiting (at most 15 min)"
	flock -w 900 9 || die "still locked after 15 min: $LOCK"
	exists
fi

SUDO=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 || die "debootstrap and chroot need root, and there is no sudo"
	SUDO=(sudo)
fi
command -v debootstrap >/dev/null 2>&1 ||
	[[ -x /usr/sbin/debootstrap ]] || die "no debootstrap: apt-get install debootstrap (scripts/test.sh does)"

# apt_uri SUITE prints the URI apt's sources on this machine use for SUITE's main component
# (deb822 .sources files first, then one-line sources.list files), or nothing.
apt_uri() {
	local suite="$1" f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f "$f" ]] || continue
		# Stanzas are separated by blank lines; a stanza names its Types, URIs and Suites.
		awk -v suite="$suite" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "") { print uri; found = 1; exit }
				types = ""; suites = ""; uri = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { $1 = ""; types = $0 }
			tolower($1) == "suites:" { $1 = ""; suites = $0 }
			tolower($1) == "uris:" { uri = $2 }
			END { if (!found) flush() }
		' "$f" | head -n 1
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f "$f" ]] || continue
		# deb [options] URI SUITE COMPONENT...
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
	done
}

MIRROR="${AMQP1KIT_DEBIAN_MIRROR:-$(apt_uri "$SUITE" | head -n 1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
MIRROR="${MIRROR%/}"
SECURITY="${AMQP1KIT_DEBIAN_SECURITY:-$(apt_uri "$SUITE-security" | head -n 1)}"
SECURITY="${SECURITY%/}"
[[ "$SECURITY" == none ]] && SECURITY=""

T0=$SECONDS
say "building $IMAGE: debootstrap --variant=minbase $SUITE from $MIRROR${SECURITY:+ (+ $SUITE-security from $SECURITY)}"

ROOTFS=""
LOG=""
NEW_ID=""
CHECK_CTR=""
OK=""
exec {STDERR}>&2 # the cleanup's messages go here even if a trap fires inside run's redirection
cleanup() {
	local rc=$?
	set +e
	exec 2>&"$STDERR"
	if [[ -n "$CHECK_CTR" ]]; then
		docker rm -f "$CHECK_CTR" >/dev/null 2>&1
	fi
	if [[ -z "$OK" && -n "$NEW_ID" ]]; then
		say "removing the unfinished image ${NEW_ID:0:19}"
		docker rmi -f "$NEW_ID" >/dev/null 2>&1
	fi
	if [[ -n "$ROOTFS" && -d "$ROOTFS" ]]; then
		# Anything debootstrap or a package script left mounted in the rootfs, deepest first,
		# before anything is deleted; rm never crosses into another file system.
		local m
		while read -r m; do
			"${SUDO[@]}" umount -l "$m" 2>/dev/null
		done < <(awk -v root="$ROOTFS/" 'index($2 "/", root) == 1 { print $2 }' /proc/self/mounts | sort -r)
		"${SUDO[@]}" rm -rf --one-file-system "$ROOTFS"
		[[ -e "$ROOTFS" ]] && say "could not remove the rootfs $ROOTFS"
	fi
	[[ -n "$LOG" ]] && rm -f "$LOG"
	if [[ -z "$OK" ]]; then
		say "FAILED after $((SECONDS - T0))s; no image was tagged"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/amqp1kit-rabbitmq-rootfs.XXXXXX")"
chmod 0755 "$ROOTFS"

step() { say "[$((SECONDS - T0))s] $*"; }

LOG="$ROOTFS.log" # the commands' own output; its tail is shown when one fails
: >"$LOG"
# run DESC CMD... runs CMD with its output in $LOG; on a failure prints the log's tail and dies.
run() {
	local desc="$1"
	shift
	echo "=== $desc" >>"$LOG"
	"$@" >>"$LOG" 2>&1 || {
		tail -n 40 "$LOG" >&2
		[[ -f "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 20 "$ROOTFS/debootstrap/debootstrap.log" >&2
		die "$desc"
	}
}

step "debootstrap into $ROOTFS"
run "debootstrap" "${SUDO[@]}" debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR"

in_root() { "${SUDO[@]}" chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
write_root() { "${SUDO[@]}" tee "$ROOTFS/$1" >/dev/null; }

step "apt sources, no service start-up, no recommends"
{
	echo "deb $MIRROR $SUITE main"
	echo "deb $MIRROR $SUITE-updates main"
	[[ -n "$SECURITY" ]] && echo "deb $SECURITY $SUITE-security main"
} | write_root etc/apt/sources.list
printf '#!/bin/sh\nexit 101\n' | write_root usr/sbin/policy-rc.d
"${SUDO[@]}" chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' | write_root etc/apt/apt.conf.d/99amqp1kit
"${SUDO[@]}" cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

step "apt-get update"
run "apt-get update in the chroot" in_root apt-get -q update
step "apt-get dist-upgrade (updates from $SUITE-updates${SECURITY:+ and $SUITE-security})"
run "apt-get dist-upgrade in the chroot" in_root apt-get -q -y \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade
step "apt-get install --no-install-recommends rabbitmq-server"
run "apt-get install rabbitmq-server in the chroot" in_root apt-get -q -y install --no-install-recommends rabbitmq-server
version="$(in_root dpkg-query -W -f='${Version}' rabbitmq-server)"
step "rabbitmq-server $version installed"

plugins_dir="$(echo "$ROOTFS"/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins)"
compgen -G "$plugins_dir/$PLUGIN-*" >/dev/null || die "no $PLUGIN plugin under $plugins_dir"
[[ -x "$ROOTFS/usr/lib/rabbitmq/bin/rabbitmq-server" ]] || die "no /usr/lib/rabbitmq/bin/rabbitmq-server"
in_root id rabbitmq >/dev/null || die "the package made no rabbitmq user"

step "configuration: /etc/rabbitmq/enabled_plugins, /etc/rabbitmq/rabbitmq.conf"
echo "[$PLUGIN]." | write_root etc/rabbitmq/enabled_plugins
cat <<'EOF' | write_root etc/rabbitmq/rabbitmq.conf
# amqp1kit/rabbitmq-amqp1: AMQP 0-9-1 and 1.0 on port 5672 of every IPv4 interface;
# the default user guest (password guest) may connect from any host.
listeners.tcp.default = 0.0.0.0:5672
loopback_users = none
EOF
"${SUDO[@]}" chmod 0644 "$ROOTFS/etc/rabbitmq/enabled_plugins" "$ROOTFS/etc/rabbitmq/rabbitmq.conf"
# The package's rabbitmq-env.conf only holds comments; the image's ENV configures the node.

step "cleaning apt caches, docs, logs"
run "apt-get clean in the chroot" in_root apt-get -q clean
"${SUDO[@]}" rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
	"$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
	"$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
	"$ROOTFS"/var/log/apt/* "$ROOTFS"/var/log/dpkg.log "$ROOTFS"/var/log/alternatives.log \
	"$ROOTFS"/var/log/bootstrap.log "$ROOTFS"/usr/sbin/policy-rc.d \
	"$ROOTFS"/etc/apt/apt.conf.d/99amqp1kit "$ROOTFS"/root/.bash_history "$ROOTFS"/tmp/* \
	"$ROOTFS"/var/lib/rabbitmq/.erlang.cookie "$ROOTFS"/var/lib/rabbitmq/mnesia/*
# Docker supplies these at run time.
: | write_root etc/resolv.conf
: | write_root etc/hostname

step "docker import (rootfs $("${SUDO[@]}" du -sh --one-file-system "$ROOTFS" | cut -f1))"
# Untagged first: a tar that fails midway must not leave a tagged, truncated image.
NEW_ID="$("${SUDO[@]}" tar --numeric-owner -C "$ROOTFS" -c . |
	docker import \
		--change 'ENTRYPOINT ["/usr/lib/rabbitmq/bin/rabbitmq-server"]' \
		--change 'EXPOSE 5672' \
		--change 'USER rabbitmq' \
		--change 'WORKDIR /var/lib/rabbitmq' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'ENV HOME=/var/lib/rabbitmq' \
		--change 'ENV RABBITMQ_NODENAME=rabbit@localhost' \
		--change 'ENV RABBITMQ_LOGS=-' \
		--change "LABEL org.opencontainers.image.title=amqp1kit-rabbitmq-amqp1 org.opencontainers.image.version=$version org.opencontainers.image.description=\"RabbitMQ $version (Debian $SUITE) with $PLUGIN\"" \
		- )" || die "tar | docker import"
[[ "$NEW_ID" == sha256:* ]] || die "docker import printed no image id: $NEW_ID"

step "checking that a container of ${NEW_ID:0:19} starts RabbitMQ with $PLUGIN"
CHECK_CTR="$(docker run -d "$NEW_ID")" || die "docker run"
deadline=$((SECONDS + START_TIMEOUT))
until docker logs "$CHECK_CTR" 2>&1 | grep -q 'Server startup complete'; do
	if [[ "$(docker inspect -f '{{.State.Running}}' "$CHECK_CTR")" != true ]]; then
		docker logs --tail 40 "$CHECK_CTR" >&2 2>&1
		die "RabbitMQ exited during start-up"
	fi
	if ((SECONDS >= deadline)); then
		docker logs --tail 40 "$CHECK_CTR" >&2 2>&1
		die "RabbitMQ did not log 'Server startup complete' within ${START_TIMEOUT}s"
	fi
	sleep 0.5
done
docker logs "$CHECK_CTR" 2>&1 | grep -q " $PLUGIN" || {
	docker logs --tail 40 "$CHECK_CTR" >&2 2>&1
	die "RabbitMQ started without $PLUGIN"
}
docker rm -f "$CHECK_CTR" >/dev/null
CHECK_CTR=""

OLD_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
docker tag "$NEW_ID" "$IMAGE" || die "docker tag"
OK=1
if [[ -n "$OLD_ID" && "$OLD_ID" != "$NEW_ID" ]]; then
	docker rmi "$OLD_ID" >/dev/null 2>&1 || say "the previous image ${OLD_ID:0:19} is still in use: left alone"
fi
step "done: $IMAGE (${NEW_ID:0:19}, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')) in $((SECONDS - T0))s"
echo "$IMAGE"
