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
# The steps it shares with scripts/real-peers-image.sh are in scripts/lib/debian-image.sh.
set -euo pipefail

IMAGE=amqp1kit/rabbitmq-amqp1:3.10
PLUGIN=rabbitmq_amqp1_0
START_TIMEOUT=120 # seconds for the check container to log "Server startup complete"

DI_NAME=rabbitmq-image.sh # for scripts/lib/debian-image.sh's messages
# shellcheck source=lib/debian-image.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-image.sh"

di_args "$@"
di_need_docker
exists() {
	if [[ -z "$(di_missing "$IMAGE")" ]]; then
		echo "$IMAGE"
		exit 0
	fi
}
exists
if di_lock rabbitmq-image; then
	exists # built by the build we waited for
fi
di_begin
say "building $IMAGE"

di_bootstrap ROOTFS rabbitmq
di_install "$ROOTFS" rabbitmq-server
# shellcheck disable=SC2016 # dpkg-query's format
version="$(di_in_root "$ROOTFS" dpkg-query -W -f='${Version}' rabbitmq-server)"
di_step "rabbitmq-server $version installed"

plugins_dir="$(echo "$ROOTFS"/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins)"
compgen -G "$plugins_dir/$PLUGIN-*" >/dev/null || die "no $PLUGIN plugin under $plugins_dir"
[[ -x "$ROOTFS/usr/lib/rabbitmq/bin/rabbitmq-server" ]] || die "no /usr/lib/rabbitmq/bin/rabbitmq-server"
di_in_root "$ROOTFS" id rabbitmq >/dev/null || die "the package made no rabbitmq user"

di_step "configuration: /etc/rabbitmq/enabled_plugins, /etc/rabbitmq/rabbitmq.conf"
echo "[$PLUGIN]." | di_write "$ROOTFS" etc/rabbitmq/enabled_plugins
cat <<'EOF' | di_write "$ROOTFS" etc/rabbitmq/rabbitmq.conf
# amqp1kit/rabbitmq-amqp1: AMQP 0-9-1 and 1.0 on port 5672 of every IPv4 interface;
# the default user guest (password guest) may connect from any host.
listeners.tcp.default = 0.0.0.0:5672
loopback_users = none
EOF
"${SUDO[@]}" chmod 0644 "$ROOTFS/etc/rabbitmq/enabled_plugins" "$ROOTFS/etc/rabbitmq/rabbitmq.conf"
# The package's rabbitmq-env.conf only holds comments; the image's ENV configures the node.

di_clean "$ROOTFS" '/var/lib/rabbitmq/.erlang.cookie' '/var/lib/rabbitmq/mnesia/*'

di_import NEW_ID "$ROOTFS" \
	'ENTRYPOINT ["/usr/lib/rabbitmq/bin/rabbitmq-server"]' \
	'EXPOSE 5672' \
	'USER rabbitmq' \
	'WORKDIR /var/lib/rabbitmq' \
	'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	'ENV LANG=C.UTF-8' \
	'ENV HOME=/var/lib/rabbitmq' \
	'ENV RABBITMQ_NODENAME=rabbit@localhost' \
	'ENV RABBITMQ_LOGS=-' \
	"LABEL org.opencontainers.image.title=amqp1kit-rabbitmq-amqp1 org.opencontainers.image.version=$version org.opencontainers.image.description=\"RabbitMQ $version (Debian $DI_SUITE) with $PLUGIN\""

started() { docker logs "$1" 2>&1 | grep -q 'Server startup complete'; }
di_check "$NEW_ID" "$START_TIMEOUT" started
docker logs "$DI_CTR" 2>&1 | grep -q " $PLUGIN" || {
	docker logs --tail 40 "$DI_CTR" >&2 2>&1
	die "RabbitMQ started without $PLUGIN"
}
di_check_done

di_tag "$NEW_ID" "$IMAGE"
di_done
echo "$IMAGE"
