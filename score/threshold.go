package score

import "time"

// ThresholdConfig sets the numbers of the Threshold policy. The defaults are
// the original pir's.
type ThresholdConfig struct {
	// Start is the failure count a new peer starts with. Zero means 0.
	Start int
	// Penalty is added to the count for each failed or timed-out probe.
	// Zero means 1.
	Penalty int
	// Reward is taken from the count for each successful probe; the count
	// never drops below 0. Zero means 1.
	Reward int
	// Limit is the count at which a peer is dead. Zero means 3.
	Limit int
}

// DefaultThresholdConfig returns the original pir's numbers: start at 0,
// +1 per failure, -1 per success floored at 0, remove at 3.
func DefaultThresholdConfig() ThresholdConfig {
	return ThresholdConfig{Start: 0, Penalty: 1, Reward: 1, Limit: 3}
}

// Threshold counts probe failures: each failure adds Penalty, each success
// takes away Reward, and a peer whose count reaches Limit is dead.
// Announcements do not count. Health is 1 - count/Limit.
//
// It suits small groups on quiet LANs and peers that must stay byte- and
// behaviour-compatible with the original pir. Its detection time is about
// Limit probe intervals.
type Threshold struct {
	cfg ThresholdConfig
}

var _ HealthPolicy = (*Threshold)(nil)

// NewThreshold returns a Threshold policy; zero fields of cfg take their
// defaults.
func NewThreshold(cfg ThresholdConfig) *Threshold {
	d := DefaultThresholdConfig()
	if cfg.Penalty <= 0 {
		cfg.Penalty = d.Penalty
	}
	if cfg.Reward <= 0 {
		cfg.Reward = d.Reward
	}
	if cfg.Limit <= 0 {
		cfg.Limit = d.Limit
	}
	if cfg.Start < 0 {
		cfg.Start = 0
	}
	return &Threshold{cfg: cfg}
}

// Config returns the policy's numbers, defaults filled in.
func (p *Threshold) Config() ThresholdConfig { return p.cfg }

// Track starts counting for one peer.
func (p *Threshold) Track(time.Time) Tracker {
	return &thresholdTracker{cfg: &p.cfg, count: p.cfg.Start}
}

type thresholdTracker struct {
	cfg   *ThresholdConfig
	count int
}

func (t *thresholdTracker) Observe(o Observation) {
	switch o.Event {
	case ProbeOK:
		t.count = max(0, t.count-t.cfg.Reward)
	case ProbeFailed:
		// Past the limit the peer is dead anyway; stop counting so the
		// number cannot overflow.
		t.count = min(t.count+t.cfg.Penalty, t.cfg.Limit)
	}
}

func (t *thresholdTracker) Assess(time.Time) Assessment {
	a := Assessment{Health: 1 - float64(t.count)/float64(t.cfg.Limit)}
	switch {
	case t.count >= t.cfg.Limit:
		a.Verdict, a.Health = Dead, 0
	case t.count > 0:
		a.Verdict = Suspect
	default:
		a.Verdict = Healthy
	}
	return a
}
