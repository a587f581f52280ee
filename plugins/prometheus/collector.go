package prometheus

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
)

// Namespace is the prefix of every metric name this package exports.
const Namespace = "pir"

// ErrInvalidConfig wraps every problem Config.Validate and
// ProbeConfig.Validate report.
var ErrInvalidConfig = errors.New("pirprom: invalid config")

// Config configures a Collector.
type Config struct {
	// Group is the value of the "group" label on every metric, normally
	// the group's name (discovery.Config.Name), so that a process in
	// several groups can register one Collector per Group in one
	// registry. Valid UTF-8. Empty means no group label.
	Group string

	// MemberHealth adds the gauge pir_member_health{member="ID"}: each
	// joined member's Health, from 0 (dead) to 1 (healthy). It is one
	// series per member, up to discovery.Config.MaxPeers, and a member
	// that restarts with a new random ID starts a new series, so it is off
	// (false) by default. Turn it on for small groups whose members keep
	// their IDs.
	MemberHealth bool
}

// DefaultConfig returns a Config for a Collector of the group named group,
// with every other field at its default.
func DefaultConfig(group string) Config { return Config{Group: group} }

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if !utf8.ValidString(c.Group) {
		return fmt.Errorf("%w: Group %q is not valid UTF-8", ErrInvalidConfig, c.Group)
	}
	return nil
}

// Collector is a prometheus.Collector that reports a Group's Stats and
// membership at each scrape, and counts its events as they happen. Make it
// with NewCollector and register it with a prometheus.Registerer.
//
// Its methods are safe for concurrent use.
type Collector struct {
	g *discovery.Group

	received, decoded, dropped *prometheus.Desc
	sent, sendErrors           *prometheus.Desc
	probes                     *prometheus.Desc
	events, departures         *prometheus.Desc
	members, pending           *prometheus.Desc
	queue                      *prometheus.Desc
	updatesHeld                *prometheus.Desc
	confirmations, refutations *prometheus.Desc
	obituaries                 *prometheus.Desc
	selfClaims                 *prometheus.Desc
	pings                      *prometheus.Desc
	memberHealth               *prometheus.Desc // nil unless cfg.MemberHealth

	remove func()

	mu       sync.Mutex
	closed   bool
	byType   map[string]uint64 // events by EventType.String()
	byReason map[string]uint64 // departures by Reason.String()
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of g, which must have joined. It adds a
// listener to g at once, to count events: the listener's first events are a
// Joined for every member already there, so that pir_events_total{type="joined"}
// counts those too. Close removes the listener.
func NewCollector(g *discovery.Group, cfg Config) (*Collector, error) {
	if g == nil {
		return nil, fmt.Errorf("%w: nil Group: pass the Group that discovery.Join returned", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var constLabels prometheus.Labels
	if cfg.Group != "" {
		constLabels = prometheus.Labels{"group": cfg.Group}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, constLabels)
	}
	c := &Collector{
		g: g,

		received: desc("received_datagrams_total",
			"Datagrams the group received, whatever became of them."),
		decoded: desc("decoded_datagrams_total",
			"Datagrams the group's codec decoded."),
		dropped: desc("dropped_datagrams_total",
			"Datagrams the group dropped without acting on them, by reason.", "reason"),
		sent: desc("sent_datagrams_total",
			"Datagrams the group sent: announcements, queries, answers and goodbyes."),
		sendErrors: desc("send_errors_total",
			"Sends of datagrams that failed."),
		probes: desc("probes_total",
			"Health probes of peers that finished, by result (ok or failed).", "result"),
		events: desc("events_total",
			"Membership events, by type (joined, health, updated, left).", "type"),
		departures: desc("departures_total",
			"Members that left, by reason (goodbye, failed, expired).", "reason"),
		members: desc("members",
			"Joined members, by the health policy's verdict.", "verdict"),
		pending: desc("pending_peers",
			"Peers heard but not joined yet: waiting for a first successful probe."),
		queue: desc("listener_events_lost_total",
			"Events a listener never received: merged into a newer one of the same member while queued, or dropped from a full queue.", "outcome"),
		updatesHeld: desc("updates_held_total",
			"Changes to a member held back by the per-member limit on Updated events, then reported together."),
		confirmations: desc("confirmations_total",
			"Deaths put to other members before a removal."),
		refutations: desc("refutations_total",
			"Deaths put to other members that one refuted, having seen the peer alive."),
		obituaries: desc("obituaries_total",
			"Members removed on another member's word (bounded probing), or by an obituary whose grace ended (pings)."),
		selfClaims: desc("self_claims_refuted_total",
			"Messages under this member's ID that said what it did not (another record, URIs or metadata; a goodbye while it stays), answered with its true announcement: forgeries, or a second process with its ID."),
		pings: desc("pings_total",
			"Pings of the frugal engine: started (sent), acked, failed (timed out or refused), and refused (ICMP port unreachable).", "result"),

		byType:   map[string]uint64{},
		byReason: map[string]uint64{},
	}
	if cfg.MemberHealth {
		c.memberHealth = desc("member_health",
			"Each joined member's health as the health policy judges it, from 0 (dead) to 1 (healthy).", "member")
	}
	// Every known label value is there from the start, at zero, so that
	// queries see a series before its first event.
	for _, t := range []discovery.EventType{discovery.Joined, discovery.HealthChanged, discovery.Updated, discovery.Left} {
		c.byType[t.String()] = 0
	}
	for _, r := range []discovery.Reason{discovery.Goodbye, discovery.Failed, discovery.Expired} {
		c.byReason[r.String()] = 0
	}
	c.remove = g.AddListener(c.observe)
	return c, nil
}

// observe is the Collector's listener.
func (c *Collector) observe(e discovery.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.byType[e.Type.String()]++
	if e.Type == discovery.Left {
		c.byReason[e.Reason.String()]++
	}
	return true
}

// Close removes the Collector's listener from its Group: events that happen
// after Close returns are not counted. Unregister the Collector from its
// registry first; a scrape after Close still reads the Group's Stats and
// members. Close is idempotent and returns nil.
func (c *Collector) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.remove()
	return nil
}

// Describe sends the descriptor of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.received, c.decoded, c.dropped, c.sent, c.sendErrors, c.probes,
		c.events, c.departures, c.members, c.pending,
		c.queue, c.updatesHeld, c.confirmations, c.refutations, c.obituaries, c.selfClaims, c.pings,
	} {
		ch <- d
	}
	if c.memberHealth != nil {
		ch <- c.memberHealth
	}
}

// Collect reads the Group's Stats and members and sends them as metrics,
// with the event counts so far.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	// Members first, Stats after: the counters are then at least as new as
	// the member list, so a scrape never shows a member whose admission
	// (its probe, its leaving pending) the counters have not seen yet.
	ms := c.g.Members()
	s := c.g.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		send(ch, d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		send(ch, d, prometheus.GaugeValue, v, labels...)
	}

	counter(c.received, s.Received)
	counter(c.decoded, s.Decoded)
	for r, n := range s.Dropped {
		counter(c.dropped, n, r.String())
	}
	counter(c.sent, s.Sent)
	counter(c.sendErrors, s.SendErrors)
	counter(c.probes, s.ProbesOK, "ok")
	counter(c.probes, s.ProbesFailed, "failed")
	gauge(c.pending, float64(s.Pending))
	counter(c.queue, s.EventsMerged, "merged")
	counter(c.queue, s.EventsDropped, "dropped")
	counter(c.updatesHeld, s.UpdatesHeld)
	counter(c.confirmations, s.Confirmations)
	counter(c.refutations, s.Refutations)
	counter(c.obituaries, s.Obituaries)
	counter(c.selfClaims, s.SelfClaimsRefuted)
	counter(c.pings, s.PingsSent, "sent")
	counter(c.pings, s.AcksReceived, "acked")
	counter(c.pings, s.PingsFailed, "failed")
	counter(c.pings, s.PingsRefused, "refused")

	verdicts := map[string]int{score.Healthy.String(): 0, score.Suspect.String(): 0}
	for _, m := range ms {
		verdicts[m.Verdict.String()]++
	}
	for v, n := range verdicts {
		gauge(c.members, float64(n), v)
	}
	if c.memberHealth != nil {
		seen := make(map[string]bool, len(ms))
		for _, m := range ms {
			// IDs come from the network: make them valid label values,
			// and keep the first of any two that become the same.
			id := strings.ToValidUTF8(m.ID, "\uFFFD")
			if seen[id] {
				continue
			}
			seen[id] = true
			gauge(c.memberHealth, m.Health, id)
		}
	}

	// Copy the event counts, so that the listener never waits for a slow
	// scrape.
	c.mu.Lock()
	byType, byReason := maps.Clone(c.byType), maps.Clone(c.byReason)
	c.mu.Unlock()
	for t, n := range byType {
		counter(c.events, n, t)
	}
	for r, n := range byReason {
		counter(c.departures, n, r)
	}
}

// send sends one constant metric, or, if it cannot be made, a metric that
// reports why to the registry: Collect never panics.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
