#!/usr/bin/env bash
# Builds the Docker images amqp1kit/qdrouterd:1.19.0 and amqp1kit/qpidd:1.39.0 without a
# registry: the real Qpid Dispatch Router and Qpid C++ broker that scripts/real-peers.sh builds
# from Apache's source releases, in a Debian bookworm root filesystem with the libraries they
# need.
#
#   bash scripts/real-peers-image.sh            build the images that do not exist (both there: a no-op)
#   bash scripts/real-peers-image.sh --force    rebuild both
#
# Prints progress on stderr and the two image names on stdout. How: bash scripts/real-peers.sh
# build (a no-op once built), then debootstrap --variant=minbase bookworm once (from the Debian
# mirror apt uses on this machine) and, for each image, a copy of it where a chroot installs the
# Debian packages that hold the libraries the program's files link (found with ldd and dpkg -S on
# this machine, checked with ldd in the chroot) plus the SASL modules, gets the program's
# install prefix copied at the same path (the programs hold compiled-in paths), a user of its own
# and the upstream default configuration at the path the images read; `tar | docker import`,
# then a container of each is started and must answer an AMQP header on port 5672 before
# anything is tagged. A failed build leaves no image, no container and no rootfs behind; --force
# removes the previous images once the new ones are tagged (unless a container still uses one).
#
# The images read their configuration where the distributions' packages (and the public images)
# do, so the containers/qdrouterd and containers/qpidd modules drive them by writing that file:
#   amqp1kit/qdrouterd:1.19.0  ENTRYPOINT qdrouterd -c /etc/qpid-dispatch/qdrouterd.conf,
#                              as user qdrouterd; logs on stderr; qdstat and qdmanage on PATH
#                              (docker exec CTR qdstat -b 127.0.0.1:5672 -g)
#   amqp1kit/qpidd:1.39.0      ENTRYPOINT qpidd --config /etc/qpid/qpidd.conf, as user qpidd
#                              (HOME /var/lib/qpidd, data dir $HOME/.qpidd); its AMQP 1.0
#                              module amqp.so loads from the default module dir under the
#                              prefix (a broker without it does not answer AMQP 1.0, which the
#                              check asks for); logs on stderr
# Both listen on 5672; SIGTERM to the container stops the program.
#
# Needs root (or sudo), debootstrap, the docker command with a running engine, the Debian
# archive, and what scripts/real-peers.sh needs (the source tarballs). Environment: that of
# scripts/real-peers.sh (AMQP1KIT_REAL_PEERS_SRC, AMQP1KIT_REAL_PEERS_PREFIX) and of
# scripts/lib/debian-image.sh (AMQP1KIT_DEBIAN_MIRROR, AMQP1KIT_DEBIAN_SECURITY, TMPDIR).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QDR_VERSION=1.19.0
QPIDD_VERSION=1.39.0
START_TIMEOUT=60 # seconds for a check container to answer AMQP

image_of() { case "$1" in qdrouterd) echo "amqp1kit/qdrouterd:$QDR_VERSION" ;; qpidd) echo "amqp1kit/qpidd:$QPIDD_VERSION" ;; esac; }
version_of() { case "$1" in qdrouterd) echo "$QDR_VERSION" ;; qpidd) echo "$QPIDD_VERSION" ;; esac; }
PROGRAMS=(qdrouterd qpidd)

DI_NAME=real-peers-image.sh # for scripts/lib/debian-image.sh's messages
# shellcheck source=lib/debian-image.sh
source scripts/lib/debian-image.sh

di_args "$@"
di_need_docker
todo=()
missing() {
	local p
	todo=()
	for p in "${PROGRAMS[@]}"; do
		[[ -n "$(di_missing "$(image_of "$p")")" ]] && todo+=("$p")
	done
	if ((${#todo[@]} == 0)); then
		for p in "${PROGRAMS[@]}"; do image_of "$p"; done
		exit 0
	fi
}
missing
if di_lock real-peers-image; then
	missing # built by the build we waited for
fi

# The programs, built natively first (cached: a no-op once built).
declare -A PREFIX
for p in "${todo[@]}"; do
	# What counts is the program it leaves (it says why on stderr when it cannot build one).
	bash scripts/real-peers.sh build "$p" >&2 || true
	bin="$(bash scripts/real-peers.sh path "$p" || true)"
	[[ -x "$bin" ]] || die "$p is not built (bash scripts/real-peers.sh build $p)"
	got="$("$bin" --version 2>&1)" || die "$bin --version"
	[[ "$got" == *"$(version_of "$p")"* ]] || die "$bin --version says $got, want $(version_of "$p")"
	PREFIX[$p]="${bin%/sbin/"$p"}"
done

di_begin
say "building $(for p in "${todo[@]}"; do image_of "$p"; done | paste -sd " ")"

# packages_for PREFIX prints the Debian packages (of this machine) that hold the libraries the
# ELF files under PREFIX link, outside PREFIX.
packages_for() {
	local prefix="$1" f lib
	find "$prefix" -type f \( -perm -u+x -o -name '*.so*' \) -print0 |
		while IFS= read -r -d '' f; do
			head -c 4 "$f" | grep -q 'ELF' || continue
			ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
		done | sort -u | while read -r lib; do
		[[ "$lib" == "$prefix"/* ]] && continue
		{ dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null ||
			dpkg -S "$(realpath "$lib")" 2>/dev/null || die "no Debian package holds $lib"; } | head -n 1
	done | cut -d: -f1 | sort -u
}

# prepare PROGRAM ROOTFS: packages, the prefix, a user, the default configuration.
prepare() {
	local p="$1" root="$2" prefix="${PREFIX[$1]}" pkgs home="/var/lib/$1"
	mapfile -t pkgs < <(packages_for "$prefix")
	((${#pkgs[@]} > 0)) || die "found no libraries that $prefix links"
	# The SASL mechanisms (ANONYMOUS, PLAIN) are plugins that Cyrus SASL loads at run time;
	# netbase's /etc/services names the port "amqp" (qdrouterd's default configuration says so).
	pkgs+=(libsasl2-modules netbase)
	# qdstat and qdmanage: Python 3 with Proton's binding.
	[[ "$p" == qdrouterd ]] && pkgs+=(python3 python3-qpid-proton)
	di_install "$root" "${pkgs[@]}"

	di_step "copying $prefix"
	"${SUDO[@]}" mkdir -p "$root$(dirname "$prefix")"
	"${SUDO[@]}" cp -a "$prefix" "$root$prefix"
	"${SUDO[@]}" rm -rf "$root$prefix/include" "$root$prefix/share/doc"
	local missing_libs
	missing_libs="$(find "$root$prefix" -type f \( -perm -u+x -o -name '*.so*' \) -printf '/%P\n' |
		while read -r f; do
			head -c 4 "$root$prefix$f" | grep -q ELF || continue
			di_in_root "$root" ldd "$prefix$f" | grep 'not found' | sed "s|^|$prefix$f: |"
		done)" || true
	[[ -z "$missing_libs" ]] || die "libraries missing in the image: $missing_libs"

	di_step "user $p, home $home; /etc configuration from the prefix"
	di_run "useradd $p" di_in_root "$root" useradd --system --user-group --home-dir "$home" \
		--create-home --shell /usr/sbin/nologin "$p"
	case "$p" in
	qdrouterd)
		"${SUDO[@]}" mkdir -p "$root/etc/qpid-dispatch"
		"${SUDO[@]}" cp "$prefix/etc/qpid-dispatch/qdrouterd.conf" "$root/etc/qpid-dispatch/qdrouterd.conf"
		;;
	qpidd)
		"${SUDO[@]}" mkdir -p "$root/etc/qpid"
		"${SUDO[@]}" cp "$prefix/etc/qpid/qpidd.conf" "$root/etc/qpid/qpidd.conf"
		compgen -G "$root$prefix/lib*/qpid/daemon/amqp.so" >/dev/null || die "no amqp.so under $prefix"
		;;
	esac
	di_clean "$root"
}

# changes_of PROGRAM prints the image's configuration, one docker import --change a line.
changes_of() {
	local p="$1" prefix="${PREFIX[$1]}" v
	v="$(version_of "$p")"
	local path="$prefix/sbin:$prefix/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	case "$p" in
	qdrouterd)
		echo "ENTRYPOINT [\"$prefix/sbin/qdrouterd\", \"-c\", \"/etc/qpid-dispatch/qdrouterd.conf\"]"
		echo "ENV PYTHONPATH=$prefix/lib/qpid-dispatch/python"
		echo "LABEL org.opencontainers.image.title=amqp1kit-qdrouterd org.opencontainers.image.version=$v org.opencontainers.image.description=\"Qpid Dispatch Router $v (qdrouterd), built from source on Debian $DI_SUITE\""
		;;
	qpidd)
		echo "ENTRYPOINT [\"$prefix/sbin/qpidd\", \"--config\", \"/etc/qpid/qpidd.conf\"]"
		echo "LABEL org.opencontainers.image.title=amqp1kit-qpidd org.opencontainers.image.version=$v org.opencontainers.image.description=\"Qpid C++ broker $v (qpidd) with AMQP 1.0, built from source on Debian $DI_SUITE\""
		;;
	esac
	echo "EXPOSE 5672"
	echo "USER $p"
	echo "WORKDIR /var/lib/$p"
	echo "ENV HOME=/var/lib/$p"
	echo "ENV LANG=C.UTF-8"
	echo "ENV PATH=$path"
}

# checked PROGRAM CONTAINER: what a started container of PROGRAM must show besides answering
# AMQP 1.0 (which qpidd only does once its amqp.so module is loaded).
checked() {
	case "$1" in
	qdrouterd)
		docker exec "$2" qdstat -b 127.0.0.1:5672 -g >>"$DI_LOG" 2>&1 || {
			tail -n 20 "$DI_LOG" >&2
			die "qdstat -g in the qdrouterd container"
		}
		;;
	qpidd) ;;
	esac
}

di_bootstrap BASE real-peers
declare -A ID
for p in "${todo[@]}"; do
	say "--- $(image_of "$p")"
	di_clone root "$BASE" "$p"
	prepare "$p" "$root"
	mapfile -t changes < <(changes_of "$p")
	di_import "ID[$p]" "$root" "${changes[@]}"
	di_check "${ID[$p]}" "$START_TIMEOUT" di_amqp_answers -p 127.0.0.1::5672
	checked "$p" "$DI_CTR"
	di_check_done
done
for p in "${todo[@]}"; do
	di_tag "${ID[$p]}" "$(image_of "$p")"
done
di_done
for p in "${PROGRAMS[@]}"; do image_of "$p"; done
