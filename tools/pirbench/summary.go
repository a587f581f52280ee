package main

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The time measurements, in the order they are made and printed.
const (
	mNewSeesAll = "join, new sees all"
	mAllSeeNew  = "join, all see new"
	mGoodbye    = "goodbye"
	mCrash      = "crash (kill -9)"
	mLinkDown   = "link down"
)

var measurements = []struct{ name, what string }{
	{mNewSeesAll, "process start → its last `joined`"},
	{mAllSeeNew, "process start → last `joined` about it"},
	{mGoodbye, "SIGINT → last `left (goodbye)`"},
	{mCrash, "SIGKILL → last `left`"},
	{mLinkDown, "cable pulled → last `left`"},
}

// sample is one time measurement of one run.
type sample struct {
	Hosts int    `json:"hosts"`
	Run   int    `json:"run"`
	Name  string `json:"name"`
	// Read is the time from the action to the last line read.
	Read time.Duration `json:"read_ns"`
	// Event is the time from the action to the time field of that line.
	Event time.Duration `json:"event_ns"`
	// Reasons counts the reasons of the left lines.
	Reasons map[string]int `json:"reasons,omitempty"`
}

// hostSample is one member's figures over the steady-state window of one
// run.
type hostSample struct {
	Hosts int    `json:"hosts"`
	Run   int    `json:"run"`
	Host  string `json:"host"`
	// Frames and bytes per second its eth0 sent and received.
	TxPackets float64 `json:"tx_packets_per_s"`
	RxPackets float64 `json:"rx_packets_per_s"`
	TxBytes   float64 `json:"tx_bytes_per_s"`
	RxBytes   float64 `json:"rx_bytes_per_s"`
	// CPU is the pir process's processor time over the window, in per
	// cent of one core.
	CPU float64 `json:"cpu_percent"`
	// RSS is its resident memory at the end of the window.
	RSS uint64 `json:"rss_bytes"`
}

// The steady-state measurements, in the order they are printed.
const (
	sTxPackets = "packets/s sent"
	sRxPackets = "packets/s received"
	sTxBytes   = "bytes/s sent"
	sRxBytes   = "bytes/s received"
	sCPU       = "CPU"
	sRSS       = "RSS"
)

var steadyMeasures = []struct {
	name, what string
	get        func(hostSample) float64
	format     func(float64) string
}{
	{sTxPackets, "frames its eth0 sent, per second", func(h hostSample) float64 { return h.TxPackets }, perSecond},
	{sRxPackets, "frames its eth0 received, per second", func(h hostSample) float64 { return h.RxPackets }, perSecond},
	{sTxBytes, "bytes of those frames, per second", func(h hostSample) float64 { return h.TxBytes }, bytesPerSecond},
	{sRxBytes, "bytes of those frames, per second", func(h hostSample) float64 { return h.RxBytes }, bytesPerSecond},
	{sCPU, "the pir process's CPU time, % of one core", func(h hostSample) float64 { return h.CPU }, percent},
	{sRSS, "the pir process's resident memory", func(h hostSample) float64 { return float64(h.RSS) / (1 << 20) }, mebibytes},
}

// summary is the statistics of one time measurement over the runs of one
// size.
type summary struct {
	Name        string         `json:"name"`
	What        string         `json:"what"`
	N           int            `json:"n"`
	Median      time.Duration  `json:"median_ns"`
	P90         time.Duration  `json:"p90_ns"`
	P99         time.Duration  `json:"p99_ns"`
	Max         time.Duration  `json:"max_ns"`
	EventMedian time.Duration  `json:"event_median_ns"`
	Reasons     map[string]int `json:"reasons,omitempty"`
}

// steadySummary is the statistics of one steady-state measurement over
// every member of every run of one size.
type steadySummary struct {
	Name   string  `json:"name"`
	What   string  `json:"what"`
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

func summarize(samples []sample) []summary {
	var out []summary
	for _, m := range measurements {
		s := summary{Name: m.name, What: m.what}
		var read, event []time.Duration
		for _, x := range samples {
			if x.Name != m.name {
				continue
			}
			read, event = append(read, x.Read), append(event, x.Event)
			for r, n := range x.Reasons {
				if s.Reasons == nil {
					s.Reasons = make(map[string]int)
				}
				s.Reasons[r] += n
			}
		}
		s.N = len(read)
		s.Median, s.P90, s.P99, s.Max = quantile(read, 0.5), quantile(read, 0.9), quantile(read, 0.99), quantile(read, 1)
		s.EventMedian = quantile(event, 0.5)
		out = append(out, s)
	}
	return out
}

func summarizeSteady(hosts []hostSample) []steadySummary {
	var out []steadySummary
	for _, m := range steadyMeasures {
		v := make([]float64, len(hosts))
		for i, h := range hosts {
			v[i] = m.get(h)
		}
		out = append(out, steadySummary{
			Name: m.name, What: m.what, N: len(v),
			Median: quantile(v, 0.5), P90: quantile(v, 0.9), P99: quantile(v, 0.99), Max: quantile(v, 1),
		})
	}
	return out
}

// quantile returns the q-quantile of d by the nearest-rank method: the
// smallest value with at least q of the values at or below it. It leaves d
// alone.
func quantile[T cmp.Ordered](d []T, q float64) T {
	if len(d) == 0 {
		var zero T
		return zero
	}
	d = slices.Sorted(slices.Values(d))
	// The epsilon keeps a product such as 0.07 × 100 = 7.000000000000001
	// at rank 7.
	rank := int(math.Ceil(q*float64(len(d)) - 1e-9))
	return d[min(max(rank, 1), len(d))-1]
}
