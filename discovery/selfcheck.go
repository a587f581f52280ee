package discovery

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/score"
)

// This file holds self-reported health (docs/design/frugal.md, section
// 2.2): a member checks its own health URI every HealthInterval and
// multicasts the changes of its count of consecutive failed checks, and
// the other members feed those reports to their policy instead of probing
// it. Both sides are off unless PingInterval and HealthInterval are on.

// Self-report bounds: the count of consecutive failed checks stops at
// maxSelfFails, and only its changes up to reportUpTo (and its returns to
// 0) are multicast at once; later ones ride on the next announcement.
const (
	maxSelfFails = 9
	reportUpTo   = 3
	// reportAgain is how long after a report its second copy goes, so
	// that one lost datagram does not lose the report.
	reportAgain = 100 * time.Millisecond
)

// selfHealth is what the Group keeps of its own health.
type selfHealth struct {
	checks chan bool // checker -> owner: whether a check passed; nil when not checking
	// fails is c, the consecutive failed checks (0 to maxSelfFails), and
	// changes counts the changes of our record: our record's version is
	// 1 + changes. The owner writes both; selfArgs reads them from
	// whichever goroutine encodes (Join's query too).
	fails   atomic.Uint32
	changes atomic.Uint32
	seq     uint32 // numbers reports, so that a stale second copy is skipped (owner)

	// The reports of Updates (owner): their token bucket, and whether one
	// waits for a token (taskRecord).
	updates   bucket
	updateDue bool
}

// updateRate bounds the reports Update makes: a program that updates its
// record in a loop has it multicast (twice) at most this often a second,
// as it is at each report.
const updateRate = 4

// selfChecking reports whether this member checks its own health.
func (g *Group) selfChecking() bool {
	return g.pinging() && g.cfg.HealthInterval > 0 && !g.cfg.Passive
}

// version is our record's version, as ARGS v= says it: in announcements,
// queries, state-transfer entries, pings and acks.
func (g *Group) version() uint32 { return 1 + g.health.changes.Load() }

// healthFails is our count of consecutive failed self-checks, as ARGS h=
// says it: in announcements, queries and state-transfer entries.
func (g *Group) healthFails() int { return int(g.health.fails.Load()) }

// startSelfCheck starts the self-check goroutine when it is on. Join calls
// it before the owner starts, which then reads health.checks.
func (g *Group) startSelfCheck() {
	if !g.selfChecking() {
		return
	}
	g.health.checks = make(chan bool, 1)
	check, what := g.cfg.SelfCheck, "in process"
	if check == nil {
		target := selfTarget(g.me().HealthURI)
		check = func(ctx context.Context) error { return g.cfg.Prober.Probe(ctx, target) }
		what = target.String()
	}
	g.wg.Add(1)
	go g.selfCheck(check, what)
}

// selfTarget is where we check our own health: our health URI, with a
// host that names every address (0.0.0.0, [::]) replaced by the loopback
// address of its family; [::] by 127.0.0.1 on a host without IPv6 (no
// ::1), where a server listening on [::] serves IPv4 alone. Checked at
// [::1] there, a member would fail every check and report itself dead.
func selfTarget(u *url.URL) *url.URL {
	unspecified, v4 := unspecifiedHost(u)
	if !unspecified {
		return u
	}
	if v4 || !hasIPv6Loopback() {
		return withAddr(u, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	return withAddr(u, netip.IPv6Loopback())
}

// hasIPv6Loopback is ipv6Loopback; tests replace it.
var hasIPv6Loopback = ipv6Loopback

// ipv6Loopback reports whether this host has the address ::1: whether a
// socket binds to it. It sends nothing.
func ipv6Loopback() bool {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// selfCheck runs check (Config.SelfCheck, or Config.Prober against our
// health URI) every HealthInterval, each run bounded by ProbeTimeout, and
// hands the owner each failure and each pass after a failure (a pass
// after a pass changes nothing, and waking the owner for it every
// HealthInterval was a cost of every member); what names the check in
// logs. A run is not a probe: it counts in no Stats and sends nothing.
// Only the owner's reports of a change go on the wire.
func (g *Group) selfCheck(check func(context.Context) error, what string) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.HealthInterval)
	defer t.Stop()
	failing := false // the last result handed over; the owner's count starts at 0
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.ProbeTimeout)
		err := check(ctx)
		cancel()
		if err != nil && g.ctx.Err() == nil {
			g.log.Trace("self-check failed", "health", what, "error", err)
		}
		if err == nil && !failing {
			continue
		}
		failing = err != nil
		select {
		case g.health.checks <- err == nil:
		case <-g.ctx.Done():
			return
		}
	}
}

// selfChecked takes the result of a self-check: a change of our count of
// failed checks is a new version of our record, and while the count is at
// most reportUpTo (or back at 0) it is reported at once.
func (g *Group) selfChecked(ok bool, now time.Time) {
	c := g.health.fails.Load()
	next := min(c+1, maxSelfFails)
	if ok {
		next = 0
	}
	if next == c {
		return
	}
	g.health.fails.Store(next)
	g.health.changes.Add(1)
	g.log.Debug("own health changed", "failed_checks", next)
	if next <= reportUpTo {
		g.reportTwice(now)
	}
}

// reportTwice multicasts our record at once and again reportAgain later,
// so that one lost datagram does not lose a change.
func (g *Group) reportTwice(now time.Time) {
	g.health.seq++
	g.report()
	g.sched.push(task{at: g.at(now.Add(reportAgain)), kind: taskReport, gen: g.health.seq})
}

// reportUpdate reports our record after an Update, within updateRate: past
// it, one report waits for the next token and carries the record as it is
// then, whatever the Updates in between.
func (g *Group) reportUpdate(now time.Time) {
	h := &g.health
	if h.updateDue {
		return
	}
	if !h.updates.take(now, updateRate, updateRate) {
		h.updateDue = true
		g.sched.push(task{at: g.at(now.Add(h.updates.wait(updateRate))), kind: taskRecord})
		return
	}
	g.reportTwice(now)
}

// report multicasts our record as it is now, in the extension form when
// we ping (a plain announcement otherwise: the legacy engine's).
func (g *Group) report() {
	if err := g.sendSelf(codec.Announce, g.pinging()); err != nil {
		g.log.Debug("record report failed", "error", err)
	}
}

// reportCopy sends the second copy of report seq, unless a newer report
// has gone since (it has its own).
func (g *Group) reportCopy(seq uint32) {
	if seq == g.health.seq {
		g.report()
	}
}

// takeRecord notes what m, a peer's own announcement or query, says of its
// record: the record's version and its count of failed self-checks. A
// plain announcement (legacy mode) says nothing of them and is skipped.
// For a pinging member (st.pings, which the caller has set), while we
// ping, it feeds the policy what the count says (docs/policies.md): a
// count grown by k is k failed probes, a count back at 0 a successful one.
// It reports whether it fed the policy.
//
// A version lower than the one we have is taken too, not dropped as an
// old copy: a member restarted under the same ID counts from 1 again, and
// on a LAN a report is not overtaken by the next one, a HealthInterval
// later.
func (g *Group) takeRecord(st *peerState, m *codec.Message, now time.Time) bool {
	if !speaksExtensions(m) {
		return false
	}
	st.version = m.Version
	h := uint8(min(max(m.HealthFails, 0), 255))
	prev := st.healthFails
	st.healthFails = h
	if h == prev || !g.pinging() || !st.pings {
		return false
	}
	if h < prev {
		// Back to 0, or back to 0 and failing again in reports we missed.
		st.tracker.Observe(score.Observation{Event: score.ProbeOK, At: now})
		prev = 0
	}
	for range h - prev {
		st.tracker.Observe(score.Observation{Event: score.ProbeFailed, At: now})
	}
	return true
}

// heardRecord takes the record in a known peer's announcement or query
// (the owner's hot path) when it comes from the peer's own address, and
// judges the peer when its report fed the policy. A self-reported death
// needs no confirmation: the member said so itself. It reports whether
// the peer is still tracked.
func (g *Group) heardRecord(id string, st *peerState, in *inbound) bool {
	m := &in.msg
	if (m.Kind != codec.Announce && m.Kind != codec.Query) || !sameAddr(st.member.Addr, in.src) {
		return true
	}
	if !g.takeRecord(st, m, in.at) {
		return true
	}
	g.feedAlive(st, in.at)
	if st.tracker.Assess(in.at).Verdict == score.Dead {
		g.log.Debug("peer reported itself dead", "peer", id, "failed_checks", st.healthFails)
		g.remove(id, st, Failed, in.at)
		return false
	}
	return g.assess(id, st, in.at)
}

// feedAlive tells the policy of a pinging member, while we ping, that the
// member is alive, as the design asks before each Assess (section 2.2): a
// pingable member's silence is the ping protocol's business, not the
// policy's, so its phi stays 0 and only its reports and probes judge it.
// A member the ping protocol finds dead is removed by that protocol, so
// every pingable member still tracked counts as alive.
func (g *Group) feedAlive(st *peerState, now time.Time) {
	if g.pinging() && st.pings {
		st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: now})
	}
}

// deadByReport reports whether m, the announcement or query of a peer we
// do not track, says the peer failed enough checks of its own health for
// the policy to find it dead: such a peer is not tracked until its count
// is back at 0, as a member that reported its death is removed.
func (g *Group) deadByReport(m *codec.Message, now time.Time) bool {
	if !g.pinging() || !m.Pings || m.HealthFails <= 0 {
		return false
	}
	tr := g.cfg.Policy.Track(now)
	tr.Observe(score.Observation{Event: score.Heartbeat, At: now})
	for range min(m.HealthFails, 255) {
		tr.Observe(score.Observation{Event: score.ProbeFailed, At: now})
	}
	return tr.Assess(now).Verdict == score.Dead
}

// replayRecord feeds a fresh tracker (a new health URI) the failed checks
// the peer reported last.
func (g *Group) replayRecord(st *peerState, now time.Time) {
	if !g.pinging() || !st.pings {
		return
	}
	for range st.healthFails {
		st.tracker.Observe(score.Observation{Event: score.ProbeFailed, At: now})
	}
}
