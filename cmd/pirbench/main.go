// Command pirbench measures how fast pir members notice each other on a LAN
// of network namespaces (internal/lab), with pir's default settings. It
// needs Linux and root:
//
//	go run ./cmd/pirbench -hosts 5 -runs 10 [-family 4|6] [-json]
//
// Each run makes a fresh lab of -hosts hosts, starts "pir join" on all but
// the last, waits until they list each other, and then measures:
//
//	join, new sees all    a member started on the last host: from just before
//	                      its process starts to the last of its "joined"
//	                      lines about the others
//	join, all see new     the same start, to the last "joined" line about it
//	                      among the others
//	goodbye               SIGINT sent to a member (it leaves gracefully) to
//	                      the last "left (goodbye)" line about it
//	crash                 SIGKILL sent to a member to the last "left" line
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
// column uses instead the time field of that JSON line: when pir noticed
// the change, just before printing it. The join times include starting the
// process (fork, exec, Go runtime start: a few milliseconds). The summary
// gives the median, 90th percentile (nearest rank) and maximum over the
// runs, and counts the reasons the observers gave for each removal.
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
	"syscall"
	"time"

	"github.com/pirlan/pir/internal/lab"
	"github.com/pirlan/pir/internal/lab/pircli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	hosts   int
	runs    int
	family  string // "4", "6" or "" (pir's default: both)
	json    bool
	verbose bool
	pir     string // a pir binary to use instead of building one
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pirbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.hosts, "hosts", 5, "hosts in the lab (at least 4)")
	fs.IntVar(&o.runs, "runs", 10, "number of runs")
	fs.StringVar(&o.family, "family", "", `"4" (pir join -4), "6" (pir join -6) or empty for pir's default (both)`)
	fs.BoolVar(&o.json, "json", false, "print the samples and the summary as JSON")
	fs.BoolVar(&o.verbose, "v", false, "report progress on stderr")
	fs.StringVar(&o.pir, "pir", "", "pir binary to run (default: build ./cmd/pir of this module)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pirbench [flags]\n\nMeasure pir's join, leave and failure-detection times on a LAN of network\nnamespaces (needs Linux and root). See go doc ./cmd/pirbench.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "pirbench: unexpected arguments %q\n", fs.Args())
		return 2
	case o.hosts < 4 || o.hosts > lab.MaxHosts:
		fmt.Fprintf(stderr, "pirbench: -hosts %d: want 4 to %d\n", o.hosts, lab.MaxHosts)
		return 2
	case o.runs < 1:
		fmt.Fprintf(stderr, "pirbench: -runs %d: want at least 1\n", o.runs)
		return 2
	case o.family != "" && o.family != "4" && o.family != "6":
		fmt.Fprintf(stderr, "pirbench: -family %q: want 4, 6 or nothing\n", o.family)
		return 2
	}
	if ok, reason := lab.Available(); !ok {
		fmt.Fprintf(stderr, "pirbench: no network lab here: %s\n", reason)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "pirbench: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	progress := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "pirbench: "+format+"\n", args...)
		}
	}
	pir := o.pir
	if pir == "" {
		dir, err := os.MkdirTemp("", "pirbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		root, err := pircli.ModuleRoot(".")
		if err != nil {
			return fmt.Errorf("%w (run pirbench from the pir module, or give -pir)", err)
		}
		progress("building pir")
		if pir, err = pircli.Build(ctx, root, dir, false); err != nil {
			return err
		}
	}

	var samples []sample
	for i := range o.runs {
		progress("run %d of %d", i+1, o.runs)
		s, err := oneRun(ctx, o, pir, i+1, progress)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		samples = append(samples, s...)
	}
	sum := summarize(samples)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Hosts   int       `json:"hosts"`
			Runs    int       `json:"runs"`
			Family  string    `json:"family"`
			Summary []summary `json:"summary"`
			Samples []sample  `json:"samples"`
		}{o.hosts, o.runs, familyName(o.family), sum, samples})
	}
	printTable(stdout, o, sum)
	return nil
}

func familyName(f string) string {
	switch f {
	case "4":
		return "IPv4 (-4)"
	case "6":
		return "IPv6 (-6)"
	}
	return "both (default flags)"
}

// waitTimeout bounds each wait of a run: far beyond what pir needs.
const waitTimeout = 60 * time.Second
