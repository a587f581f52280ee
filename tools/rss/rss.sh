#!/usr/bin/env bash
# rss.sh BIN N STEP COUNT [VAR=VALUE...]: starts N "BIN join" members on the
# loopback of a private network namespace (nothing leaves the machine) and
# prints the first member's VmRSS, RssAnon and RssFile every STEP seconds,
# COUNT times, then interrupts them all. VAR=VALUE pairs go into the
# members' environment (GOGC=100, GODEBUG=gctrace=1...). Needs root and
# ip(8). docs/performance.md, "Where pir join's resident memory goes", names
# the runs it reports:
#
#	CGO_ENABLED=0 go build -o /tmp/pir ./cmd/pir
#	sudo tools/rss/rss.sh /tmp/pir 20 60 8
set -euo pipefail
if [ $# -lt 4 ]; then
	echo "usage: $0 BIN N STEP COUNT [VAR=VALUE...]" >&2
	exit 2
fi
bin=$1 n=$2 step=$3 count=$4
shift 4
ns=pirrss$$
ip netns add "$ns"
pids=()
cleanup() {
	[ ${#pids[@]} -gt 0 ] && kill -INT "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
	ip netns delete "$ns"
}
trap cleanup EXIT
ip -n "$ns" link set lo up
ip -n "$ns" link set lo multicast on
for i in $(seq 1 "$n"); do
	ip netns exec "$ns" env "$@" "$bin" join -iface lo -id "m$i" >/dev/null 2>&1 &
	pids+=($!)
done
for c in $(seq 1 "$count"); do
	sleep "$step"
	printf 't=%ds ' $((c * step))
	awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s %.2f MiB  ", $1, $2 / 1024 } END { print "" }' "/proc/${pids[0]}/status"
done
