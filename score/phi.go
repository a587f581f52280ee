package score

import (
	"math"
	"time"
)

// PhiConfig sets the numbers of the PhiAccrual policy. The defaults suit
// pir's own defaults (an announcement every 1 s ± 10 %, a probe every 2 s);
// docs/policies.md shows what they give and when to change them.
type PhiConfig struct {
	// Threshold is the phi at which a peer is dead. Phi is -log10 of the
	// probability that a live peer stays silent this long, so 8 means
	// "one chance in 10^8" under the learned distribution. Zero or
	// negative means 8.
	Threshold float64

	// SuspectThreshold is the phi from which a peer is Suspect (so is a
	// peer whose latest probe failed). Zero or negative means
	// Threshold/2; a value above Threshold means Threshold.
	SuspectThreshold float64

	// WindowSize is the span, in announcement intervals, of the moving
	// average that learns their distribution. The first WindowSize
	// intervals (counting the two that Track assumes) weigh the same: the
	// mean and standard deviation are exactly those of every interval so
	// far, as a window of that size would give. From then on each new
	// interval weighs 2/(WindowSize+1) and the weight of all before it
	// shrinks by that share, so the latest WindowSize intervals carry 86 %
	// of the weight and older ones fade. The memory per peer does not
	// depend on it. Zero means 100; values below 2 mean 2 and values
	// above 10000 mean 10000.
	WindowSize int

	// MinStdDev is the floor under the standard deviation of the
	// inter-arrival times, so that a peer announcing like clockwork is
	// not judged dead the moment one announcement is a little late. The
	// jitter of pir's announcements (± 10 % of 1 s) is about 58 ms, above
	// it. Zero or negative means 50 ms.
	MinStdDev time.Duration

	// AcceptablePause is extra silence tolerated, on top of what the
	// learned distribution expects, while the peer answers its probes:
	// phi is measured against the mean interval plus this pause. It is
	// withdrawn after PauseFailures failed probes in a row, and granted
	// again by the next successful probe. Zero means 10 s; negative
	// means no pause.
	AcceptablePause time.Duration

	// PauseFailures is the number of failed probes in a row that
	// withdraws AcceptablePause. Zero or negative means 1: a killed peer is found at
	// its first refused probe if its announcements are also late, but a
	// live peer whose probe fails just when an announcement is lost is
	// taken for dead. 2 makes that coincidence need two failures in a
	// row, and costs one probe interval of detection time.
	PauseFailures int

	// ExpectedInterval is the announcement interval assumed until the
	// real one has been learned: set it to the senders'
	// AnnounceInterval. An interval longer than 65 times it (or than 65 s,
	// if that is more) counts as that long, so that one long silence does
	// not swamp what was learned. Zero or negative means 1 s.
	ExpectedInterval time.Duration

	// MaxProbeFailures is the number of consecutive failed probes that
	// makes a peer dead whatever its announcements say. Zero means 3;
	// negative means no limit (failures then only withdraw the pause).
	MaxProbeFailures int
}

// The limits on WindowSize.
const (
	minWindow = 2
	maxWindow = 10000
)

// DefaultPhiConfig returns the defaults: dead at phi 8, suspect from phi 4,
// intervals learned over a span of 100, a 50 ms deviation floor, a 10 s
// pause while probes answer (withdrawn by one failed probe), a 1 s expected
// interval and death after 3 failed probes in a row.
func DefaultPhiConfig() PhiConfig {
	return PhiConfig{
		Threshold:        8,
		SuspectThreshold: 4,
		WindowSize:       100,
		MinStdDev:        50 * time.Millisecond,
		AcceptablePause:  10 * time.Second,
		PauseFailures:    1,
		ExpectedInterval: time.Second,
		MaxProbeFailures: 3,
	}
}

// PhiAccrual is the phi-accrual failure detector of Hayashibara et al.
// (2004), fed by announcements and corroborated by probes.
//
// Each peer's announcement inter-arrival times, in a moving average over
// about WindowSize of them, give a mean and a standard deviation; phi is
// -log10 of the probability, under a normal distribution with those
// numbers, that a live peer stays silent as long as it has. While the peer
// answers its probes, phi is measured against the mean plus
// AcceptablePause, which absorbs lost announcements; a failed probe
// (PauseFailures of them in a row) withdraws the pause, so a peer that has
// both gone silent and stopped answering is dead as soon as its silence is
// unlikely. A run of MaxProbeFailures failed probes is dead regardless.
//
// Health is 1 - max(phi/Threshold, failures/MaxProbeFailures), in steps of
// 0.01 so that noise far from any threshold does not count as a change.
type PhiAccrual struct {
	cfg PhiConfig

	// The same numbers, ready for the arithmetic.
	minSD       float64 // ms
	pause       float64 // ms
	expected    float64 // ms
	maxInterval float64 // ms: longer intervals count as this long
	alpha       float64 // the weight of a new interval once n reaches WindowSize
}

var _ HealthPolicy = (*PhiAccrual)(nil)

// NewPhiAccrual returns a PhiAccrual policy; zero fields of cfg take their
// defaults.
func NewPhiAccrual(cfg PhiConfig) *PhiAccrual {
	d := DefaultPhiConfig()
	if !(cfg.Threshold > 0) { // NaN too
		cfg.Threshold = d.Threshold
	}
	if !(cfg.SuspectThreshold > 0) {
		cfg.SuspectThreshold = cfg.Threshold / 2
	}
	cfg.SuspectThreshold = min(cfg.SuspectThreshold, cfg.Threshold)
	switch {
	case cfg.WindowSize == 0:
		cfg.WindowSize = d.WindowSize
	case cfg.WindowSize < minWindow:
		cfg.WindowSize = minWindow
	case cfg.WindowSize > maxWindow:
		cfg.WindowSize = maxWindow
	}
	if cfg.MinStdDev <= 0 {
		cfg.MinStdDev = d.MinStdDev
	}
	if cfg.AcceptablePause == 0 {
		cfg.AcceptablePause = d.AcceptablePause
	}
	if cfg.PauseFailures <= 0 {
		cfg.PauseFailures = d.PauseFailures
	}
	if cfg.ExpectedInterval <= 0 {
		cfg.ExpectedInterval = d.ExpectedInterval
	}
	if cfg.MaxProbeFailures == 0 {
		cfg.MaxProbeFailures = d.MaxProbeFailures
	}
	expected := toMs(cfg.ExpectedInterval)
	return &PhiAccrual{
		cfg:         cfg,
		minSD:       toMs(cfg.MinStdDev),
		pause:       max(toMs(cfg.AcceptablePause), 0),
		expected:    expected,
		maxInterval: max(65*expected, 65000),
		alpha:       2 / float64(cfg.WindowSize+1),
	}
}

// Config returns the policy's numbers, defaults filled in.
func (p *PhiAccrual) Config() PhiConfig { return p.cfg }

// Track starts learning one peer, first heard at now; the Tracker is a
// *PhiTracker, its one allocation. Until it has learned the peer's own
// interval it assumes ExpectedInterval, so a new peer that falls silent at
// once is still found out.
func (p *PhiAccrual) Track(now time.Time) Tracker {
	// Two imagined intervals, a quarter of the expected one either side of
	// it, give the first real ones a mean and a deviation to be judged by;
	// they weigh like real ones, so they fade as real ones come.
	q := p.expected / 4
	return &PhiTracker{p: p, last: now, n: 2, mean: float32(p.expected), vari: float32(q * q)}
}

// PhiTracker is one peer's state under PhiAccrual: the mean and variance
// of its inter-arrival times, how many intervals they hold (up to
// WindowSize), the last arrival and the current run of failed probes: 48
// bytes, whatever the WindowSize. The mean and variance are float32s,
// precise to a few parts in 10⁸, far below any jitter. Observe and Assess
// take constant time and allocate nothing. Like every Tracker it is used by
// one goroutine at a time.
type PhiTracker struct {
	p     *PhiAccrual
	last  time.Time // the latest announcement (or Track)
	mean  float32   // of the intervals, ms
	vari  float32   // their variance, ms²: never negative
	n     uint32    // intervals learned, the two imagined ones included, up to WindowSize
	fails uint32    // failed probes since the last successful one
}

var _ Tracker = (*PhiTracker)(nil)

// Observe records one event. A heartbeat adds the time since the previous
// one to what is learned, except a copy: one arriving within an eighth of
// the mean interval of the previous (the same announcement heard over IPv4
// and IPv6, or on two interfaces) or before it. A failed probe lengthens
// the run of failures (which withdraws the pause once it reaches
// PauseFailures); a successful one ends the run.
func (t *PhiTracker) Observe(o Observation) {
	switch o.Event {
	case Heartbeat:
		d := o.At.Sub(t.last)
		if d < 0 || toMs(d)*8 < float64(t.mean) {
			return
		}
		t.learn(min(toMs(d), t.p.maxInterval))
		t.last = o.At
	case ProbeOK:
		t.fails = 0
	case ProbeFailed:
		if t.fails < math.MaxInt32 {
			t.fails++
		}
	}
}

// learn adds one interval x (ms) to the mean and variance. Each step is
// the exponentially weighted update (West 1979; Finch 2009)
//
//	mean += a·d,  var = (1-a)·(var + a·d²),  d = x - mean
//
// which, for weights that sum to 1, is exact: the new mean and variance
// are those of the old intervals, their weights scaled by 1-a, and x,
// weighted a. With a = 1/n for the n-th interval every interval weighs the
// same, so up to WindowSize intervals this is the exact (population) mean
// and variance of them all, computed as Welford's stable algorithm does;
// after that a = 2/(WindowSize+1), a moving average of that span. var
// stays non-negative by construction, and the error of each step decays
// with the old weights, so nothing drifts however long the peer lives.
func (t *PhiTracker) learn(x float64) {
	a := t.p.alpha
	if t.n < uint32(t.p.cfg.WindowSize) {
		t.n++
		a = 1 / float64(t.n)
	}
	mean, vari := float64(t.mean), float64(t.vari)
	d := x - mean
	t.mean = float32(mean + a*d)
	t.vari = float32((1 - a) * (vari + a*d*d))
}

// Assess reports the peer's health at now.
func (t *PhiTracker) Assess(now time.Time) Assessment {
	cfg := &t.p.cfg
	phi := t.Phi(now)
	ratio := phi / cfg.Threshold
	fails := t.Failures()
	failing := cfg.MaxProbeFailures > 0 && fails >= cfg.MaxProbeFailures
	if cfg.MaxProbeFailures > 0 {
		ratio = max(ratio, float64(fails)/float64(cfg.MaxProbeFailures))
	}
	switch {
	case phi >= cfg.Threshold || failing:
		return Assessment{Health: 0, Verdict: Dead}
	case phi >= cfg.SuspectThreshold || t.fails > 0:
		return Assessment{Health: healthOf(ratio), Verdict: Suspect}
	}
	return Assessment{Health: healthOf(ratio), Verdict: Healthy}
}

// Phi is the suspicion level at now: -log10 of the probability that a live
// peer would have been silent at least this long since its last
// announcement, given the learned intervals, the pause when granted, and
// the deviation floor. It is 0 for no suspicion and grows without bound;
// +Inf only if the silence is beyond anything a float64 can express.
func (t *PhiTracker) Phi(now time.Time) float64 {
	mean := float64(t.mean)
	sd := max(t.stdDev(), t.p.minSD)
	if t.Failures() < t.p.cfg.PauseFailures {
		mean += t.p.pause
	}
	return phiOf((toMs(now.Sub(t.last)) - mean) / sd)
}

// Failures returns the current run of failed probes.
func (t *PhiTracker) Failures() int { return int(t.fails) }

// Window returns the learned mean and standard deviation of the
// inter-arrival times, before the floor and the pause.
func (t *PhiTracker) Window() (mean, stdDev time.Duration) {
	return fromMs(float64(t.mean)), fromMs(t.stdDev())
}

// stdDev is the learned standard deviation in ms.
func (t *PhiTracker) stdDev() float64 { return math.Sqrt(max(float64(t.vari), 0)) }

// phiOf is -log10 of the upper tail of the standard normal distribution at
// z. Past z = 35 the tail underflows a float64's erfc; there the asymptotic
// expansion Q(z) ≈ φ(z)/z · (1 - 1/z² + 3/z⁴) takes over.
func phiOf(z float64) float64 {
	if z > 35 {
		lnQ := -z*z/2 - math.Log(z*math.Sqrt(2*math.Pi)) + math.Log1p(-1/(z*z)+3/(z*z*z*z))
		return -lnQ / math.Ln10
	}
	return max(-math.Log10(0.5*math.Erfc(z/math.Sqrt2)), 0)
}

// healthOf maps the ratio to the dead line onto Health, in steps of 0.01.
func healthOf(ratio float64) float64 {
	return math.Round(100*(1-min(max(ratio, 0), 1))) / 100
}

func toMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMs(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
