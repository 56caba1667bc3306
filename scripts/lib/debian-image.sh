# shellcheck shell=bash
# What the scripts that build Docker images from Debian packages without a registry share
# (scripts/rabbitmq-image.sh, scripts/real-peers-image.sh): debootstrap --variant=minbase a
# Debian root filesystem from the mirror apt uses on this machine, install packages in it with
# a chroot, clean it, `tar | docker import` it with the image's configuration, start a
# container of it and check it, and tag it only then. A failed build leaves no image, no
# container and no rootfs behind.
#
# Sourced, not run. The sourcing script sets DI_NAME (its name, for messages) and calls, in
# this order:
#
#   di_args "$@"                  parse [--force] (usage otherwise) into DI_FORCE
#   di_need_docker                die unless the docker command and engine answer
#   di_missing IMAGE...           print the images to build: every one with --force, else
#                                 those that do not exist (nothing: all there)
#   di_lock NAME                  one build of NAME at a time; true if it had to wait for
#                                 another build (whose images may now exist)
#   di_begin                      root or sudo, debootstrap, the mirrors, the clean-up trap
#   di_bootstrap VAR LABEL        debootstrap a new rootfs (its path in VAR), apt configured
#                                 and up to date
#   di_clone VAR SRC LABEL        a new rootfs (its path in VAR) holding a copy of SRC
#   di_install DIR PKG...         apt-get install --no-install-recommends in DIR
#   di_clean DIR [GLOB...]        apt caches, docs, logs (and GLOBs inside DIR) removed
#   di_import VAR DIR CHANGE...   tar | docker import --change CHANGE...: the new, untagged
#                                 image id in VAR (removed again if the build fails)
#   di_check ID TIMEOUT READY [DOCKER-RUN-OPTION...]
#                                 run a container of ID, call READY CONTAINER until it
#                                 succeeds (die after TIMEOUT s, or if the container stops);
#                                 the container is DI_CTR until di_check_done removes it
#   di_tag ID IMAGE               tag ID as IMAGE
#   di_done                       every imported image is tagged: the build succeeded; the
#                                 images the tags named before are removed (unless in use)
#
# Every rootfs is removed at exit. A failure before di_done removes the images imported and
# puts back the tags di_tag moved. Helpers: di_amqp_answers CONTAINER (a READY function),
# di_in_root DIR CMD..., di_write DIR PATH (stdin to PATH inside DIR), di_run DESC CMD...,
# di_step MESSAGE, say, die.
#
# Environment: AMQP1KIT_DEBIAN_MIRROR (default: the bookworm mirror of apt's sources, else
# http://deb.debian.org/debian), AMQP1KIT_DEBIAN_SECURITY (default: from apt's sources; "none"
# to leave bookworm-security out), TMPDIR (where the rootfs is made; default /var/tmp).

DI_SUITE=bookworm
DI_TMP="${TMPDIR:-/var/tmp}"

say() { printf '%s: %s\n' "$DI_NAME" "$*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}

DI_FORCE=""
di_args() {
	case "$#:${1:-}" in
	0:) ;;
	1:--force) DI_FORCE=1 ;;
	*)
		echo "usage: $0 [--force]" >&2
		exit 2
		;;
	esac
}

di_need_docker() {
	command -v docker >/dev/null 2>&1 || die "no docker command"
	docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
		die "the Docker engine does not answer (docker version)"
}

di_missing() {
	local img
	for img in "$@"; do
		if [[ -z "$DI_FORCE" ]] && docker image inspect "$img" >/dev/null 2>&1; then
			say "$img exists ($(docker image inspect -f '{{.Id}}' "$img" | cut -c1-19)); --force rebuilds it"
		else
			echo "$img"
		fi
	done
}

# One build at a time (test packages may ask at once); the first one's image serves the rest.
di_lock() {
	local lock="$DI_TMP/amqp1kit-$1.lock"
	exec {DI_LOCK_FD}>>"$lock"
	flock -n "$DI_LOCK_FD" && return 1
	say "another build holds $lock: waiting (at most 15 min)"
	flock -w 900 "$DI_LOCK_FD" || die "still locked after 15 min: $lock"
	return 0
}

# apt_uri SUITE prints the URI apt's sources on this machine use for SUITE's main component
# (deb822 .sources files first, then one-line sources.list files), or nothing.
di_apt_uri() {
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

DI_ROOTFS=()        # every rootfs made, removed at exit
DI_IDS=()           # every image di_import made
DI_TAGGED=()        # "ID IMAGE PREVIOUS-ID" for each di_tag (PREVIOUS-ID may be empty)
DI_CTR=""           # the check container, removed at exit
DI_LOG=""           # the commands' own output; its tail is shown when one fails
DI_OK=""            # set by di_done
DI_BOOTSTRAPPING="" # the rootfs debootstrap is filling, whose log a failure shows

di_begin() {
	SUDO=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "debootstrap and chroot need root, and there is no sudo"
		SUDO=(sudo)
	fi
	command -v debootstrap >/dev/null 2>&1 ||
		[[ -x /usr/sbin/debootstrap ]] || die "no debootstrap: apt-get install debootstrap (scripts/test.sh does)"
	DI_MIRROR="${AMQP1KIT_DEBIAN_MIRROR:-$(di_apt_uri "$DI_SUITE" | head -n 1)}"
	DI_MIRROR="${DI_MIRROR:-http://deb.debian.org/debian}"
	DI_MIRROR="${DI_MIRROR%/}"
	DI_SECURITY="${AMQP1KIT_DEBIAN_SECURITY:-$(di_apt_uri "$DI_SUITE-security" | head -n 1)}"
	DI_SECURITY="${DI_SECURITY%/}"
	[[ "$DI_SECURITY" == none ]] && DI_SECURITY=""
	DI_T0=$SECONDS
	exec {DI_STDERR}>&2 # the clean-up's messages go here even if a trap fires inside a redirection
	trap di_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	DI_LOG="$(mktemp "$DI_TMP/amqp1kit-$DI_NAME-log.XXXXXX")"
}

di_cleanup() {
	local rc=$? id image old root m entry
	set +e
	exec 2>&"$DI_STDERR"
	[[ -n "$DI_CTR" ]] && docker rm -f "$DI_CTR" >/dev/null 2>&1
	if [[ -z "$DI_OK" ]]; then
		# A failed build leaves nothing, not half of what it makes: the tags it moved go back.
		for entry in "${DI_TAGGED[@]}"; do
			read -r id image old <<<"$entry"
			if [[ -n "$old" ]]; then
				docker tag "$old" "$image" >/dev/null 2>&1
			else
				docker rmi "$image" >/dev/null 2>&1
			fi
		done
		for id in "${DI_IDS[@]}"; do
			say "removing the unfinished image ${id:0:19}"
			docker rmi -f "$id" >/dev/null 2>&1
		done
	fi
	for root in "${DI_ROOTFS[@]}"; do
		[[ -d "$root" ]] || continue
		# Anything debootstrap or a package script left mounted in the rootfs, deepest first,
		# before anything is deleted; rm never crosses into another file system.
		while read -r m; do
			"${SUDO[@]}" umount -l "$m" 2>/dev/null
		done < <(awk -v root="$root/" 'index($2 "/", root) == 1 { print $2 }' /proc/self/mounts | sort -r)
		"${SUDO[@]}" rm -rf --one-file-system "$root"
		[[ -e "$root" ]] && say "could not remove the rootfs $root"
	done
	[[ -n "$DI_LOG" ]] && rm -f "$DI_LOG"
	[[ -z "$DI_OK" ]] && say "FAILED after $((SECONDS - DI_T0))s; no image was tagged"
	exit "$rc"
}

di_step() { say "[$((SECONDS - DI_T0))s] $*"; }

# di_run DESC CMD... runs CMD with its output in $DI_LOG; on a failure prints the log's tail and dies.
di_run() {
	local desc="$1"
	shift
	echo "=== $desc" >>"$DI_LOG"
	"$@" >>"$DI_LOG" 2>&1 || {
		tail -n 40 "$DI_LOG" >&2
		[[ -n "$DI_BOOTSTRAPPING" && -f "$DI_BOOTSTRAPPING/debootstrap/debootstrap.log" ]] &&
			tail -n 20 "$DI_BOOTSTRAPPING/debootstrap/debootstrap.log" >&2
		die "$desc"
	}
}

# di_rootfs VAR LABEL makes a new, empty rootfs directory (removed at exit), its path in VAR.
di_rootfs() {
	local -n di_rootfs_var="$1"
	di_rootfs_var="$(mktemp -d "$DI_TMP/amqp1kit-$2-rootfs.XXXXXX")"
	DI_ROOTFS+=("$di_rootfs_var")
	chmod 0755 "$di_rootfs_var"
}

di_in_root() {
	local root="$1"
	shift
	"${SUDO[@]}" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

di_write() { "${SUDO[@]}" tee "$1/$2" >/dev/null; }

di_bootstrap() {
	local -n di_bootstrap_var="$1"
	# Locals of the functions that set a caller's variable have names no caller uses.
	local _di_root
	di_rootfs _di_root "$2"
	# shellcheck disable=SC2034 # a nameref
	di_bootstrap_var="$_di_root"
	di_step "debootstrap --variant=minbase $DI_SUITE from $DI_MIRROR${DI_SECURITY:+ (+ $DI_SUITE-security from $DI_SECURITY)} into $_di_root"
	DI_BOOTSTRAPPING="$_di_root"
	di_run "debootstrap" "${SUDO[@]}" debootstrap --variant=minbase "$DI_SUITE" "$_di_root" "$DI_MIRROR"
	DI_BOOTSTRAPPING=""

	di_step "apt sources, no service start-up, no recommends"
	{
		echo "deb $DI_MIRROR $DI_SUITE main"
		echo "deb $DI_MIRROR $DI_SUITE-updates main"
		[[ -n "$DI_SECURITY" ]] && echo "deb $DI_SECURITY $DI_SUITE-security main"
	} | di_write "$_di_root" etc/apt/sources.list
	printf '#!/bin/sh\nexit 101\n' | di_write "$_di_root" usr/sbin/policy-rc.d
	"${SUDO[@]}" chmod 0755 "$_di_root/usr/sbin/policy-rc.d"
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' |
		di_write "$_di_root" etc/apt/apt.conf.d/99amqp1kit
	"${SUDO[@]}" cp -L /etc/resolv.conf "$_di_root/etc/resolv.conf"

	di_step "apt-get update"
	di_run "apt-get update in the chroot" di_in_root "$_di_root" apt-get -q update
	di_step "apt-get dist-upgrade (updates from $DI_SUITE-updates${DI_SECURITY:+ and $DI_SUITE-security})"
	di_run "apt-get dist-upgrade in the chroot" di_in_root "$_di_root" apt-get -q -y \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade
}

# di_clone VAR SRC LABEL makes a new rootfs that holds a copy of the rootfs SRC, its path in VAR.
di_clone() {
	local -n di_clone_var="$1"
	local _di_root
	di_rootfs _di_root "$3"
	di_step "copying the rootfs for $3"
	"${SUDO[@]}" cp -a --one-file-system "$2/." "$_di_root/" || die "copying the rootfs $2"
	# shellcheck disable=SC2034 # a nameref
	di_clone_var="$_di_root"
}

di_install() {
	local root="$1"
	shift
	di_step "apt-get install --no-install-recommends $*"
	di_run "apt-get install $* in the chroot" di_in_root "$root" apt-get -q -y install --no-install-recommends "$@"
}

di_clean() {
	local root="$1" p
	shift
	di_step "cleaning apt caches, docs, logs"
	di_run "apt-get clean in the chroot" di_in_root "$root" apt-get -q clean
	"${SUDO[@]}" rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
		"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log \
		"$root"/var/log/bootstrap.log "$root"/usr/sbin/policy-rc.d \
		"$root"/etc/apt/apt.conf.d/99amqp1kit "$root"/root/.bash_history "$root"/tmp/*
	for p in "$@"; do
		# shellcheck disable=SC2086 # p may be a glob
		"${SUDO[@]}" rm -rf "${root:?}"/${p#/}
	done
	# Docker supplies these at run time.
	: | di_write "$root" etc/resolv.conf
	: | di_write "$root" etc/hostname
}

di_import() {
	local -n di_import_var="$1"
	local _di_root="$2" _di_change _di_args=() _di_id
	shift 2
	for _di_change in "$@"; do
		_di_args+=(--change "$_di_change")
	done
	di_step "docker import (rootfs $("${SUDO[@]}" du -sh --one-file-system "$_di_root" | cut -f1))"
	# Untagged first: a tar that fails midway must not leave a tagged, truncated image.
	_di_id="$("${SUDO[@]}" tar --numeric-owner -C "$_di_root" -c . | docker import "${_di_args[@]}" -)" ||
		die "tar | docker import"
	[[ "$_di_id" == sha256:* ]] || die "docker import printed no image id: $_di_id"
	DI_IDS+=("$_di_id")
	# shellcheck disable=SC2034 # a nameref
	di_import_var="$_di_id"
}

di_check() {
	local id="$1" timeout="$2" ready="$3" deadline
	shift 3
	di_step "checking a container of ${id:0:19}"
	DI_CTR="$(docker run -d "$@" "$id")" || die "docker run"
	deadline=$((SECONDS + timeout))
	until "$ready" "$DI_CTR"; do
		if [[ "$(docker inspect -f '{{.State.Running}}' "$DI_CTR")" != true ]]; then
			docker logs --tail 40 "$DI_CTR" >&2 2>&1
			die "the container exited during start-up"
		fi
		if ((SECONDS >= deadline)); then
			docker logs --tail 40 "$DI_CTR" >&2 2>&1
			die "the container was not ready ($ready) within ${timeout}s"
		fi
		sleep 0.5
	done
}

# di_check_done removes the check container (after whatever else the caller checked in it).
di_check_done() {
	docker rm -f "$DI_CTR" >/dev/null
	DI_CTR=""
}

# di_amqp_answers CONTAINER succeeds once the container's port 5672, published on 127.0.0.1
# (di_check ID TIMEOUT di_amqp_answers -p 127.0.0.1::5672), answers an AMQP 1.0 SASL protocol
# header with an AMQP 1.0 header (SASL or not): Docker's proxy accepts TCP before anything
# listens, and a broker without AMQP 1.0 answers with another version's header, or not at all.
di_amqp_answers() {
	local hp reply
	hp="$(docker port "$1" 5672/tcp 2>/dev/null | head -n 1)"
	[[ -n "$hp" ]] || return 1
	# shellcheck disable=SC2016 # the inner bash expands them
	reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "AMQP\x03\x01\x00\x00" >&3 && head -c 8 <&3' \
		"${hp%:*}" "${hp##*:}" 2>/dev/null | od -An -tx1 | tr -s ' \n' ' ')" || return 1
	[[ "$reply" == " 41 4d 51 50 03 01 00 00 " || "$reply" == " 41 4d 51 50 00 01 00 00 " ]]
}

di_tag() {
	local old
	old="$(docker image inspect -f '{{.Id}}' "$2" 2>/dev/null || true)"
	docker tag "$1" "$2" || die "docker tag $2"
	DI_TAGGED+=("$1 $2 $old")
}

di_done() {
	local id entry image old tagged
	for id in "${DI_IDS[@]}"; do
		tagged=""
		for entry in "${DI_TAGGED[@]}"; do
			[[ "$entry" == "$id "* ]] && tagged=1
		done
		[[ -n "$tagged" ]] || die "di_done: the image ${id:0:19} is not tagged"
	done
	DI_OK=1
	for entry in "${DI_TAGGED[@]}"; do
		read -r id image old <<<"$entry"
		if [[ -n "$old" && "$old" != "$id" ]]; then
			docker rmi "$old" >/dev/null 2>&1 || say "the previous $image ${old:0:19} is still in use: left alone"
		fi
		di_step "done: $image (${id:0:19}, $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}'))"
	done
}
