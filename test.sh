#!/usr/bin/env bash
# pir's whole test suite, as the README gives it and CI runs it (.ci/run).
# On a fresh machine it installs what the network tests need (as root), then
# vets, cross-builds and runs every test with the race detector.
#
# Every step runs even when an earlier one failed, so that one red package
# never hides the others. The run ends with a summary: the steps that failed
# and the failing tests and packages they printed, or one line saying that
# every step passed. The exit status is non-zero when any step failed.
set -uo pipefail
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
# The avahi interop test runs Debian's avahi-daemon with a private dbus-daemon
# (both started by the test, in a lab namespace).
have avahi-daemon || need+=(avahi-daemon)
{ have avahi-browse && have avahi-publish; } || need+=(avahi-utils)
have dbus-daemon || need+=(dbus)
# plugins/etcd tests against a real etcd server, Debian's (started by the test).
have etcd || need+=(etcd-server)
# The agent's browser test (tools/browser) drives Debian's Chromium, headless.
have chromium || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: installing ${need[*]}"
		# No daemon the packages bring (avahi, dbus, etcd) may start on the
		# machine's interfaces: policy-rc.d forbids every start while apt
		# runs (unless the machine has a policy of its own).
		policy=""
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			policy=/usr/sbin/policy-rc.d
			printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
		fi
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }; then
			echo "test.sh: installing ${need[*]} failed; the tests that need them will skip or fail" >&2
		fi
		[ -n "$policy" ] && rm -f "$policy"
	else
		echo "test.sh: ${need[*]} missing and cannot be installed here; network tests will skip" >&2
	fi
fi

export GORACE="${GORACE:-atexit_sleep_ms=0}"
export PATH="$PATH:/usr/sbin:/sbin"

log=$(mktemp "${TMPDIR:-/tmp}/pir-test.XXXXXX")
trap 'rm -f "$log"' EXIT
steps=0
failed=()  # one line per failed step: its name and what it reported failing
stacks=""  # goroutine stacks of test binaries that timed out

# step NAME CMD...: runs CMD, showing its output, and records NAME as failed
# (with the FAIL lines go test printed) when it exits non-zero.
step() {
	local name=$1 start=$SECONDS
	shift
	steps=$((steps + 1))
	echo "== $name"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		local what
		what=$(grep -E '^(--- FAIL: |FAIL[[:space:]]|panic: )' "$log" | sed -E 's/ \(.*\)$//; s/\t[0-9.]+s$//; s/\t/ /g' | sort -u | paste -sd ';' - | sed 's/;/; /g')
		# A test binary that timed out names the tests it was running
		# just below its panic line, above a long goroutine dump.
		local hung
		hung=$(grep -A20 -E '^panic: test timed out' "$log" | grep -E '^[[:space:]]+Test[^ ]* \(' | sed -E 's/^[[:space:]]+//' | paste -sd ',' -)
		[ -n "$hung" ] && what="$what; still running: $hung"
		# And where they and the Groups' owner goroutines were stuck: the
		# end of the output is what a CI log shows.
		if [ -n "$hung" ]; then
			stacks+=$(awk 'BEGIN { RS = "" } /testing\.tRunner|\(\*Group\)\.own\(/ { print; print "" }' "$log" | sed -E 's#^[[:space:]]+/.*/([^/]+:[0-9]+).*#    \1#' | head -150)
			stacks+=$'\n'
		fi
		failed+=("$name (exit $rc, $((SECONDS - start)) s)${what:+: $what}")
		echo "test.sh: step failed: $name (exit $rc); going on with the others" >&2
	fi
}

# indir DIR CMD...: runs CMD in DIR.
indir() { (cd "$1" && shift && "$@"); }

step "go vet" go vet ./...
for os in darwin windows; do
	step "cross-build $os" env GOOS=$os go build ./...
done
# The lab and stress tests run many processes and time real failure
# detection: they run after the rest, one package at a time, so that other
# packages' tests do not starve them of the machine's CPU.
heavy="github.com/pirlan/pir/e2e github.com/pirlan/pir/internal/stress"
step "go test -race (unit, conformance, loopback namespace)" \
	go test -race -count=1 $(go list ./... | grep -v -x -F -e ${heavy// / -e })
step "go test -race -p 1 (network lab, stress)" go test -race -count=1 -p 1 $heavy
# Each plugin is a Go module of its own (plugins/*/go.mod), and so is tools/
# (benchmarks, simulators, browser tests), with heavier dependencies than the
# core: vet and test each one in its own directory.
for mod in plugins/*/go.mod tools/go.mod; do
	[ -e "$mod" ] || continue
	dir=$(dirname "$mod")
	step "$dir: go vet" indir "$dir" go vet ./...
	step "$dir: go test -race" indir "$dir" go test -race -count=1 -p 1 ./...
done

if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "test.sh: FAILED: ${#failed[@]} of $steps steps failed (${SECONDS} s):"
	for f in "${failed[@]}"; do
		echo "  - $f"
	done
	if [ -n "$stacks" ]; then
		echo "test.sh: stacks of the tests that timed out and of the Groups' owners:"
		echo "$stacks"
	fi
	exit 1
fi
echo
echo "test.sh: ok: all $steps steps passed (${SECONDS} s)"
