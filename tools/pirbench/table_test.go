package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture returns the results of two sizes, with every figure known.
func fixture() results {
	res := results{
		Command: `pirbench -hosts 10,20 -runs 3 -args "-policy phi"`,
		Date:    "2026-01-02T03:04:05Z",
		Machine: machine{Cores: 2, CPU: "Test CPU", MemoryMiB: 4096, Kernel: "6.1.0", OS: "linux/amd64", Go: "go1.26.0", Commit: "abc1234+dirty"},
		Settings: settings{Runs: 3, Steady: "10s", Family: familyName(""), PirArgs: []string{"-policy", "phi"},
			PirJoin: "pir join -json -iface eth0 -id pir-hI -policy phi"},
	}
	for k, n := range []int{20, 10} { // out of order: writers sort
		sr := sizeResult{Hosts: n, Runs: 3, SteadyLeft: k, Load: []float64{1.5, 2.3, float64(k)}}
		for run := 1; run <= 3; run++ {
			for i, m := range measurements {
				d := time.Duration(n*(i+1)*run) * time.Millisecond
				sr.Samples = append(sr.Samples, sample{Hosts: n, Run: run, Name: m.name, Read: d, Event: d - time.Millisecond})
			}
			for h := range n {
				sr.HostSamples = append(sr.HostSamples, hostSample{
					Hosts: n, Run: run, Host: fmt.Sprintf("h%d", h),
					TxPackets: float64(5 * n), RxPackets: float64(6 * n),
					TxBytes: float64(400 * n), RxBytes: float64(500 * n),
					CPU: float64(n) / 20, RSS: uint64(10+h%2) << 20,
				})
			}
		}
		sr.Times = summarize(sr.Samples)
		sr.Steady = summarizeSteady(sr.HostSamples)
		res.Sizes = append(res.Sizes, sr)
	}
	return res
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	writeMarkdown(&b, fixture())
	md := b.String()
	t.Log(md)
	for _, want := range []string{
		"`pirbench -hosts 10,20 -runs 3 -args \"-policy phi\"`",
		"`pir join -policy phi`",
		"2 cores (Test CPU), 4.0 GiB, Linux 6.1.0, go1.26.0, pir at abc1234+dirty; 2026-01-02.",
		"| measure | 10 hosts | 20 hosts |",
		// 10 hosts, crash (the 4th measure): runs of 40, 80, 120 ms.
		"| crash (kill -9) | 80.0 ms / 120.0 ms | 160.0 ms / 240.0 ms |",
		"| link down | 100.0 ms | 150.0 ms | 150.0 ms | 150.0 ms | 3 | 99.0 ms |  |",
		"| packets/s sent per host | 50.0 / 50.0 | 100.0 / 100.0 |",
		"| bytes/s received per host | 5.0 kB/s / 5.0 kB/s | 10.0 kB/s / 10.0 kB/s |",
		"| CPU per host | 0.50 % | 0.50 % | 0.50 % | 0.50 % | 30 | | |",
		"| RSS per host | 10.0 MiB | 11.0 MiB | 11.0 MiB | 11.0 MiB | 30 | | |",
		"**10 hosts**, 3 runs, load average after each: 1.5, 2.3, 1.0:",
		"all members together: 1 (",
		"| join, all see new | process start → last `joined` about it |",
	} {
		assert.Contains(t, md, want)
	}
	// Sizes in order, overview first; no headings.
	assert.Less(t, strings.Index(md, "| measure | 10 hosts"), strings.Index(md, "**10 hosts**"))
	assert.Less(t, strings.Index(md, "**10 hosts**"), strings.Index(md, "**20 hosts**"))
	assert.NotContains(t, md, "\n#")
	// Every table row has the columns of its header.
	for _, table := range strings.Split(md, "\n\n") {
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if !strings.HasPrefix(lines[0], "|") {
			continue
		}
		cols := strings.Count(lines[0], "|")
		for _, l := range lines {
			assert.Equal(t, cols, strings.Count(strings.ReplaceAll(l, "\\|", ""), "|"), "%q", l)
		}
	}
}

func TestWriteSizeFailed(t *testing.T) {
	sr := sizeResult{Hosts: 50, Runs: 1, Failed: []string{"run 1: crash: timeout"}}
	sr.Times = summarize([]sample{{Hosts: 50, Run: 1, Name: mNewSeesAll, Read: 2 * time.Second}})
	var b bytes.Buffer
	writeSize(&b, sr)
	s := b.String()
	assert.Contains(t, s, "**50 hosts**, 1 runs (1 failed: run 1: crash: timeout):")
	assert.Contains(t, s, "| join, new sees all | 2.00 s |")
	assert.Contains(t, s, "| crash (kill -9) | – | – | – | – | 0 | – | |")
	assert.NotContains(t, s, "per host", "no steady state measured")
	require.NotContains(t, s, "NaN")
}

func TestFormats(t *testing.T) {
	assert.Equal(t, "999.9 ms", ms(999900*time.Microsecond))
	assert.Equal(t, "1.50 s", ms(1500*time.Millisecond))
	assert.Equal(t, "999 B/s", bytesPerSecond(999))
	assert.Equal(t, "1.5 kB/s", bytesPerSecond(1500))
	assert.Equal(t, "2.50 MB/s", bytesPerSecond(2.5e6))
	assert.Equal(t, "failed 3, goodbye 1", reasons(map[string]int{"goodbye": 1, "failed": 3}))
}
