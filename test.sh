#!/usr/bin/env bash
# pir's whole test suite, as the README gives it and CI runs it (.ci/run).
# On a fresh machine it installs what the network tests need (as root), then
# vets, cross-builds and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")"

# The network lab needs unshare and nsenter (util-linux), ip (iproute2) and,
# for loss on the lab's switch, nft (nftables). Without them the tests that
# need them skip, saying why.
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have ip || need+=(iproute2)
{ have unshare && have nsenter; } || need+=(util-linux)
have nft || need+=(nftables)
# mDNS interop tests run python3-zeroconf, Debian's, with the system python.
/usr/bin/python3 -c 'import zeroconf' >/dev/null 2>&1 || need+=(python3-zeroconf)
# plugins/etcd tests against a real etcd server, Debian's (started by the test).
have etcd || need+=(etcd-server)
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
# The lab and stress tests run many processes and time real failure
# detection: they run after the rest, one package at a time, so that other
# packages' tests do not starve them of the machine's CPU.
heavy="github.com/pirlan/pir/e2e github.com/pirlan/pir/internal/stress"
echo "== go test -race (unit, conformance, loopback namespace)"
go test -race -count=1 $(go list ./... | grep -v -x -F -e ${heavy// / -e })
echo "== go test -race (network lab, stress)"
go test -race -count=1 -p 1 $heavy
# Each plugin is a Go module of its own (plugins/*/go.mod), with heavier
# dependencies than the core: vet and test each one in its own directory.
for mod in plugins/*/go.mod; do
	[ -e "$mod" ] || continue
	dir=$(dirname "$mod")
	echo "== $dir: go vet, go test -race"
	(cd "$dir" && go vet ./... && go test -race -count=1 -p 1 ./...)
done
