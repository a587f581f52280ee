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

	// WindowSize is how many inter-arrival times of announcements are
	// kept to learn their distribution; the oldest is forgotten first.
	// Each costs 2 bytes per tracked peer. Zero means 100; values below 2
	// mean 2 and values above 10000 mean 10000.
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
	// window has learned the real one: set it to the senders'
	// AnnounceInterval. It also sets the window's unit: a thousandth of
	// it, at least 1 ms; intervals beyond 65 times it are kept as 65 times
	// it. Zero or negative means 1 s.
	ExpectedInterval time.Duration

	// MaxProbeFailures is the number of consecutive failed probes that
	// makes a peer dead whatever its announcements say. Zero means 3;
	// negative means no limit (failures then only withdraw the pause).
	MaxProbeFailures int
}

// The limits on the window. An interval is kept in 16-bit ticks, so the
// running sums are exact integers that cannot overflow.
const (
	minWindow = 2
	maxWindow = 10000
)

// DefaultPhiConfig returns the defaults: dead at phi 8, suspect from phi 4,
// a window of 100 intervals, a 50 ms deviation floor, a 10 s pause while
// probes answer (withdrawn by one failed probe), a 1 s expected interval
// and death after 3 failed probes in a row.
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
// Each peer's announcement inter-arrival times, over a sliding window, give
// a mean and a standard deviation; phi is -log10 of the probability, under
// a normal distribution with those numbers, that a live peer stays silent
// as long as it has. While the peer answers its probes, phi is measured
// against the mean plus AcceptablePause, which absorbs lost announcements;
// a failed probe (PauseFailures of them in a row) withdraws the pause, so a
// peer that has both gone silent and stopped answering is dead as soon as
// its silence is unlikely. A run of MaxProbeFailures failed probes is dead
// regardless.
//
// Health is 1 - max(phi/Threshold, failures/MaxProbeFailures), in steps of
// 0.01 so that noise far from any threshold does not count as a change.
type PhiAccrual struct {
	cfg PhiConfig

	// The same numbers, ready for the arithmetic.
	minSD    float64 // ms
	pause    float64 // ms
	expected uint16  // ticks
	tick     float64 // ms: the unit of the window's intervals
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
	p := &PhiAccrual{
		cfg:   cfg,
		minSD: toMs(cfg.MinStdDev),
		pause: max(toMs(cfg.AcceptablePause), 0),
		tick:  tickOf(cfg.ExpectedInterval),
	}
	p.expected = p.ticks(cfg.ExpectedInterval)
	return p
}

// tickOf is the unit in which a window keeps its intervals, in ms: a
// thousandth of the expected interval, at least 1 ms, so that intervals
// up to 65 times the expected one fit in 16 bits with a resolution far
// below the announcements' jitter.
func tickOf(expected time.Duration) float64 {
	return max(1, math.Round(toMs(expected)/1000))
}

// ticks rounds d to whole ticks, within what 16 bits hold.
func (p *PhiAccrual) ticks(d time.Duration) uint16 {
	t := math.Round(toMs(d) / p.tick)
	return uint16(min(max(t, 0), math.MaxUint16))
}

// Config returns the policy's numbers, defaults filled in.
func (p *PhiAccrual) Config() PhiConfig { return p.cfg }

// Track starts learning one peer, first heard at now; the Tracker is a
// *PhiTracker. Until the window has learned the peer's own interval it
// assumes ExpectedInterval, so a new peer that falls silent at once is
// still found out.
func (p *PhiAccrual) Track(now time.Time) Tracker {
	t := &PhiTracker{p: p, last: now, win: make([]uint16, p.cfg.WindowSize)}
	// Two imagined intervals, a quarter of the expected one either side of
	// it, give the first real ones a mean and a deviation to be judged by;
	// real intervals push them out of the window like any other.
	q := p.expected / 4
	t.push(p.expected - q)
	t.push(p.expected + q)
	return t
}

// PhiTracker is one peer's state under PhiAccrual: a ring of inter-arrival
// times with running sums, the last arrival and the current run of failed
// probes: about 500 bytes with the default window. Observe and Assess take
// constant time and allocate nothing. Like every Tracker it is used by one
// goroutine at a time.
type PhiTracker struct {
	p     *PhiAccrual
	last  time.Time // the latest announcement (or Track)
	win   []uint16  // inter-arrival times in ticks (PhiAccrual.tick), a ring
	next  int       // where the next interval goes
	n     int       // intervals held, up to len(win)
	sum   int64     // of win, ms
	sumSq int64     // of the squares, ms²
	fails int       // failed probes since the last successful one
}

var _ Tracker = (*PhiTracker)(nil)

// Observe records one event. A heartbeat adds the time since the previous
// one to the window, except a copy: one arriving within an eighth of the
// mean interval of the previous (the same announcement heard over IPv4 and
// IPv6, or on two interfaces) or before it. A failed probe lengthens the
// run of failures (which withdraws the pause once it reaches
// PauseFailures); a successful one ends the run.
func (t *PhiTracker) Observe(o Observation) {
	switch o.Event {
	case Heartbeat:
		d := o.At.Sub(t.last)
		if d < 0 || toMs(d)*8 < t.mean() {
			return
		}
		t.push(t.p.ticks(d))
		t.last = o.At
	case ProbeOK:
		t.fails = 0
	case ProbeFailed:
		if t.fails < math.MaxInt32 {
			t.fails++
		}
	}
}

// Assess reports the peer's health at now.
func (t *PhiTracker) Assess(now time.Time) Assessment {
	cfg := &t.p.cfg
	phi := t.Phi(now)
	ratio := phi / cfg.Threshold
	failing := cfg.MaxProbeFailures > 0 && t.fails >= cfg.MaxProbeFailures
	if cfg.MaxProbeFailures > 0 {
		ratio = max(ratio, float64(t.fails)/float64(cfg.MaxProbeFailures))
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
	mean := t.mean()
	sd := max(t.stdDev(mean), t.p.minSD)
	if t.fails < t.p.cfg.PauseFailures {
		mean += t.p.pause
	}
	return phiOf((toMs(now.Sub(t.last)) - mean) / sd)
}

// Failures returns the current run of failed probes.
func (t *PhiTracker) Failures() int { return t.fails }

// Window returns the learned mean and standard deviation of the
// inter-arrival times, before the floor and the pause.
func (t *PhiTracker) Window() (mean, stdDev time.Duration) {
	m := t.mean()
	return fromMs(m), fromMs(t.stdDev(m))
}

func (t *PhiTracker) push(ticks uint16) {
	if t.n == len(t.win) {
		old := int64(t.win[t.next])
		t.sum -= old
		t.sumSq -= old * old
	} else {
		t.n++
	}
	v := int64(ticks)
	t.win[t.next] = ticks
	t.sum += v
	t.sumSq += v * v
	if t.next++; t.next == len(t.win) {
		t.next = 0
	}
}

// mean is the mean interval in ms. The window always holds at least the
// two imagined intervals, so n > 0.
func (t *PhiTracker) mean() float64 { return t.p.tick * float64(t.sum) / float64(t.n) }

// stdDev is the population standard deviation of the window in ms. The
// sums are exact integers, so nothing drifts however long the peer lives.
func (t *PhiTracker) stdDev(mean float64) float64 {
	m := mean / t.p.tick
	v := float64(t.sumSq)/float64(t.n) - m*m
	return t.p.tick * math.Sqrt(max(v, 0))
}

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
