package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixtureContender returns fixture() with a memberlist contender measured
// at 10 hosts only: every time twice pir's, every steady figure half of
// pir's, but RSS (14 MiB).
func fixtureContender() results {
	res := fixture()
	c := &contenderResults{
		System: contenderMemberlist,
		Join:   shimJoin,
		Config: map[string]string{"memberlist": "github.com/hashicorp/memberlist v0.7.0", "config": "DefaultLANConfig", "ProbeInterval": "1s", "GossipNodes": "3"},
	}
	for _, s := range res.Sizes {
		if s.Hosts != 10 {
			continue
		}
		o := sizeResult{System: contenderMemberlist, Hosts: s.Hosts, Runs: s.Runs, Load: []float64{1, 2, 3}}
		for _, x := range s.Samples {
			x.Read, x.Event = 2*x.Read, 2*x.Event
			o.Samples = append(o.Samples, x)
		}
		for _, h := range s.HostSamples {
			h.TxPackets, h.RxPackets, h.TxBytes, h.RxBytes, h.CPU = h.TxPackets/2, h.RxPackets/2, h.TxBytes/2, h.RxBytes/2, h.CPU/2
			h.RSS = 14 << 20
			o.HostSamples = append(o.HostSamples, h)
		}
		o.Times = summarize(o.Samples)
		o.Steady = summarizeSteady(o.HostSamples)
		c.Sizes = append(c.Sizes, o)
	}
	res.Contender = c
	res.Command += " -contender memberlist -settle 1m0s"
	res.Settings.Settle = "1m0s"
	return res
}

func TestParseFlagsContender(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"-contender", "memberlist", "-mlshim", "/tmp/mlshim"}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, contenderMemberlist, o.contender)
	assert.Equal(t, "/tmp/mlshim", o.mlshim)

	o, err = parseFlags(nil, &stderr)
	require.NoError(t, err)
	assert.Empty(t, o.contender, "no contender by default")

	for _, bad := range [][]string{
		{"-contender", "serf"},
		{"-mlshim", "/tmp/mlshim"},
	} {
		_, err := parseFlags(bad, &stderr)
		assert.Error(t, err, "%q", bad)
	}
}

func TestCompareRows(t *testing.T) {
	res := fixtureContender()
	var pir10 sizeResult
	for _, s := range res.Sizes {
		if s.Hosts == 10 {
			pir10 = s
		}
	}
	ml10 := res.Contender.Sizes[0]
	want := map[string][2]float64{ // pir, memberlist
		mCrash:                               {float64(80 * time.Millisecond), float64(160 * time.Millisecond)},
		"packets/s sent per host":            {50, 25},
		"packets/s sent + received per host": {110, 55},
		"bytes/s sent + received per host":   {9000, 4500},
		"RSS per host":                       {10, 14}, // hosts of 10 and 11 MiB: the 15th of 30 is 10
		"CPU per host":                       {0.5, 0.25},
		"bytes/s received per host":          {5000, 2500},
		"packets/s received per host":        {60, 30},
		mLinkDown:                            {float64(100 * time.Millisecond), float64(200 * time.Millisecond)},
		"join, new sees all":                 {float64(20 * time.Millisecond), float64(40 * time.Millisecond)},
	}
	rows := compareRows()
	assert.Len(t, rows, len(measurements)+len(steadyMeasures)+2)
	names := make(map[string]bool)
	for _, r := range rows {
		names[r.name] = true
		a, aok := r.value(pir10)
		b, bok := r.value(ml10)
		require.True(t, aok && bok, r.name)
		if w, ok := want[r.name]; ok {
			assert.InDelta(t, w[0], a, 1e-9, r.name)
			assert.InDelta(t, w[1], b, 1e-9, r.name)
		}
		_, ok := r.value(sizeResult{Hosts: 10})
		assert.False(t, ok, "%s: nothing measured", r.name)
	}
	for name := range want {
		assert.True(t, names[name], name)
	}
}

func TestWriteComparison(t *testing.T) {
	res := fixtureContender()
	var b bytes.Buffer
	writeComparison(&b, res.Sizes, res.Contender)
	md := b.String()
	t.Log(md)
	for _, want := range []string{
		"**pir against memberlist**: medians of 3 runs each, alternated;",
		"| median | pir 10 hosts | memberlist 10 hosts | ratio |\n|---|---:|---:|---:|\n",
		"| crash (kill -9) | 80.0 ms | 160.0 ms | 0.50× |",
		"| packets/s sent + received per host | 110.0 | 55.0 | 2.00× |",
		"| bytes/s sent + received per host | 9.0 kB/s | 4.5 kB/s | 2.00× |",
		"| RSS per host | 10.0 MiB | 14.0 MiB | 0.71× |",
	} {
		assert.Contains(t, md, want)
	}
	assert.NotContains(t, md, "20 hosts", "the contender measured 10 hosts only")

	// A measure the contender lacks, and a contender figure of 0, give
	// no ratio.
	c := *res.Contender
	c.Sizes = []sizeResult{c.Sizes[0]}
	c.Sizes[0].Times = summarize(nil)
	c.Sizes[0].HostSamples = nil
	for i := range c.Sizes[0].Steady {
		c.Sizes[0].Steady[i].Median = 0
	}
	b.Reset()
	writeComparison(&b, res.Sizes, &c)
	assert.Contains(t, b.String(), "| crash (kill -9) | 80.0 ms | – | – |")
	assert.Contains(t, b.String(), "| CPU per host | 0.50 % | 0.00 % | – |")
	assert.Contains(t, b.String(), "| packets/s sent + received per host | 110.0 | – | – |")

	b.Reset()
	writeComparison(&b, res.Sizes, &contenderResults{System: contenderMemberlist})
	assert.Empty(t, b.String(), "nothing to compare")
}

func TestRatioText(t *testing.T) {
	assert.Equal(t, "0.05×", ratioText(0.0512))
	assert.Equal(t, "2.00×", ratioText(2))
	assert.Equal(t, "21.3×", ratioText(21.26))
	assert.Equal(t, "430×", ratioText(430.2))
}

func TestWriteMarkdownContender(t *testing.T) {
	var b bytes.Buffer
	writeMarkdown(&b, fixtureContender())
	md := b.String()
	for _, want := range []string{
		"Contender: memberlist, each member `mlshim join -json -iface eth0 -id ml-hI -seed 198.18.0.1` (tools/mlshim; the first host's without -seed): github.com/hashicorp/memberlist v0.7.0, DefaultLANConfig; GossipNodes 3, ProbeInterval 1s.",
		"**10 hosts, memberlist**, 3 runs, load average after each: 1.0, 2.0, 3.0:",
		"steady-state window 10s from 1m0s after the last join.",
		"| crash (kill -9) | 160.0 ms |",
	} {
		assert.Contains(t, md, want)
	}
	// The comparison first, then pir's tables, then memberlist's.
	assert.Less(t, strings.Index(md, "**pir against memberlist**"), strings.Index(md, "**Median / p99"))
	assert.Less(t, strings.Index(md, "**20 hosts**"), strings.Index(md, "**10 hosts, memberlist**"))
	// Every table row has the columns of its header.
	for _, table := range strings.Split(md, "\n\n") {
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if !strings.HasPrefix(lines[0], "|") {
			continue
		}
		for _, l := range lines {
			assert.Equal(t, strings.Count(lines[0], "|"), strings.Count(l, "|"), "%q", l)
		}
	}
	// Without a contender, nothing of it.
	b.Reset()
	writeMarkdown(&b, fixture())
	assert.NotContains(t, b.String(), "memberlist")
	assert.NotContains(t, b.String(), "Contender")
	assert.Contains(t, b.String(), "steady-state window 10s.", "results from before -settle")
}

// TestFromContender: a results.json with a contender round-trips through
// -from, and one from before contenders (docs/bench's) still loads.
func TestFromContender(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(fixtureContender())
	require.NoError(t, err)
	from := filepath.Join(dir, "in.json")
	require.NoError(t, os.WriteFile(from, b, 0o644))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-from", from, "-out", out}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "**pir against memberlist**")
	var back results
	b, err = os.ReadFile(filepath.Join(out, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, fixtureContender(), back)
	assert.Contains(t, string(b), `"system": "memberlist"`)
	assert.NotContains(t, string(b[:bytes.Index(b, []byte(`"contender"`))]), `"system"`, "pir's sizes have no system field")

	old := filepath.Join("..", "..", "docs", "bench", "results.json")
	if _, err := os.Stat(old); err != nil {
		t.Skipf("no %s: %v", old, err)
	}
	stdout.Reset()
	require.Equal(t, 0, run([]string{"-from", old}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "**10 hosts**")
	assert.NotContains(t, stdout.String(), "memberlist")
}
