package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// results is everything a pirbench invocation measured: results.json.
type results struct {
	// Command is pirbench's command line.
	Command  string       `json:"command"`
	Date     string       `json:"date"` // RFC 3339, UTC
	Machine  machine      `json:"machine"`
	Settings settings     `json:"settings"`
	Sizes    []sizeResult `json:"sizes"`
	// Contender is what the same invocation measured of another system,
	// its runs alternated with pir's (-contender); nil without one.
	Contender *contenderResults `json:"contender,omitempty"`
}

// contenderResults is what the runs of a contender measured, and how it
// ran.
type contenderResults struct {
	// System is the contender's name: "memberlist".
	System string `json:"system"`
	// Join is the command each member runs.
	Join string `json:"join"`
	// Config is the contender's settings, by name, as its shim reports
	// them ("mlshim config"), its version among them.
	Config map[string]string `json:"config"`
	// Sizes are its results for each size, as for pir; their System is
	// the contender's name.
	Sizes []sizeResult `json:"sizes"`
}

type settings struct {
	Runs   int    `json:"runs"`
	Steady string `json:"steady"`
	// Settle is the wait before the steady-state window (-settle); empty
	// in results of pirbench before -settle, which waited 2 s.
	Settle  string   `json:"settle,omitempty"`
	Family  string   `json:"family"`
	PirArgs []string `json:"pir_args"` // the flags added to pir join, beyond pirbench's own
	PirJoin string   `json:"pir_join"` // the command each member runs
}

// sizeResult is what the runs of one LAN size measured.
type sizeResult struct {
	// System is what ran: empty for pir, the contender's name otherwise.
	System string `json:"system,omitempty"`
	Hosts  int    `json:"hosts"`
	Runs   int    `json:"runs"`
	// Failed holds the errors of the runs that failed; what they
	// measured before failing is kept.
	Failed []string `json:"failed,omitempty"`
	// SteadyLeft counts the left lines printed during the steady-state
	// windows of all runs: members removed while nothing happened.
	SteadyLeft int `json:"steady_left"`
	// Load is the machine's load average over 1 minute at the end of
	// each run, the lab's own processes included: far above the number
	// of cores, the members (or other programs) competed for the CPU.
	Load        []float64       `json:"load"`
	Times       []summary       `json:"times"`
	Steady      []steadySummary `json:"steady,omitempty"`
	Samples     []sample        `json:"samples"`
	HostSamples []hostSample    `json:"host_samples,omitempty"`
}

// machine describes where the benchmark ran.
type machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu,omitempty"`
	MemoryMiB uint64 `json:"memory_mib,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	OS        string `json:"os"`
	Go        string `json:"go"`
	// NeighLimits are the kernel's neighbour table limits during the
	// benchmark (see neigh.go).
	NeighLimits map[string]int `json:"neigh_limits,omitempty"`
	// Commit is the pir module's git commit pir was built from, with
	// "+dirty" when the tree had changes; empty with -pir.
	Commit string `json:"commit,omitempty"`
}

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) == 2 {
					if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						m.MemoryMiB = kb >> 10
					}
				}
				break
			}
		}
	}
	return m
}

// gitCommit returns the short commit of the git tree at root, with "+dirty"
// if it has changes, or "" if git cannot say.
func gitCommit(ctx context.Context, root string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		commit += "+dirty"
	}
	return commit
}

// loadAverage returns the load average over the last minute, or -1.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// otherLabs lists the prefixes of the network labs of other processes
// (internal/nslan's default names, pirlab-PID-N).
func otherLabs() []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	mine := fmt.Sprintf("pirlab-%d-", os.Getpid())
	seen := make(map[string]bool)
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "pirlab-") || strings.HasPrefix(name, mine) {
			continue
		}
		prefix, _, ok := strings.Cut(name[len("pirlab-"):], "-")
		if ok && !seen[prefix] {
			seen[prefix] = true
			out = append(out, "pirlab-"+prefix)
		}
	}
	return out
}

// commandLine renders pirbench's arguments as one would type them.
func commandLine(args []string) string {
	parts := []string{"pirbench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeOutputs writes results.json, table.md, times.svg and, with a
// steady state, steady.svg into dir.
func writeOutputs(dir string, res results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making the output directory: %w", err)
	}
	files := map[string]func(*bytes.Buffer) error{
		"results.json": func(b *bytes.Buffer) error {
			enc := json.NewEncoder(b)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		},
		"table.md": func(b *bytes.Buffer) error { writeMarkdown(b, res); return nil },
		"times.svg": func(b *bytes.Buffer) error {
			return writeTimesChart(b, res.Sizes, chartNote(res))
		},
	}
	for _, s := range res.Sizes {
		if len(s.Steady) > 0 {
			files["steady.svg"] = func(b *bytes.Buffer) error { return writeSteadyChart(b, res.Sizes, chartNote(res)) }
			break
		}
	}
	for name, write := range files {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chartNote is the line under a chart's title: the settings and the
// machine.
func chartNote(res results) string {
	flags := "pir's default settings"
	if len(res.Settings.PirArgs) > 0 {
		flags = "pir join " + strings.Join(res.Settings.PirArgs, " ")
	}
	return fmt.Sprintf("%s · %s per size · %s · %s", flags, runsText(res), machineShort(res.Machine), dateOnly(res.Date))
}

func machineShort(m machine) string {
	s := fmt.Sprintf("%d cores", m.Cores)
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	return s + ", " + m.Go
}

func dateOnly(rfc3339 string) string {
	if t, err := time.Parse(time.RFC3339, rfc3339); err == nil {
		return t.Format(time.DateOnly)
	}
	return rfc3339
}
