package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags(nil, &stderr)
	require.NoError(t, err)
	assert.Equal(t, []int{5}, o.sizes)
	assert.Equal(t, 10, o.runs)
	assert.Equal(t, 10*time.Second, o.steady)
	assert.Equal(t, 2*time.Second, o.settle)
	assert.Empty(t, o.joinArgs(), "pir's defaults")

	o, err = parseFlags([]string{"-hosts", "10, 20,50,100", "-runs", "3", "-steady", "0", "-settle", "1m", "-family", "6", "-args", " -policy  phi -log=off "}, &stderr)
	require.NoError(t, err)
	assert.Equal(t, []int{10, 20, 50, 100}, o.sizes)
	assert.Equal(t, 3, o.runs)
	assert.Zero(t, o.steady)
	assert.Equal(t, time.Minute, o.settle)
	assert.Equal(t, []string{"-policy", "phi", "-log=off"}, o.args)
	assert.Equal(t, []string{"-6", "-policy", "phi", "-log=off"}, o.joinArgs())

	for _, bad := range [][]string{
		{"-hosts", "3"},
		{"-hosts", "10,x"},
		{"-hosts", "10,,20"},
		{"-hosts", "1001"},
		{"-runs", "0"},
		{"-steady", "-1s"},
		{"-settle", "-1s"},
		{"-family", "5"},
		{"-args", "-iface lo"},
		{"-args", "--json"},
		{"-args", "-id=x"},
		{"extra"},
	} {
		_, err := parseFlags(bad, &stderr)
		assert.Error(t, err, "%q", bad)
	}
	_, err = parseFlags([]string{"-h"}, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, stderr.String(), "-hosts")

	// Several problems are reported at once.
	_, err = parseFlags([]string{"-runs", "0", "-family", "5"}, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-runs")
	assert.Contains(t, err.Error(), "-family")
}

func TestRunRejectsBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"-hosts", "2"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-hosts")
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
}

func TestCommandLine(t *testing.T) {
	assert.Equal(t, `pirbench -hosts 5,10 -args "-policy phi" -out docs/bench ""`,
		commandLine([]string{"-hosts", "5,10", "-args", "-policy phi", "-out", "docs/bench", ""}))
}

// TestFrom renders a results.json again, as -from does.
func TestFrom(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(fixture())
	require.NoError(t, err)
	from := filepath.Join(dir, "in.json")
	require.NoError(t, os.WriteFile(from, b, 0o644))

	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-from", from, "-out", out}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "**20 hosts**")
	for _, name := range []string{"results.json", "table.md", "times.svg", "steady.svg"} {
		assert.FileExists(t, filepath.Join(out, name))
	}
	md, err := os.ReadFile(filepath.Join(out, "table.md"))
	require.NoError(t, err)
	assert.Equal(t, stdout.String(), string(md))
	var back results
	b, err = os.ReadFile(filepath.Join(out, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, fixture(), back, "results.json round-trips")

	assert.Equal(t, 1, run([]string{"-from", filepath.Join(dir, "missing.json")}, &stdout, &stderr))
}
