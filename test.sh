#!/usr/bin/env bash
# pir's whole test suite, as the README gives it and CI runs it (.ci/run).
# On a fresh machine it installs what the network tests need (as root), then
# vets, cross-builds and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")"

# The network lab needs unshare (util-linux) and ip (iproute2). Without them
# the tests that need a private network namespace skip, saying why.
need=()
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: installing ${need[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "test.sh: ${need[*]} missing and cannot be installed here; network tests will skip" >&2
	fi
fi

export GORACE="${GORACE:-atexit_sleep_ms=0}"
export PATH="$PATH:/usr/sbin:/sbin"

echo "== go vet"
go vet ./...
echo "== cross-builds (darwin, windows)"
for os in darwin windows; do GOOS=$os go build ./...; done
echo "== go test -race"
go test -race -count=1 ./...
