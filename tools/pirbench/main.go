// Command pirbench measures how fast pir members notice each other, and
// what they cost, on a LAN of network namespaces (internal/nslan), with pir's
// default settings unless told otherwise. It needs Linux and root, and
// runs from anywhere in the pir repository, whose cmd/pir it builds. It is
// a program of the tools module; from the repository's root:
//
//	cd tools && go run ./pirbench -hosts 10,20,50,100 -runs 5 -out ../docs/bench
//
// Flags:
//
//	-hosts 5          comma-separated LAN sizes, each 4 to 1000 hosts
//	-runs 10          runs for each size, each in a fresh lab
//	-steady 10s       steady-state window (0: skip the steady state)
//	-settle 2s        wait from all members seeing each other to the
//	                  steady-state window
//	-args "..."       extra flags for every "pir join", split at spaces,
//	                  e.g. -args "-policy phi"; recorded in the output
//	-family 4|6       pir join -4 or -6 (default: both, pir's default)
//	-out DIR          write results.json, table.md, times.svg and
//	                  steady.svg there (after each size, so a long
//	                  benchmark keeps what it measured)
//	-json             print results.json on stdout instead of the tables
//	-pir PATH         pir binary to run (default: build the repository's
//	                  cmd/pir, no -race)
//	-from FILE        measure nothing: read a results.json and write its
//	                  tables (and, with -out, its files) again
//	-contender memberlist
//	                  also measure hashicorp/memberlist (DefaultLANConfig),
//	                  through tools/mlshim, in the same way: see below
//	-mlshim PATH      mlshim binary for -contender memberlist (default:
//	                  build the tools module's ./mlshim)
//	-v                report progress on stderr
//
// The kernel's neighbour tables (ARP, IPv6 neighbour discovery) are shared
// by all network namespaces, with limits for the whole machine
// (net.ipv{4,6}.neigh.default.gc_thresh{2,3}, 512 and 1024 by default)
// that a lab of more than about 30 hosts exceeds: sends then fail and
// probes time out. Above gc_thresh1 (128) the kernel also drops entries
// unused for a minute, which a real host with fewer neighbours never does:
// at 100 hosts every ping would then start with an ARP broadcast. pirbench
// raises those limits when the largest -hosts needs it, says so on stderr,
// and puts them back when it ends.
//
// When a run fails, pirbench writes each member's output (stdout lines,
// the end of stderr) to a new directory $TMPDIR/pirbench-NhostsrunR-*,
// one hI.log per host, and names it in the error; add -args "-log debug"
// to see why it failed.
//
// Each run makes a fresh lab of N hosts and starts "pir join -json -iface
// eth0 -id pir-hI" on all but the last host, one at a time: each member
// starts once the one before has seen every earlier member, which paces
// the starts to the machine. Once they all see each other, pirbench
// measures:
//
//	join, new sees all    a member started on the last host: from just before
//	                      its process starts to the last of its "joined"
//	                      lines about the others
//	join, all see new     the same start, to the last "joined" line about it
//	                      among the others
//	steady state          after -settle (2 s), over -steady: each member's
//	                      frames and bytes per second sent and received (its
//	                      switch port's counters), its CPU time (% of one
//	                      core: its threads' run times, from schedstat)
//	                      and its resident memory (VmRSS at the end)
//	goodbye               SIGINT sent to a member (it leaves gracefully) to
//	                      the last "left (goodbye)" line about it
//	crash (kill -9)       SIGKILL sent to a member to the last "left" line
//	                      about it (reason failed or expired)
//	link down             a member's cable pulled at the switch to the last
//	                      "left" line about it
//
// Before each removal pirbench waits a random time up to 2 s (one probe
// interval), so that the action falls at a random point of the members'
// probe cycles.
//
// Each time runs until the LAST member concerned printed its line, as
// pirbench read it (the same machine clock as the action's). The "event"
// median uses instead the time field of that JSON line: when pir noticed
// the change, just before printing it. The join times include starting the
// process (fork, exec, Go runtime start: a few milliseconds). For each
// size the summary gives the median, 90th and 99th percentiles (nearest
// rank) and maximum: of the runs for times, of every member of every run
// for the steady state. It also counts the reasons the observers gave for
// each removal, and the "left" lines printed during the steady state
// (which should be none).
//
// # A contender
//
// With -contender memberlist, each size's runs alternate between pir and
// memberlist, each run in a fresh lab: pir run 1, memberlist run 1, pir
// run 2, and so on, so that both meet the same machine load. A memberlist
// member is "mlshim join -json -iface eth0 -id ml-hI -seed 198.18.0.1"
// (tools/mlshim): a memberlist node with DefaultLANConfig bound to its
// eth0 address, printing pir's JSON event lines; every member but the
// first host's joins through the first host's (memberlist needs a seed
// where pir needs none). -args and -family are pir's alone. results.json
// keeps memberlist's results in its "contender" section, with the
// settings mlshim ran with; table.md and the output add a side-by-side
// table of the medians with the ratio pir / memberlist, and memberlist's
// own tables. The charts show pir only.
//
// The output (table.md, the charts) is made to be included in
// docs/performance.md; results.json keeps every sample, the summaries,
// the machine (cores, CPU, memory, kernel, Go version, commit) and the
// command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	sizes   []int
	runs    int
	steady  time.Duration
	settle  time.Duration // before the steady-state window
	family  string        // "4", "6" or "" (pir's default: both)
	args    []string      // extra pir join flags
	out     string
	json    bool
	verbose bool
	pir     string // a pir binary to use instead of building one
	from    string // a results.json to render instead of measuring
	// contender is the other system measured, alternately with pir:
	// "" (none) or contenderMemberlist.
	contender string
	mlshim    string // an mlshim binary to use instead of building one
}

// joinArgs returns the flags pirbench adds to every pir join.
func (o options) joinArgs() []string {
	var args []string
	if o.family != "" {
		args = append(args, "-"+o.family)
	}
	return append(args, o.args...)
}

// reserved are the pir join flags pirbench sets itself.
var reserved = []string{"json", "iface", "id"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("pirbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sizes, extra string
	fs.StringVar(&sizes, "hosts", "5", fmt.Sprintf("comma-separated numbers of hosts in the lab, each 4 to %d, e.g. 10,20,50,100", nslan.MaxHosts))
	fs.IntVar(&o.runs, "runs", 10, "number of runs for each number of hosts")
	fs.DurationVar(&o.steady, "steady", 10*time.Second, "steady-state window for traffic, CPU and memory (0: skip)")
	fs.DurationVar(&o.settle, "settle", defaultSettle, "wait from all members seeing each other to the steady-state window")
	fs.StringVar(&extra, "args", "", `extra flags for every "pir join", split at spaces, e.g. "-policy phi"`)
	fs.StringVar(&o.family, "family", "", `"4" (pir join -4), "6" (pir join -6) or empty for pir's default (both)`)
	fs.StringVar(&o.out, "out", "", "directory to write results.json, table.md, times.svg and steady.svg to (made if missing)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON on stdout instead of tables")
	fs.BoolVar(&o.verbose, "v", false, "report progress on stderr")
	fs.StringVar(&o.pir, "pir", "", "pir binary to run (default: build cmd/pir of the pir repository pirbench runs in, without -race)")
	fs.StringVar(&o.from, "from", "", "measure nothing: read this results.json and write its tables and, with -out, its files again")
	fs.StringVar(&o.contender, "contender", "", `"memberlist": also measure hashicorp/memberlist (DefaultLANConfig) through tools/mlshim, its runs alternated with pir's`)
	fs.StringVar(&o.mlshim, "mlshim", "", "mlshim binary for -contender memberlist (default: build ./mlshim of the tools module)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pirbench [flags]\n\nMeasure pir's join, leave and failure-detection times, and its traffic, CPU and\nmemory per host, on a LAN of network namespaces (needs Linux and root).\nSee go doc ./pirbench in tools/.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	for f := range strings.SplitSeq(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 4 || n > nslan.MaxHosts {
			errs = append(errs, fmt.Errorf("-hosts %q: want numbers of 4 to %d, comma-separated", sizes, nslan.MaxHosts))
			break
		}
		o.sizes = append(o.sizes, n)
	}
	if o.runs < 1 {
		errs = append(errs, fmt.Errorf("-runs %d: want at least 1", o.runs))
	}
	if o.steady < 0 {
		errs = append(errs, fmt.Errorf("-steady %v: want 0 (none) or more", o.steady))
	}
	if o.contender != "" && o.contender != contenderMemberlist {
		errs = append(errs, fmt.Errorf("-contender %q: want %s or nothing", o.contender, contenderMemberlist))
	}
	if o.mlshim != "" && o.contender != contenderMemberlist {
		errs = append(errs, fmt.Errorf("-mlshim: only with -contender %s", contenderMemberlist))
	}
	if o.settle < 0 {
		errs = append(errs, fmt.Errorf("-settle %v: want 0 or more", o.settle))
	}
	if o.family != "" && o.family != "4" && o.family != "6" {
		errs = append(errs, fmt.Errorf("-family %q: want 4, 6 or nothing", o.family))
	}
	o.args = strings.Fields(extra)
	for _, a := range o.args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && isReserved(name) {
			errs = append(errs, fmt.Errorf("-args %q: pirbench sets -%s itself", extra, name))
		}
	}
	return o, errors.Join(errs...)
}

func isReserved(name string) bool {
	for _, r := range reserved {
		if name == r {
			return true
		}
	}
	return false
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pirbench: %v\n", err)
		return 2
	}
	if o.from != "" {
		if err := render(o, stdout); err != nil {
			fmt.Fprintf(stderr, "pirbench: %v\n", err)
			return 1
		}
		return 0
	}
	if ok, reason := nslan.Available(); !ok {
		fmt.Fprintf(stderr, "pirbench: no network lab here: %s\n", reason)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o, args, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "pirbench: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
	progress := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "pirbench: "+format+"\n", args...)
		}
	}
	res := results{
		Command: commandLine(args),
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: machineInfo(),
		Settings: settings{
			Runs:    o.runs,
			Steady:  o.steady.String(),
			Settle:  o.settle.String(),
			Family:  familyName(o.family),
			PirArgs: o.joinArgs(),
			PirJoin: strings.Join(append([]string{"pir join -json -iface eth0 -id pir-hI"}, o.joinArgs()...), " "),
		},
	}
	var dir string // for the binaries pirbench builds
	if o.pir == "" || (o.contender != "" && o.mlshim == "") {
		var err error
		if dir, err = os.MkdirTemp("", "pirbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	pir := o.pir
	if pir == "" {
		root, err := pircli.ModuleRoot(".")
		if err != nil {
			return fmt.Errorf("%w (run pirbench inside the pir repository, or give -pir)", err)
		}
		progress("building pir")
		if pir, err = pircli.Build(ctx, root, dir, false); err != nil {
			return err
		}
		res.Machine.Commit = gitCommit(ctx, root)
	}
	systems := []system{pirSystem(o, pir)}
	if o.contender != "" {
		shim := o.mlshim
		if shim == "" {
			progress("building mlshim")
			var err error
			if shim, err = buildShim(ctx, dir); err != nil {
				return err
			}
		}
		c, err := shimConfig(ctx, shim)
		if err != nil {
			return err
		}
		res.Contender = &contenderResults{System: o.contender, Join: shimJoin, Config: c}
		systems = append(systems, memberlistSystem(shim))
	}

	changed, restore, err := raiseNeighLimits("/proc/sys", slices.Max(o.sizes))
	if err != nil {
		fmt.Fprintf(stderr, "pirbench: warning: labs of more than about 30 hosts may fail (neighbor table overflow): %v\n", err)
	}
	for _, c := range changed {
		fmt.Fprintf(stderr, "pirbench: raised %s from %d to %d until pirbench ends (the kernel's neighbour tables are shared by all namespaces)\n", sysctlName(c.path), c.old, c.want)
	}
	defer func() {
		if err := restore(); err != nil {
			fmt.Fprintf(stderr, "pirbench: putting back the neighbour table limits: %v\n", err)
		}
	}()
	res.Machine.NeighLimits = make(map[string]int)
	for _, p := range neighPaths {
		if v, err := readInt(filepath.Join("/proc/sys", p)); err == nil {
			res.Machine.NeighLimits[sysctlName(p)] = v
		}
	}

	failed := 0
	for _, n := range o.sizes {
		// One result for each system, runs alternated between them.
		srs := make([]sizeResult, len(systems))
		for k, sys := range systems {
			srs[k] = sizeResult{Hosts: n, Runs: o.runs}
			if sys.name != "pir" {
				srs[k].System = sys.name
			}
		}
	runs:
		for i := range o.runs {
			for k, sys := range systems {
				sr := &srs[k]
				what := ""
				if len(systems) > 1 {
					what = sys.name + ", "
				}
				progress("%d hosts: %srun %d of %d", n, what, i+1, o.runs)
				if others := otherLabs(); len(others) > 0 {
					fmt.Fprintf(stderr, "pirbench: warning: other network labs are running (%s): they share the CPU and distort the figures\n", strings.Join(others, ", "))
				}
				r, err := oneRun(ctx, o, sys, n, i+1, progress)
				sr.Load = append(sr.Load, loadAverage())
				sr.Samples = append(sr.Samples, r.samples...)
				sr.HostSamples = append(sr.HostSamples, r.hosts...)
				sr.SteadyLeft += r.steadyLeft
				if err != nil {
					failed++
					sr.Failed = append(sr.Failed, fmt.Sprintf("run %d: %v", i+1, err))
					fmt.Fprintf(stderr, "pirbench: %d hosts, %srun %d: %v\n", n, what, i+1, err)
				}
				if ctx.Err() != nil {
					break runs
				}
			}
		}
		for k := range srs {
			sr := &srs[k]
			sr.Times = summarize(sr.Samples)
			if len(sr.HostSamples) > 0 {
				sr.Steady = summarizeSteady(sr.HostSamples)
			}
			if !o.json {
				writeSize(stdout, *sr)
			}
		}
		res.Sizes = append(res.Sizes, srs[0])
		if res.Contender != nil {
			res.Contender.Sizes = append(res.Contender.Sizes, srs[1])
			if !o.json {
				writeComparison(stdout, res.Sizes[len(res.Sizes)-1:], res.Contender)
			}
		}
		if o.out != "" {
			if err := writeOutputs(o.out, res); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if len(res.Sizes) > 1 {
		writeOverview(stdout, res.Sizes)
		if res.Contender != nil {
			writeComparison(stdout, res.Sizes, res.Contender)
		}
	}
	if o.out != "" {
		progress("wrote %s", o.out)
	}
	if failed > 0 {
		return fmt.Errorf("%d runs failed (their errors are in the output)", failed)
	}
	return nil
}

// render writes the outputs of the results.json o.from names.
func render(o options, stdout io.Writer) error {
	b, err := os.ReadFile(o.from)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", o.from, err)
	}
	if o.json {
		_, err = stdout.Write(b)
		return err
	}
	writeMarkdown(stdout, res)
	if o.out != "" {
		return writeOutputs(o.out, res)
	}
	return nil
}

func familyName(f string) string {
	switch f {
	case "4":
		return "IPv4 (-4)"
	case "6":
		return "IPv6 (-6)"
	}
	return "both (pir's default)"
}
