#!/bin/bash
# cpucmp.sh N WAIT WINDOW BIN...: N members of each BIN in its own netns loopback, side by side;
# after WAIT s, CPU seconds of all members of each BIN over WINDOW s, and member 1's RSS.
n=$1; wait=$2; win=$3; shift 3
declare -A pids
k=0
for bin in "$@"; do
  ns=pircpu$$-$k; ip netns add $ns; ip -n $ns link set lo up; ip -n $ns link set lo multicast on
  p=()
  for i in $(seq 1 $n); do ip netns exec $ns $bin join -iface lo -id m$i >/dev/null 2>&1 & p+=($!); done
  pids[$k]="${p[*]}"; k=$((k+1))
done
ticks() { local t=0; for p in $1; do set -- $(cut -d' ' -f14,15 /proc/$p/stat); t=$((t+$1+$2)); done; echo $t; }
sleep $wait
for j in $(seq 0 $((k-1))); do a[$j]=$(ticks "${pids[$j]}"); done
sleep $win
j=0
for bin in "$@"; do
  b=$(ticks "${pids[$j]}"); first=${pids[$j]%% *}
  echo "$bin: $(( b - a[$j] )) ticks over ${win}s for $n members = $(python3 -c "print(round(($b-${a[$j]})/100/$win/$n*100,4))") % per member; $(grep -E 'VmRSS' /proc/$first/status | tr -s ' ')"
  j=$((j+1))
done
for j in $(seq 0 $((k-1))); do kill -INT ${pids[$j]}; done; wait
for j in $(seq 0 $((k-1))); do ip netns delete pircpu$$-$j; done
