package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pirlan/pir/internal/nslan/pircli"
)

// contenderMemberlist is -contender's one value: hashicorp/memberlist,
// through tools/mlshim.
const contenderMemberlist = "memberlist"

// shimJoin is the command each memberlist member runs (the first host's
// without -seed).
const shimJoin = "mlshim join -json -iface eth0 -id ml-hI -seed 198.18.0.1"

// toolsModule is the module path of the tools module, which holds mlshim.
const toolsModule = "github.com/pirlan/pir/tools"

// buildShim builds the tools module's ./mlshim into dir and returns the
// binary's path. The tools module is the tools directory of the pir
// repository pirbench runs in.
func buildShim(ctx context.Context, dir string) (string, error) {
	root, err := pircli.ModuleRoot(".")
	if err != nil {
		return "", fmt.Errorf("%w (run pirbench inside the pir repository, or give -mlshim)", err)
	}
	tools := filepath.Join(root, "tools")
	if b, err := os.ReadFile(filepath.Join(tools, "go.mod")); err != nil || !bytes.Contains(b, []byte("module "+toolsModule+"\n")) {
		return "", fmt.Errorf("no go.mod of %s in %s (give -mlshim)", toolsModule, tools)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building mlshim: %w", err)
	}
	out := filepath.Join(dir, "mlshim")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, "./mlshim")
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as pir is built (pircli.Build)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./mlshim: %w: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}

// shimConfig returns the settings the mlshim at shim runs memberlist with.
func shimConfig(ctx context.Context, shim string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, shim, "config").Output()
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", shim, err)
	}
	var c map[string]string
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s config: %w", shim, err)
	}
	return c, nil
}

// compareRow is one row of the side-by-side table: a measure's median for
// a size, if measured, and how to print it.
type compareRow struct {
	name   string
	value  func(sizeResult) (float64, bool)
	format func(float64) string
}

// compareRows are the side-by-side table's rows: the time measures, then
// the steady-state ones with the sums of sent and received (the cost
// issue 15 compares) after the packets and after the bytes.
func compareRows() []compareRow {
	var rows []compareRow
	for _, m := range measurements {
		rows = append(rows, compareRow{
			name: m.name,
			value: func(s sizeResult) (float64, bool) {
				for _, x := range s.Times {
					if x.Name == m.name && x.N > 0 {
						return float64(x.Median), true
					}
				}
				return 0, false
			},
			format: func(v float64) string { return ms(time.Duration(v)) },
		})
	}
	steady := func(name string, format func(float64) string) compareRow {
		return compareRow{
			name: name + " per host",
			value: func(s sizeResult) (float64, bool) {
				for _, x := range s.Steady {
					if x.Name == name && x.N > 0 {
						return x.Median, true
					}
				}
				return 0, false
			},
			format: format,
		}
	}
	sum := func(name string, get func(hostSample) float64, format func(float64) string) compareRow {
		return compareRow{
			name: name + " per host",
			value: func(s sizeResult) (float64, bool) {
				if len(s.HostSamples) == 0 {
					return 0, false
				}
				v := make([]float64, len(s.HostSamples))
				for i, h := range s.HostSamples {
					v[i] = get(h)
				}
				return quantile(v, 0.5), true
			},
			format: format,
		}
	}
	rows = append(rows,
		steady(sTxPackets, perSecond), steady(sRxPackets, perSecond),
		sum("packets/s sent + received", func(h hostSample) float64 { return h.TxPackets + h.RxPackets }, perSecond),
		steady(sTxBytes, bytesPerSecond), steady(sRxBytes, bytesPerSecond),
		sum("bytes/s sent + received", func(h hostSample) float64 { return h.TxBytes + h.RxBytes }, bytesPerSecond),
		steady(sCPU, percent), steady(sRSS, mebibytes),
	)
	return rows
}

// writeComparison writes the side-by-side table: for each size of sizes
// (pir's) that c measured too, pir's median, the contender's and their
// ratio.
func writeComparison(w io.Writer, sizes []sizeResult, c *contenderResults) {
	type pair struct{ pir, other sizeResult }
	var pairs []pair
	for _, s := range sortedSizes(sizes) {
		for _, o := range c.Sizes {
			if o.Hosts == s.Hosts {
				pairs = append(pairs, pair{s, o})
				break
			}
		}
	}
	if len(pairs) == 0 {
		return
	}
	lo, hi := pairs[0].pir.Runs, pairs[0].pir.Runs
	for _, p := range pairs {
		lo, hi = min(lo, p.pir.Runs, p.other.Runs), max(hi, p.pir.Runs, p.other.Runs)
	}
	n := fmt.Sprintf("%d", lo)
	if lo != hi {
		n = fmt.Sprintf("%d to %d", lo, hi)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "**pir against %s**: medians of %s runs each, alternated; the ratio is pir's figure over %s's (below 1: pir is faster or cheaper)\n", c.System, n, c.System)
	fmt.Fprintln(w)
	fmt.Fprint(w, "| median |")
	for _, p := range pairs {
		fmt.Fprintf(w, " pir %d hosts | %s %d hosts | ratio |", p.pir.Hosts, c.System, p.pir.Hosts)
	}
	fmt.Fprint(w, "\n|---|")
	for range pairs {
		fmt.Fprint(w, "---:|---:|---:|")
	}
	fmt.Fprintln(w)
	for _, r := range compareRows() {
		fmt.Fprintf(w, "| %s |", r.name)
		for _, p := range pairs {
			a, aok := r.value(p.pir)
			b, bok := r.value(p.other)
			cell := func(v float64, ok bool) string {
				if !ok {
					return "–"
				}
				return r.format(v)
			}
			ratio := "–"
			if aok && bok && b > 0 {
				ratio = ratioText(a / b)
			}
			fmt.Fprintf(w, " %s | %s | %s |", cell(a, aok), cell(b, bok), ratio)
		}
		fmt.Fprintln(w)
	}
}

func ratioText(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// contenderText describes how the contender ran: its command and its
// settings, its version first.
func contenderText(c *contenderResults) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Contender: %s, each member `%s` (tools/mlshim; the first host's without -seed)", c.System, c.Join)
	var first []string
	for _, k := range []string{"memberlist", "config"} {
		if v, ok := c.Config[k]; ok {
			first = append(first, v)
		}
	}
	if len(first) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(first, ", "))
	}
	var rest []string
	for _, k := range slices.Sorted(maps.Keys(c.Config)) {
		if k != "memberlist" && k != "config" {
			rest = append(rest, k+" "+c.Config[k])
		}
	}
	if len(rest) > 0 {
		fmt.Fprintf(&b, "; %s", strings.Join(rest, ", "))
	}
	b.WriteString(".")
	return b.String()
}
