#!/usr/bin/env bash
# Builds the real intermediaries the fakes imitate, from their Apache source releases, on Debian
# bookworm: Qpid Dispatch Router (qdrouterd) 1.19.0 and the Qpid C++ broker (qpidd) 1.39.0 with
# its AMQP 1.0 module. Cached: a second run is a no-op.
#
#   bash scripts/real-peers.sh build [qdrouterd|qpidd|all]   build what is missing (default all)
#   bash scripts/real-peers.sh path qdrouterd|qpidd          print the installed binary's path
#   bash scripts/real-peers.sh env                           print AMQP1KIT_QDROUTERD=... lines
#
# Sources: the release tarballs qpid-dispatch-1.19.0.tar.gz and qpid-cpp-1.39.0.tar.gz, looked
# for in AMQP1KIT_REAL_PEERS_SRC (default ../shared/real-peers from the repository root; users
# elsewhere put Apache's release tarballs in a folder of their own and point this at it). Each
# tarball's sha256 is checked before it is unpacked. qpid-cpp 1.39.0's code generator needs
# upstream's later Python 3 fix (QPID-8413, QPID-8516): scripts/patches/.
#
# Installs into AMQP1KIT_REAL_PEERS_PREFIX (default /opt/amqp1kit): qdrouterd-1.19.0/ and
# qpidd-1.39.0/. A finished install holds a stamp file naming the tarball's sha256 and this
# script's build recipe version; the stamp is written last, so an interrupted build is redone.
# Build trees go to a temporary folder that is removed afterwards. One build at a time (flock).
# Needs root (or sudo) for the Debian build dependencies. Progress on stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
SRC_DIR="${AMQP1KIT_REAL_PEERS_SRC:-$REPO_ROOT/../shared/real-peers}"
PREFIX_ROOT="${AMQP1KIT_REAL_PEERS_PREFIX:-/opt/amqp1kit}"
JOBS="${JOBS:-$(nproc)}"
RECIPE=1 # bump when the build steps change, so cached installs are rebuilt

QDR_VERSION=1.19.0
QDR_TARBALL=qpid-dispatch-$QDR_VERSION.tar.gz
QDR_SHA256=7d781673854f71e0250848e0dc14644e5516aadf384853160090bc1a009137b3
QDR_PREFIX="$PREFIX_ROOT/qdrouterd-$QDR_VERSION"

QPIDD_VERSION=1.39.0
QPIDD_TARBALL=qpid-cpp-$QPIDD_VERSION.tar.gz
QPIDD_SHA256=b497010a419b775cd91746ea811f7df084f4a804ebfcc3dc5745c2ea4a03d623
QPIDD_PREFIX="$PREFIX_ROOT/qpidd-$QPIDD_VERSION"
QPIDD_PATCH="$REPO_ROOT/scripts/patches/qpid-cpp-1.39.0-py3-managementgen.patch"

QDR_DEPS=(cmake make gcc g++ python3 python3-dev libpython3-dev libqpid-proton11-dev pkg-config)
QPIDD_DEPS=(cmake make gcc g++ patch python3 ruby pkg-config uuid-dev libqpid-proton11-dev libsasl2-dev
	libboost-dev libboost-program-options-dev libboost-system-dev libboost-filesystem-dev)

say() { printf 'real-peers.sh: %s\n' "$*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}
usage() {
	echo "usage: $0 build [qdrouterd|qpidd|all] | path qdrouterd|qpidd | env" >&2
	exit 2
}

SUDO=()
if ((EUID != 0)) && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi

stamp_of() { # stamp_of NAME prints the stamp a finished install of NAME must hold
	case "$1" in
	qdrouterd) echo "qpid-dispatch $QDR_VERSION sha256=$QDR_SHA256 recipe=$RECIPE" ;;
	qpidd) echo "qpid-cpp $QPIDD_VERSION sha256=$QPIDD_SHA256 recipe=$RECIPE" ;;
	esac
}
prefix_of() { case "$1" in qdrouterd) echo "$QDR_PREFIX" ;; qpidd) echo "$QPIDD_PREFIX" ;; esac; }
binary_of() { echo "$(prefix_of "$1")/sbin/$1"; }
built() { [[ -x "$(binary_of "$1")" && "$(cat "$(prefix_of "$1")/.amqp1kit-stamp" 2>/dev/null)" == "$(stamp_of "$1")" ]]; }

apt_install() {
	local missing=() p
	for p in "$@"; do
		[[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	say "installing build dependencies: ${missing[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >&2 ||
		die "apt-get update"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
		--no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]}"
}

check_tarball() { # check_tarball FILE SHA256
	[[ -f "$1" ]] || die "no source tarball $1 (set AMQP1KIT_REAL_PEERS_SRC to the folder holding Apache's release tarballs)"
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[[ "$got" == "$2" ]] || die "$1: sha256 $got, want $2"
}

# proton_shim DIR writes a ProtonConfig.cmake for Debian's libqpid-proton11-dev, which ships only a
# pkg-config file (whose libdir is wrong); core and proactor are both in libqpid-proton.so.
proton_shim() {
	local dir="$1" pver plib
	mkdir -p "$dir"
	pver="$(pkg-config --modversion libqpid-proton)"
	plib="$(realpath "$(gcc -print-file-name=libqpid-proton.so)")"
	[[ -f "$plib" && -f /usr/include/proton/proactor.h ]] || die "libqpid-proton11-dev is not installed"
	cat >"$dir/ProtonConfig.cmake" <<EOF
set(Proton_VERSION $pver)
set(Proton_INCLUDE_DIRS /usr/include)
set(Proton_LIBRARIES $plib)
set(Proton_Core_INCLUDE_DIRS /usr/include)
set(Proton_Core_LIBRARIES $plib)
set(Proton_Core_FOUND TRUE)
set(Proton_Proactor_INCLUDE_DIRS /usr/include)
set(Proton_Proactor_LIBRARIES $plib)
set(Proton_Proactor_FOUND TRUE)
set(Proton_FOUND TRUE)
EOF
	cat >"$dir/ProtonConfigVersion.cmake" <<EOF
set(PACKAGE_VERSION $pver)
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
EOF
}

WORK=""
cleanup() { if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

# quiet DESC CMD... runs CMD with its output in $WORK/build.log; prints the tail on failure.
quiet() {
	local desc="$1"
	shift
	"$@" >>"$WORK/build.log" 2>&1 || {
		tail -n 40 "$WORK/build.log" >&2
		die "$desc"
	}
}

build_qdrouterd() {
	check_tarball "$SRC_DIR/$QDR_TARBALL" "$QDR_SHA256"
	apt_install "${QDR_DEPS[@]}"
	local t0=$SECONDS src="$WORK/qpid-dispatch-$QDR_VERSION" b="$WORK/build-qdrouterd"
	say "building qdrouterd $QDR_VERSION into $QDR_PREFIX (about 20 s on 2 cores)"
	tar -xzf "$SRC_DIR/$QDR_TARBALL" -C "$WORK"
	proton_shim "$WORK/proton-shim"
	"${SUDO[@]}" rm -rf "$QDR_PREFIX"
	mkdir -p "$b"
	# Debian's python3: the router embeds libpython3.11, and PATH may hold a pyenv interpreter.
	(cd "$b" && PATH=/usr/bin:/bin:/usr/sbin:/sbin quiet "cmake qdrouterd" cmake "$src" \
		-DCMAKE_INSTALL_PREFIX="$QDR_PREFIX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DProton_DIR="$WORK/proton-shim" -DPython_EXECUTABLE=/usr/bin/python3 \
		-DUNITTEST_MISSING=ON -DCONSOLE_INSTALL=OFF -DUSE_LIBWEBSOCKETS=OFF \
		-DBUILD_BENCHMARKS=OFF -DBUILD_TESTING=OFF)
	(cd "$b" && PATH=/usr/bin:/bin:/usr/sbin:/sbin quiet "make qdrouterd" make -j"$JOBS")
	(cd "$b" && PATH=/usr/bin:/bin:/usr/sbin:/sbin quiet "make install qdrouterd" "${SUDO[@]}" make install)
	# The public qpid_dispatch package (qdstat, qdmanage) next to qpid_dispatch_internal, where the
	# router's embedded interpreter and the tools (PYTHONPATH=<prefix>/lib/qpid-dispatch/python) look.
	"${SUDO[@]}" cp -r "$src/python/qpid_dispatch" "$b/python/qpid_dispatch_site.py" "$QDR_PREFIX/lib/qpid-dispatch/python/"
	"${SUDO[@]}" rm -rf "$QDR_PREFIX/local"
	"$QDR_PREFIX/sbin/qdrouterd" --version >/dev/null || die "the built qdrouterd does not run"
	stamp_of qdrouterd | "${SUDO[@]}" tee "$QDR_PREFIX/.amqp1kit-stamp" >/dev/null
	say "qdrouterd $("$QDR_PREFIX/sbin/qdrouterd" --version) built in $((SECONDS - t0)) s ($(du -sh "$QDR_PREFIX" | cut -f1))"
}

build_qpidd() {
	check_tarball "$SRC_DIR/$QPIDD_TARBALL" "$QPIDD_SHA256"
	[[ -f "$QPIDD_PATCH" ]] || die "no $QPIDD_PATCH"
	apt_install "${QPIDD_DEPS[@]}"
	local t0=$SECONDS src="$WORK/qpid-cpp-$QPIDD_VERSION" b="$WORK/build-qpidd"
	say "building qpidd $QPIDD_VERSION into $QPIDD_PREFIX (about 6.5 min on 2 cores)"
	tar -xzf "$SRC_DIR/$QPIDD_TARBALL" -C "$WORK"
	(cd "$src" && quiet "patch qpid-cpp" patch -p1 -i "$QPIDD_PATCH")
	proton_shim "$WORK/proton-shim"
	"${SUDO[@]}" rm -rf "$QPIDD_PREFIX"
	mkdir -p "$b"
	# gcc 12: 1.39.0 predates C++17 (gcc's default) and some warnings; SSL (NSS), HA, XML,
	# stores, RDMA, docs, tests and bindings off; AMQP 1.0 (Proton) and Cyrus SASL on.
	(cd "$b" && PATH=/usr/bin:/bin:/usr/sbin:/sbin quiet "cmake qpidd" cmake "$src" \
		-DCMAKE_INSTALL_PREFIX="$QPIDD_PREFIX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_CXX_FLAGS="-std=gnu++11" -DENABLE_WARNING_ERROR=OFF \
		-DProton_DIR="$WORK/proton-shim" -DPYTHON_EXECUTABLE=/usr/bin/python3 \
		-DBUILD_AMQP=ON -DBUILD_SASL=ON -DBUILD_SSL=OFF -DBUILD_HA=OFF -DBUILD_XML=OFF \
		-DBUILD_LEGACYSTORE=OFF -DBUILD_LINEARSTORE=OFF -DBUILD_RDMA=OFF -DBUILD_PROBES=OFF \
		-DBUILD_DOCS=OFF -DBUILD_TESTING=OFF -DBUILD_BINDING_PYTHON=OFF -DBUILD_BINDING_RUBY=OFF \
		-DBUILD_BINDING_PERL=OFF -DINSTALL_QMFGEN=OFF -DENABLE_VALGRIND=OFF)
	# Only what the broker needs: qpidd, the AMQP 1.0 module and the store framework module.
	(cd "$b" && PATH=/usr/bin:/bin:/usr/sbin:/sbin quiet "make qpidd" make -j"$JOBS" qpidd amqp store)
	(cd "$b" && quiet "install qpidd" "${SUDO[@]}" cmake -DCOMPONENT=broker -DCMAKE_INSTALL_DO_STRIP=1 -P cmake_install.cmake)
	# The "runtime" component would want client libraries that were not built: install the two
	# libraries the broker links by hand, with their build-tree RUNPATH pointed at the prefix.
	cat >"$b/install-runtime-libs.cmake" <<EOF
foreach(lib qpidcommon qpidtypes)
  file(GLOB files "$b/src/lib\${lib}.so*")
  file(INSTALL DESTINATION "$QPIDD_PREFIX/lib" TYPE SHARED_LIBRARY FILES \${files})
  file(GLOB real "$QPIDD_PREFIX/lib/lib\${lib}.so.*.*.*")
  file(READ_ELF "\${real}" RUNPATH rp)
  if(rp)
    file(RPATH_SET FILE "\${real}" NEW_RPATH "$QPIDD_PREFIX/lib")
  endif()
  execute_process(COMMAND strip --strip-unneeded "\${real}")
endforeach()
EOF
	(cd "$b" && quiet "install qpidd's libraries" "${SUDO[@]}" cmake -P install-runtime-libs.cmake)
	"$QPIDD_PREFIX/sbin/qpidd" --version >/dev/null || die "the built qpidd does not run"
	compgen -G "$QPIDD_PREFIX/lib*/qpid/daemon/amqp.so" >/dev/null || die "no amqp.so under $QPIDD_PREFIX"
	stamp_of qpidd | "${SUDO[@]}" tee "$QPIDD_PREFIX/.amqp1kit-stamp" >/dev/null
	say "$("$QPIDD_PREFIX/sbin/qpidd" --version) built in $((SECONDS - t0)) s ($(du -sh "$QPIDD_PREFIX" | cut -f1))"
}

build() {
	local name="$1"
	if built "$name"; then
		say "$name: cached in $(prefix_of "$name")"
		return 0
	fi
	"${SUDO[@]}" mkdir -p "$PREFIX_ROOT"
	exec 9>>"$PREFIX_ROOT/.build.lock"
	flock -w 1800 9 || die "another build held $PREFIX_ROOT/.build.lock for 30 min"
	if built "$name"; then # built by the run we waited for
		flock -u 9
		return 0
	fi
	WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/amqp1kit-$name-build.XXXXXX")"
	: >"$WORK/build.log"
	"build_$name"
	rm -rf "$WORK"
	WORK=""
	flock -u 9
}

case "${1:-}:${2:-all}" in
build:all) build qdrouterd && build qpidd ;;
build:qdrouterd | build:qpidd) build "$2" ;;
path:qdrouterd | path:qpidd)
	built "$2" || die "$2 is not built: bash scripts/real-peers.sh build $2"
	binary_of "$2"
	;;
env:all)
	for n in qdrouterd qpidd; do
		if built "$n"; then echo "AMQP1KIT_$(echo "$n" | tr a-z A-Z)=$(binary_of "$n")"; fi
	done
	;;
*) usage ;;
esac
