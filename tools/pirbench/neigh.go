package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's neighbour tables (ARP for IPv4, neighbour discovery for
// IPv6) are shared by every network namespace, and their limits,
// net.ipv{4,6}.neigh.default.gc_thresh{2,3}, exist only in the root
// namespace: 512 and 1024 entries by default, for the whole machine. In a
// lab of N hosts that all talk to each other, each host holds an entry for
// every other one: N(N-1) entries for IPv4, about twice that for IPv6
// (the unique local and the link-local address), plus multicast entries.
// Past gc_thresh3 the kernel refuses new entries ("neighbor table
// overflow" in dmesg): sends fail with EINVAL and connections time out,
// from about 33 hosts on. pirbench raises the limits for the benchmark and
// puts them back at the end.

// neighLimit is one limit pirbench may raise.
type neighLimit struct {
	path      string
	old, want int
}

// neighPaths are the limits, under /proc/sys.
var neighPaths = []string{
	"net/ipv4/neigh/default/gc_thresh2", "net/ipv4/neigh/default/gc_thresh3",
	"net/ipv6/neigh/default/gc_thresh2", "net/ipv6/neigh/default/gc_thresh3",
	"net/ipv4/neigh/default/gc_thresh1", "net/ipv6/neigh/default/gc_thresh1",
}

// neighNeeds returns the limits a lab of n hosts needs, by path under
// /proc/sys: gc_thresh2 (above which the kernel collects entries every
// 5 s) at the estimated number of entries, gc_thresh3 (the hard limit)
// twice that, which leaves room for other labs that may run at the same
// time. And gc_thresh1, below which the kernel collects nothing, at the
// estimate too: a real host's table holds its own neighbours, fewer than
// the default 128 on a LAN of 100, and keeps them; the lab's one table for
// all hosts would otherwise drop every entry unused for a minute (at 100
// hosts, most of them between two pings), and each next send would
// broadcast an ARP request that every host receives. The estimate is twice
// the unicast entries, n(n-1) per family and address: at exactly n², 100
// hosts' 9,900 IPv4 entries and their multicast ones passed both
// thresholds in one run of session 16, and its pir hosts each received
// 12 broadcasts a second more than they sent (docs/performance.md).
func neighNeeds(n int) map[string]int {
	v4, v6 := 2*n*n, 6*n*n
	return map[string]int{
		neighPaths[0]: v4, neighPaths[1]: 2 * v4,
		neighPaths[2]: v6, neighPaths[3]: 2 * v6,
		neighPaths[4]: v4, neighPaths[5]: v6,
	}
}

// raiseNeighLimits raises the neighbour table limits under sys (/proc/sys)
// that are below what a lab of n hosts needs. It returns what it changed,
// and a function that puts back the values it changed unless someone
// changed them since.
func raiseNeighLimits(sys string, n int) (changed []neighLimit, restore func() error, err error) {
	needs := neighNeeds(n)
	var errs []error
	for _, p := range neighPaths {
		path := filepath.Join(sys, p)
		old, err := readInt(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if old >= needs[p] {
			continue
		}
		if err := writeInt(path, needs[p]); err != nil {
			errs = append(errs, err)
			continue
		}
		changed = append(changed, neighLimit{path: path, old: old, want: needs[p]})
	}
	restore = func() error {
		var errs []error
		for _, c := range changed {
			if now, err := readInt(c.path); err != nil || now != c.want {
				continue // changed by someone else meanwhile: leave it
			}
			if err := writeInt(c.path, c.old); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return changed, restore, errors.Join(errs...)
}

// sysctlName turns a path ending in net/... into a sysctl name.
func sysctlName(path string) string {
	if i := strings.Index(path, "net/"); i >= 0 {
		path = path[i:]
	}
	return strings.ReplaceAll(path, "/", ".")
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", sysctlName(path), err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", sysctlName(path), err)
	}
	return n, nil
}

func writeInt(path string, n int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("setting %s to %d: %w", sysctlName(path), n, err)
	}
	return nil
}
