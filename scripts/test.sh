#!/usr/bin/env bash
# The project's test command: installs what the tests need (Debian packages, staticcheck, the
# Proton C++ example broker, the real qdrouterd and qpidd built from source, the images the
# containers modules run), then runs gofmt, go vet, staticcheck and go test -race.
#
#   scripts/test.sh [go test flags...]      e.g. scripts/test.sh -run TestRouter -v
#
# Works on a fresh Debian bookworm machine as root; fast when everything is already there.
set -euo pipefail

# Debian packages the tests need. Extend here.
DEB_PACKAGES=(
	amqp-specs                    # AMQP 1.0 spec XML, for generated codec tables
	python3-oslo.messaging        # the real Python AMQP 1.0 driver (interop tests)
	python3-pyngus                #   its AMQP layer
	python3-qpid-proton           #   and Proton's Python binding (also testdata/peers/proton_client.py)
	libqpid-proton11-dev-examples # Proton example sources (the C++ broker)
	libqpid-proton-cpp12-dev      # Proton C++ headers and library, to build that broker
	g++                           # to build it (gcc also serves cgo for -race)
	rabbitmq-server               # a real AMQP 1.0 broker (scripts/rabbitmq.sh)
	debootstrap                   # builds the images of RabbitMQ, qdrouterd and qpidd for containers/ (scripts/*-image.sh)
	chromium                      # headless browser for the status page's test (statuspage, through chromedp)
)
STATICCHECK_VERSION=v0.8.2
GOIMPORTS_VERSION=v0.53.0 # golang.org/x/tools

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

banner() { printf '\n==> %s\n' "$*"; }
fail() {
	printf '\nFAILED: %s\n' "$*" >&2
	exit 1
}

# --- Debian packages --------------------------------------------------------------------
banner "Debian packages"
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
	status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
	[[ "$status" == installed ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
	echo "all ${#DEB_PACKAGES[@]} present"
else
	echo "installing: ${missing[*]}"
	SUDO=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			fail "not root and no sudo: install these Debian packages by hand: ${missing[*]}"
		SUDO=(sudo)
	fi
	# Package scripts must not start services (a system RabbitMQ would listen on all
	# interfaces): Docker images deny it through policy-rc.d; do the same if it is absent.
	policy_added=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
		"${SUDO[@]}" chmod 0755 /usr/sbin/policy-rc.d
		policy_added=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt_ok=1
	"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q || apt_ok=""
	if [[ -n "$apt_ok" ]]; then
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
			install -y -q "${missing[@]}" || apt_ok=""
	fi
	if [[ -n "$policy_added" ]]; then
		"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
	fi
	[[ -n "$apt_ok" ]] || fail "apt-get could not install: ${missing[*]}"
fi

# --- Go tools -----------------------------------------------------------------------------
banner "Go tools"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH="/usr/local/go/bin:$PATH" # the official Go tarball's place
fi
command -v go >/dev/null 2>&1 || fail "go is not on PATH"
go version
PATH="$(go env GOPATH)/bin:$PATH"
export PATH
if ! staticcheck -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})\|(${STATICCHECK_VERSION})"; then
	echo "installing staticcheck $STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" ||
		fail "go install honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi
staticcheck -version
if ! go version -m "$(command -v goimports 2>/dev/null || echo /nonexistent)" 2>/dev/null | grep -q "golang.org/x/tools[[:space:]]*${GOIMPORTS_VERSION}"; then
	echo "installing goimports (golang.org/x/tools $GOIMPORTS_VERSION)"
	go install "golang.org/x/tools/cmd/goimports@${GOIMPORTS_VERSION}" ||
		fail "go install golang.org/x/tools/cmd/goimports@${GOIMPORTS_VERSION}"
fi

# --- Test peers ---------------------------------------------------------------------------
banner "Test peers"
AMQP1KIT_PROTON_BROKER="$(bash scripts/proton-broker.sh build)" ||
	fail "building the Proton C++ example broker (scripts/proton-broker.sh build)"
export AMQP1KIT_PROTON_BROKER
# Elsewhere than under CI=true a peer that cannot be built only makes the tests that need it
# skip, saying why. The RabbitMQ image (network and disk bound, ~80 s cold) is built while the
# real qdrouterd and qpidd compile (CPU bound, ~7 min cold); both are no-ops once done.
rabbitmq_log="$(mktemp)"
bash scripts/rabbitmq-image.sh >"$rabbitmq_log" 2>&1 &
rabbitmq_pid=$!
# Should this script stop before it waits, the build stops too (and cleans up after itself).
trap 'kill "$rabbitmq_pid" 2>/dev/null || true; rm -f "$rabbitmq_log"' EXIT
# The real qdrouterd 1.19.0 and qpidd 1.39.0, from source into /opt/amqp1kit. What counts is
# what it leaves built (scripts/real-peers.sh env names it), which the tests find through
# AMQP1KIT_QDROUTERD and AMQP1KIT_QPIDD.
bash scripts/real-peers.sh build all || true
while IFS='=' read -r name value; do
	[[ "$name" == AMQP1KIT_QDROUTERD || "$name" == AMQP1KIT_QPIDD ]] && export "$name=$value"
done < <(bash scripts/real-peers.sh env || true)
if [[ -n "${AMQP1KIT_QDROUTERD:-}" && -n "${AMQP1KIT_QPIDD:-}" ]]; then
	bash scripts/real-peers-image.sh || [[ "${CI:-}" != true ]] ||
		fail "building the images of the real qdrouterd and qpidd (scripts/real-peers-image.sh)"
else
	[[ "${CI:-}" != true ]] || fail "building the real qdrouterd and qpidd (scripts/real-peers.sh build all)"
	echo "the real qdrouterd and qpidd are not built: the tests that need them skip"
fi
rabbitmq_ok=1
wait "$rabbitmq_pid" || rabbitmq_ok=""
trap - EXIT
cat "$rabbitmq_log"
rm -f "$rabbitmq_log"
[[ -n "$rabbitmq_ok" || "${CI:-}" != true ]] || fail "building the RabbitMQ image (scripts/rabbitmq-image.sh)"
export AMQP1KIT_PYTHON=/usr/bin/python3
export TESTCONTAINERS_RYUK_DISABLED=true
echo "AMQP1KIT_PROTON_BROKER=$AMQP1KIT_PROTON_BROKER"
echo "AMQP1KIT_QDROUTERD=${AMQP1KIT_QDROUTERD:-}"
echo "AMQP1KIT_QPIDD=${AMQP1KIT_QPIDD:-}"
echo "AMQP1KIT_PYTHON=$AMQP1KIT_PYTHON"
"$AMQP1KIT_PYTHON" -c 'import proton, pyngus, oslo_messaging' ||
	fail "$AMQP1KIT_PYTHON cannot import proton, pyngus and oslo_messaging"

# --- Checks -------------------------------------------------------------------------------
banner "gofmt -l"
mapfile -t go_files < <(find . -path ./.git -prune -o -type d -name testdata -prune -o \
	-type f -name '*.go' -print | sort)
if ((${#go_files[@]} == 0)); then
	echo "no Go files yet"
else
	unformatted="$(gofmt -l "${go_files[@]}")" || fail "gofmt could not parse some files"
	if [[ -n "$unformatted" ]]; then
		echo "$unformatted"
		fail "gofmt: these files need 'gofmt -w'"
	fi
	echo "ok (${#go_files[@]} files)"
	banner "goimports -l -local github.com/amqp1kit/amqp1kit"
	mapfile -t hand_written < <(printf '%s\n' "${go_files[@]}" | grep -v '_gen\.go$')
	misgrouped="$(goimports -l -local github.com/amqp1kit/amqp1kit "${hand_written[@]}")" ||
		fail "goimports could not parse some files"
	if [[ -n "$misgrouped" ]]; then
		echo "$misgrouped"
		fail "goimports: these files' imports are not grouped (standard library, others, github.com/amqp1kit/amqp1kit): run goimports -w -local github.com/amqp1kit/amqp1kit on them"
	fi
	echo ok
fi

# The root module and the modules nested in it (go.work lists them all): containers,
# cmd and statuspage are modules of their own, so that importing the driver or a fake
# does not bring testcontainers-go, the CLI's dependencies, Prometheus or chromedp.
PACKAGES=(./... ./cmd/... ./containers/... ./statuspage/...)
[[ -f go.work ]] || fail "no go.work: the nested modules would not be found"
export GOWORK="$REPO_ROOT/go.work"

banner "go mod tidy (each module)"
for dir in . cmd containers statuspage; do
	(cd "$dir" && GOWORK=off go mod tidy -diff) || fail "go mod tidy: $dir/go.mod or go.sum is not tidy (run: cd $dir && GOWORK=off go mod tidy)"
done
echo ok

banner "go vet ${PACKAGES[*]}"
go vet "${PACKAGES[@]}" || fail "go vet"

banner "staticcheck ${PACKAGES[*]}"
staticcheck "${PACKAGES[@]}" || fail "staticcheck"

banner "go test -race -count=1 $* ${PACKAGES[*]}"
export CGO_ENABLED=1 # -race needs cgo
go test -race -count=1 "$@" "${PACKAGES[@]}" || fail "go test"

banner "all checks passed"
