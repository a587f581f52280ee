package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 10; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	assert.Equal(t, time.Duration(5), quantile(d, 0.5))
	assert.Equal(t, time.Duration(9), quantile(d, 0.9))
	assert.Equal(t, time.Duration(10), quantile(d, 0.99))
	assert.Equal(t, time.Duration(10), quantile(d, 1))
	assert.Equal(t, time.Duration(1), quantile(d, 0))
	assert.Equal(t, time.Duration(10), d[0], "quantile leaves its input alone")
	assert.Equal(t, time.Duration(0), quantile[time.Duration](nil, 0.5))
	assert.Equal(t, time.Duration(7), quantile([]time.Duration{7}, 0.9))

	// Nearest rank over 100 values: p99 is the 99th, p7 the 7th (0.07 ×
	// 100 is a hair above 7 in floating point).
	var f []float64
	for i := 100; i >= 1; i-- {
		f = append(f, float64(i))
	}
	assert.Equal(t, 99.0, quantile(f, 0.99))
	assert.Equal(t, 7.0, quantile(f, 0.07))
	assert.Equal(t, 50.0, quantile(f, 0.5))
	assert.Equal(t, 100.0, quantile(f, 1))
}

func TestSummarize(t *testing.T) {
	s := summarize([]sample{
		{Run: 1, Name: mCrash, Read: 3, Event: 2, Reasons: map[string]int{"failed": 3}},
		{Run: 2, Name: mCrash, Read: 5, Event: 4, Reasons: map[string]int{"failed": 2, "expired": 1}},
		{Run: 3, Name: mCrash, Read: 4, Event: 3, Reasons: map[string]int{"failed": 3}},
		{Run: 1, Name: mGoodbye, Read: 1, Event: 1},
	})
	require.Len(t, s, len(measurements))
	for i, x := range s {
		assert.Equal(t, measurements[i].name, x.Name, "in the order of measurements")
		switch x.Name {
		case mCrash:
			assert.Equal(t, 3, x.N)
			assert.Equal(t, time.Duration(4), x.Median)
			assert.Equal(t, time.Duration(5), x.P90)
			assert.Equal(t, time.Duration(5), x.P99)
			assert.Equal(t, time.Duration(5), x.Max)
			assert.Equal(t, time.Duration(3), x.EventMedian)
			assert.Equal(t, map[string]int{"failed": 8, "expired": 1}, x.Reasons)
		case mGoodbye:
			assert.Equal(t, 1, x.N)
			assert.Nil(t, x.Reasons)
		default:
			assert.Zero(t, x.N, x.Name)
		}
	}
}

func TestSummarizeSteady(t *testing.T) {
	var hosts []hostSample
	for i := 1; i <= 10; i++ {
		hosts = append(hosts, hostSample{
			TxPackets: float64(i), RxPackets: float64(10 * i),
			TxBytes: float64(100 * i), RxBytes: float64(1000 * i),
			CPU: float64(i) / 10, RSS: uint64(i) << 20,
		})
	}
	s := summarizeSteady(hosts)
	require.Len(t, s, len(steadyMeasures))
	want := map[string][2]float64{ // median, max
		sTxPackets: {5, 10}, sRxPackets: {50, 100}, sTxBytes: {500, 1000},
		sRxBytes: {5000, 10000}, sCPU: {0.5, 1}, sRSS: {5, 10},
	}
	for i, x := range s {
		assert.Equal(t, steadyMeasures[i].name, x.Name)
		assert.Equal(t, 10, x.N)
		assert.InDelta(t, want[x.Name][0], x.Median, 1e-9, x.Name)
		assert.InDelta(t, want[x.Name][1], x.Max, 1e-9, x.Name)
		assert.LessOrEqual(t, x.Median, x.P90)
		assert.LessOrEqual(t, x.P90, x.P99)
		assert.LessOrEqual(t, x.P99, x.Max)
	}
	assert.Empty(t, summarizeSteady(nil)[0].N)
}
