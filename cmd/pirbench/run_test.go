package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 10; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	assert.Equal(t, time.Duration(5), quantile(d, 0.5))
	assert.Equal(t, time.Duration(9), quantile(d, 0.9))
	assert.Equal(t, time.Duration(10), quantile(d, 1))
	assert.Equal(t, time.Duration(1), quantile(d, 0))
	assert.Equal(t, time.Duration(10), d[0], "quantile leaves its input alone")
	assert.Equal(t, time.Duration(0), quantile(nil, 0.5))
	assert.Equal(t, time.Duration(7), quantile([]time.Duration{7}, 0.9))
}

func TestSummarize(t *testing.T) {
	s := summarize([]sample{
		{Run: 1, Name: mCrash, Read: 3, Event: 2, Reasons: map[string]int{"failed": 3}},
		{Run: 2, Name: mCrash, Read: 5, Event: 4, Reasons: map[string]int{"failed": 2, "expired": 1}},
		{Run: 1, Name: mGoodbye, Read: 1, Event: 1},
	})
	assert.Len(t, s, len(measurements))
	for _, x := range s {
		switch x.Name {
		case mCrash:
			assert.Equal(t, 2, x.N)
			assert.Equal(t, time.Duration(3), x.Median)
			assert.Equal(t, time.Duration(5), x.Max)
			assert.Equal(t, time.Duration(2), x.EventMedian)
			assert.Equal(t, map[string]int{"failed": 5, "expired": 1}, x.Reasons)
		case mGoodbye:
			assert.Equal(t, 1, x.N)
		default:
			assert.Zero(t, x.N, x.Name)
		}
	}
}
