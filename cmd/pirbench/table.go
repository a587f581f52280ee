package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// printTable prints the summary as a markdown table.
func printTable(w io.Writer, o options, sum []summary) {
	fmt.Fprintf(w, "pirbench: %d hosts, %d runs, family %s, pir's default settings\n\n", o.hosts, o.runs, familyName(o.family))
	fmt.Fprintln(w, "| measurement | from → to | median | p90 | max | median (event) | left reasons |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|")
	for _, s := range sum {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n",
			s.Name, s.What, ms(s.Median), ms(s.P90), ms(s.Max), ms(s.EventMedian), reasons(s.Reasons))
	}
	fmt.Fprintln(w, "\nTimes run from the action to the last member concerned printing its line, as")
	fmt.Fprintln(w, "pirbench read it; \"event\" uses that line's time field (when pir noticed) instead.")
	fmt.Fprintln(w, "Join times include starting the pir process. Left reasons count the observers' lines.")
}

func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func reasons(r map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r[k]))
	}
	return strings.Join(parts, ", ")
}
