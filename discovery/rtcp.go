package discovery

import (
	"math/rand/v2"
	"time"
)

// This file holds when our periodic announcements go (docs/design/frugal.md,
// section 2.3). A member that pings announces under RFC 3550's rule for
// RTCP reports (§6.2, §6.3): the whole group sends Config.AnnounceRate
// announcements a second, so each member waits T(N) = N / AnnounceRate
// (at least AnnounceInterval), spread over [0.5, 1.5] T, and reconsiders
// the wait as the group grows or shrinks. Liveness rides on pings, health
// on the members' own reports and joins on the answers to queries, so the
// periodic announcement only refreshes what the others know.
//
// While a legacy peer is heard (one that does not ping: an original pir
// peer, or an older pir), the member announces every AnnounceInterval as
// before, in the plain form when it can: originals learn members only
// from those, and older pir peers expire a member silent for ten of them.

// annState is when our periodic announcements go. The owner goroutine owns
// it.
type annState struct {
	last   instant // our latest periodic announcement, or our start
	next   instant // when the next is due; other taskAnnounce tasks are stale
	u      float64 // the current wait's draw from U(0.5, 1.5)
	n      int     // the group's size (N) the wait was last computed for
	legacy instant // when a legacy peer was last heard; zero: never
	plain  bool    // legacy mode: the periodic announcement carries no ARGS
}

// scaled reports whether our announcements follow the group's size: we
// ping, and AnnounceRate is positive.
func (g *Group) scaled() bool { return g.pinging() && g.cfg.AnnounceRate > 0 }

// groupSize is N: the joined members, ourselves counted.
func (g *Group) groupSize() int { return g.members() + 1 }

// announceWait is T(n): the wait between one member's periodic
// announcements in a group of n that sends AnnounceRate of them a second.
func (g *Group) announceWait(n int) time.Duration {
	t := time.Duration(float64(n) / g.cfg.AnnounceRate * float64(time.Second))
	return max(g.cfg.AnnounceInterval, t)
}

// legacyMode reports whether a legacy peer has been heard within
// ExpireAfter (ten AnnounceIntervals by default: legacy peers announce
// every interval, so this means it is still there).
func (g *Group) legacyMode(now time.Time) bool {
	if g.ann.legacy == 0 {
		return false
	}
	window := g.cfg.ExpireAfter
	if window <= 0 {
		window = 10 * g.cfg.AnnounceInterval
	}
	return now.Sub(g.time(g.ann.legacy)) < window
}

// heardLegacy notes a message from a peer that does not ping. Entering
// legacy mode brings our next announcement forward to within an interval,
// so that an original peer learns us as it learns its own kind.
func (g *Group) heardLegacy(now time.Time) {
	if !g.scaled() || g.announce == nil {
		return
	}
	was := g.legacyMode(now)
	g.ann.legacy = g.at(now)
	if was {
		return
	}
	g.log.Debug("legacy peer heard: announcing every interval")
	if at := g.at(now.Add(g.announceDelay())); at < g.ann.next {
		g.pushAnnounce(at)
	}
}

// scheduleAnnounce schedules the next periodic announcement after one
// went (or after our start) at now.
func (g *Group) scheduleAnnounce(now time.Time) {
	g.ann.last = g.at(now)
	if !g.scaled() || g.legacyMode(now) {
		g.pushAnnounce(g.at(now.Add(g.announceDelay())))
		return
	}
	g.ann.u = 0.5 + rand.Float64()
	g.ann.n = g.groupSize()
	g.pushAnnounce(g.scaledAt(g.ann.n))
}

// scheduleBoot schedules our boot announcement: a member that announces
// at the group's rate says who it is once more, one or two
// AnnounceIntervals (a second or two) after its query, at random, so that
// members that started with it, and missed both its query and the vouch
// that admits it, hear it again (the admission fallback, admit.go) and
// take it, after which their pings repair what it missed of them
// (repair.go). Without it such a pair waits for a periodic announcement,
// N/AnnounceRate seconds away: ten members started together in the lab
// sometimes did not all meet within 20 s. mDNS announces twice on
// starting for the same reason (RFC 6762, section 8.3).
func (g *Group) scheduleBoot(now time.Time) {
	if !g.scaled() {
		return
	}
	d := g.cfg.AnnounceInterval
	g.sched.push(task{at: g.at(now.Add(d + rand.N(d))), kind: taskBoot})
}

// bootAnnounce sends our boot announcement, unless legacy mode announces
// every interval anyway.
func (g *Group) bootAnnounce(now time.Time) {
	if !g.scaled() || g.legacyMode(now) {
		return
	}
	g.announceNow()
}

// scaledAt is when the current wait ends for a group of n.
func (g *Group) scaledAt(n int) instant {
	return g.ann.last + instant(float64(g.announceWait(n))*g.ann.u)
}

func (g *Group) pushAnnounce(at instant) {
	g.ann.next = at
	g.sched.push(task{at: at, kind: taskAnnounce})
}

// announceDue runs when the announce timer fires: it sends the periodic
// announcement, unless the group has grown since the wait was drawn and
// the wait for its new size has not ended (forward reconsideration, RFC
// 3550 §6.3.3): when many join at once, each one's larger N pushes its
// own announcement out.
func (g *Group) announceDue(now time.Time) {
	legacy := g.scaled() && g.legacyMode(now)
	if g.scaled() && !legacy {
		n := g.groupSize()
		if at := g.scaledAt(n); at > g.at(now) {
			g.ann.n = n
			g.pushAnnounce(at)
			return
		}
	}
	g.ann.plain = legacy
	g.announceNow()
	g.ann.plain = false
	g.scheduleAnnounce(now)
}

// fewer pulls the next announcement in when the group shrinks from prev
// members (reverse reconsideration, RFC 3550 §6.3.4): the wait left
// shrinks by N/prev, and so does the time since the last one, so that
// forward reconsideration agrees. The survivors of a mass failure then
// announce soon, instead of at the wait of the group they were.
func (g *Group) fewer(prev int, now time.Time) {
	n := g.groupSize()
	if !g.scaled() || g.legacyMode(now) || g.ann.next == 0 || n >= prev || prev == 0 {
		return
	}
	r := float64(n) / float64(prev)
	tc := g.at(now)
	if g.ann.next <= tc {
		return
	}
	g.ann.last = tc - instant(r*float64(tc-g.ann.last))
	g.ann.n = n
	g.pushAnnounce(tc + instant(r*float64(g.ann.next-tc)))
}

// expireAfter is how long st may be silent before it expires. A member
// that pings is pinged, not heard from each interval: it expires only
// when nothing at all has come from it for long past its announcements'
// wait and a whole round of everyone's pings (docs/design/frugal.md,
// section 2.3.3), which the ping protocol's removal comes long before.
func (g *Group) expireAfter(st *peerState) time.Duration {
	d := g.cfg.ExpireAfter
	if d <= 0 || !st.pings || !g.scaled() {
		return d
	}
	n := g.groupSize()
	// 1.5: the longest draw of the wait; three of them, as ExpireAfter is
	// ten intervals for legacy peers.
	wait := time.Duration(4.5 * float64(g.announceWait(n)))
	round := 3 * time.Duration(n-1) * g.cfg.PingInterval
	return max(d, wait, round)
}

// pathSilence is how long the path a member's URIs came by (peerState.path)
// may bring nothing before an update heard by its other path (IPv6 as well
// as IPv4, a second interface) moves the member there. A legacy peer
// announces every AnnounceInterval: three of them. A pinging member
// announces once per T(N) (at most 1.5 T apart) and, while we ping it at
// the address of that path, acks our pings from there at least once per
// two rounds of ours: three of the shorter of those gaps, so that its path
// does not look silent between two of its announcements and flip at each
// (docs/design/frugal.md, section 5, "First run on real sockets"). A
// member known by IPv6 and heard on IPv4 too is pinged at IPv4 (pingAddr),
// and its acks keep no IPv6 path heard: only its announcements count.
func (g *Group) pathSilence(id string, st *peerState) time.Duration {
	d := 3 * g.cfg.AnnounceInterval
	if !st.pings || !g.scaled() {
		return d
	}
	n := g.groupSize()
	gap := time.Duration(1.5 * float64(g.announceWait(n)))
	if g.pinging() && g.pingAddr(id, st) == st.member.Addr {
		gap = min(gap, 2*time.Duration(n-1)*g.cfg.PingInterval)
	}
	return max(d, 3*gap)
}
