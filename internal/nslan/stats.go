package nslan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Counters are the frames and bytes a host's eth0 sent and received, as
// its switch port counts them: the port receives what the host sends. The
// bytes are those of whole Ethernet frames, header included (no preamble
// or FCS). Every frame counts: multicast, unicast, ARP and neighbour
// discovery alike.
type Counters struct {
	// TxPackets and TxBytes count the frames the host sent.
	TxPackets, TxBytes uint64
	// RxPackets and RxBytes count the frames the switch delivered to it.
	RxPackets, RxBytes uint64
	// At is when they were read.
	At time.Time
}

// Sub returns c minus an earlier reading: the traffic in between, with c's
// At. A counter that went backwards (it cannot, unless the port was made
// anew) gives 0.
func (c Counters) Sub(earlier Counters) Counters {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return Counters{
		TxPackets: sub(c.TxPackets, earlier.TxPackets),
		TxBytes:   sub(c.TxBytes, earlier.TxBytes),
		RxPackets: sub(c.RxPackets, earlier.RxPackets),
		RxBytes:   sub(c.RxBytes, earlier.RxBytes),
		At:        c.At,
	}
}

// Counters reads h's counters at its switch port.
func (l *Lab) Counters(h *Host) (Counters, error) {
	if err := l.check(h); err != nil {
		return Counters{}, err
	}
	all, err := l.readPorts("dev", h.port)
	if err != nil {
		return Counters{}, err
	}
	c, ok := all[h.port]
	if !ok {
		return Counters{}, fmt.Errorf("lab: counters of %s: port %s missing from ip's output", h.Name, h.port)
	}
	return c, nil
}

// AllCounters reads every host's counters with one command, which is
// lighter than Counters for each host: element I is host I's.
func (l *Lab) AllCounters() ([]Counters, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	all, err := l.readPorts()
	if err != nil {
		return nil, err
	}
	out := make([]Counters, len(l.hosts))
	for i, h := range l.hosts {
		c, ok := all[h.port]
		if !ok {
			return nil, fmt.Errorf("lab: counters of %s: port %s missing from ip's output", h.Name, h.port)
		}
		out[i] = c
	}
	return out, nil
}

// readPorts runs "ip -s -j link show [args]" in the switch namespace and
// returns the counters of each port by name, from the host's side.
func (l *Lab) readPorts(args ...string) (map[string]Counters, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	argv := append([]string{"-n", l.sw, "-s", "-j", "link", "show"}, args...)
	cmd := exec.CommandContext(ctx, l.tools.ip, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	at := time.Now()
	if err != nil {
		return nil, fmt.Errorf("lab: reading counters: ip %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	ports, err := parseLinkStats(out)
	if err != nil {
		return nil, fmt.Errorf("lab: reading counters: %w", err)
	}
	for name, c := range ports {
		c.At = at
		ports[name] = c
	}
	return ports, nil
}

// parseLinkStats parses the output of "ip -s -j link show" and returns each
// link's counters by name, swapped to the other end of the cable: what the
// link received is what its peer sent.
func parseLinkStats(b []byte) (map[string]Counters, error) {
	type dir struct {
		Bytes   *uint64 `json:"bytes"`
		Packets *uint64 `json:"packets"`
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats *struct {
			Rx dir `json:"rx"`
			Tx dir `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return nil, fmt.Errorf("parsing ip -s -j link output: %w", err)
	}
	out := make(map[string]Counters, len(links))
	for _, l := range links {
		s := l.Stats
		if l.Name == "" || s == nil || s.Rx.Bytes == nil || s.Rx.Packets == nil || s.Tx.Bytes == nil || s.Tx.Packets == nil {
			return nil, fmt.Errorf("parsing ip -s -j link output: link %q has no name or no stats64 rx/tx bytes and packets", l.Name)
		}
		out[l.Name] = Counters{
			TxPackets: *s.Rx.Packets, TxBytes: *s.Rx.Bytes,
			RxPackets: *s.Tx.Packets, RxBytes: *s.Tx.Bytes,
		}
	}
	return out, nil
}

// ProcStats is a process's processor time and memory, from /proc.
type ProcStats struct {
	// CPU is the processor time the process's threads used, user and
	// system: the sum of their run times in nanoseconds
	// (/proc/PID/task/*/schedstat, the scheduler's own accounting). A
	// thread that exited no longer counts there: where the sum falls below
	// utime + stime of /proc/PID/stat (clock ticks of 10 ms, sampled),
	// that is taken instead. A member at rest uses a few milliseconds a
	// second: ticks alone would measure 0.17 % over 30 s as 5 ticks, give
	// or take one.
	CPU time.Duration
	// RSS is its resident set size in bytes: VmRSS of /proc/PID/status.
	RSS uint64
	// At is when they were read.
	At time.Time
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, 100 on every
// architecture Go runs Linux on.
const userHZ = 100

// Stats reads the process's CPU time and resident memory from /proc. It
// fails once the process has exited.
func (p *Proc) Stats() (ProcStats, error) {
	select {
	case <-p.done:
		return ProcStats{}, fmt.Errorf("lab: stats of %s on %s: %w", p.name(), p.host.Name, ErrExited)
	default:
	}
	s, err := readProcStats(p.Pid())
	if err != nil {
		return ProcStats{}, fmt.Errorf("lab: stats of %s on %s: %w", p.name(), p.host.Name, err)
	}
	return s, nil
}

// readProcStats reads /proc/PID/stat and /proc/PID/status.
func readProcStats(pid int) (ProcStats, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ProcStats{}, err
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return ProcStats{}, err
	}
	run, runErr := threadsRunTime(dir)
	at := time.Now()
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcStats{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	if runErr == nil && run > cpu {
		cpu = run
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return ProcStats{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	return ProcStats{CPU: cpu, RSS: rss, At: at}, nil
}

// threadsRunTime sums the run times of the threads of the process whose
// /proc directory is dir: the first field of each task's schedstat, in
// nanoseconds. A thread that exits meanwhile is skipped.
func threadsRunTime(dir string) (time.Duration, error) {
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", task.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s/task/%s/schedstat: empty", dir, task.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/task/%s/schedstat: %w", dir, task.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// parseStatCPU returns utime + stime from the contents of /proc/PID/stat.
// The command name, field 2, is in parentheses and may hold spaces and
// parentheses itself: the fields that follow start after the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After ')': state (field 3), ppid (4), ... utime (14), stime (15).
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want more than %d", len(f), stime)
	}
	var ticks uint64
	for _, s := range []string{f[utime], f[stime]} {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime or stime %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// parseStatusRSS returns VmRSS, in bytes, from the contents of
// /proc/PID/status.
func parseStatusRSS(b []byte) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want a number of kB", strings.TrimSpace(line))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %w", strings.TrimSpace(line), err)
		}
		return n << 10, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}
