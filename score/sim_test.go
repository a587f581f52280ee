package score_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pirlan/pir/score"
)

// This file simulates one peer as a discovery.Group sees it, so that the
// policies can be judged on detection time and false deaths without a
// network or a clock: the peer announces every Interval ± Jitter, each
// announcement lost with probability Loss; the Group probes it every
// ProbeEvery (the next probe ProbeEvery after the previous one started, or
// at once when a probe outlasted that), each probe of a live peer failing
// with probability ProbeFail after ProbeTimeout. The Group calls Assess
// before each probe and after each result, and removes a peer judged Dead;
// a live peer removed is tracked afresh at its next announcement heard.
//
// At Dies the peer stops announcing. A killed peer refuses every probe at
// once (its port is closed); a vanished one (cable pulled, machine off, or
// a hung process) lets every probe time out.

type peerModel struct {
	Interval     time.Duration
	Jitter       float64 // a fraction of Interval
	Loss         float64 // of announcements
	ProbeEvery   time.Duration
	ProbeTimeout time.Duration
	RTT          time.Duration
	ProbeFail    float64 // of a live peer's probes

	Dies   time.Duration // after the start; zero means never
	Killed bool          // refuses probes at once, rather than letting them time out
}

// pirDefaults is a peer under pir's default timings.
func pirDefaults(loss, probeFail float64) peerModel {
	return peerModel{
		Interval:     time.Second,
		Jitter:       0.1,
		Loss:         loss,
		ProbeEvery:   2 * time.Second,
		ProbeTimeout: 2 * time.Second,
		RTT:          time.Millisecond,
		ProbeFail:    probeFail,
	}
}

type simResult struct {
	falseDead int           // Dead verdicts while the peer lived
	detected  time.Duration // from Dies to the Dead verdict; -1 if never
}

var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simulate runs m under p for length of simulated time, or until the peer
// is found dead after Dies.
func simulate(p score.HealthPolicy, m peerModel, rng *rand.Rand, length time.Duration) simResult {
	const never = time.Duration(math.MaxInt64)
	res := simResult{detected: -1}
	dies := never
	if m.Dies > 0 {
		dies = m.Dies
	}
	var (
		tr          score.Tracker
		nextHB      = time.Duration(0) // times are offsets from simStart
		probeAt     = never            // next probe start
		resultAt    = never            // result of the probe in flight
		probeStart  time.Duration
		probeFailed bool
	)
	at := func(d time.Duration) time.Time { return simStart.Add(d) }
	// judge asks the tracker and acts on a Dead verdict; it reports whether
	// the simulation is over.
	judge := func(now time.Duration) bool {
		if tr.Assess(at(now)).Verdict != score.Dead {
			return false
		}
		if now >= dies {
			res.detected = now - dies
			return true
		}
		res.falseDead++
		tr, probeAt, resultAt = nil, never, never
		return false
	}
	for {
		now := min(nextHB, probeAt, resultAt)
		if now > length {
			return res
		}
		switch now {
		case resultAt:
			resultAt = never
			ev := score.ProbeOK
			if probeFailed {
				ev = score.ProbeFailed
			}
			tr.Observe(score.Observation{Event: ev, At: at(now)})
			if judge(now) {
				return res
			}
			if tr != nil {
				probeAt = max(probeStart+m.ProbeEvery, now)
			}
		case probeAt:
			probeAt = never
			if judge(now) {
				return res
			}
			if tr == nil {
				continue
			}
			probeStart = now
			switch {
			case now >= dies && m.Killed:
				probeFailed, resultAt = true, now
			case now >= dies, rng.Float64() < m.ProbeFail:
				probeFailed, resultAt = true, now+m.ProbeTimeout
			default:
				probeFailed, resultAt = false, now+m.RTT
			}
		case nextHB:
			if now >= dies {
				nextHB = never
				continue
			}
			nextHB = now + time.Duration(float64(m.Interval)*(1+m.Jitter*(2*rng.Float64()-1)))
			if rng.Float64() < m.Loss {
				continue
			}
			if tr == nil {
				tr = p.Track(at(now))
				tr.Observe(score.Observation{Event: score.Heartbeat, At: at(now)})
				if judge(now) {
					return res
				}
				probeAt = now
				continue
			}
			tr.Observe(score.Observation{Event: score.Heartbeat, At: at(now)})
		}
	}
}

// detection runs trials of a peer that dies after a random warm-up of 2 to
// 5 minutes (past WindowSize) and returns the detection times, sorted, and
// how many trials were never detected within a minute.
func detection(p score.HealthPolicy, m peerModel, rng *rand.Rand, trials int) (times []time.Duration, missed int) {
	for range trials {
		m.Dies = 2*time.Minute + time.Duration(rng.Int64N(int64(3*time.Minute)))
		r := simulate(p, m, rng, m.Dies+time.Minute)
		if r.detected < 0 {
			missed++
			continue
		}
		times = append(times, r.detected)
	}
	slices.Sort(times)
	return times, missed
}

// quantile of sorted times, q in [0, 1].
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}
