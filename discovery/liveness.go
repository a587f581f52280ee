package discovery

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/score"
)

// This file holds liveness: what the policy's verdicts do (assess); how a
// member whose announcements stop is probed at once (late probes) and
// removed once silent too long (expiry); how other members are asked
// before one is removed (confirmations, SWIM's indirect probes: only
// members known to speak the extensions, never an original pir peer); and
// the evidence and obituaries members tell each other. Bounded probing is
// in probe.go. docs/architecture.md describes the whole. With the ping
// protocol on (ping.go), a member that answers pings is found dead by
// failed pings instead, confirmed by helpers that ping it too, and
// removed by an obituary whose grace it can end by being heard.

// confirmation is a death put to other members: the policy found the peer
// dead, and the Group waits for what the members asked have seen.
type confirmation struct {
	seq uint32
	// since is the time evidence must be newer than to count: the start of
	// our latest failed probe (or our last announcement heard, if no probe
	// failed).
	since time.Time
	// probeOnly: the peer still announces, so only a successful probe
	// counts (it announces but does not answer).
	probeOnly bool
	// probe: the members asked probe the peer themselves when what they
	// have is older than since (bounded probing), or ping it (the ping
	// protocol). Their answers to the request then do not settle it: only
	// the deadline does, or every one of them reporting its ping failed.
	probe    bool
	asked    []string // member IDs
	answered []bool
	// failed: the member asked pinged the peer itself and the ping failed
	// (Evidence.Failed). A confirmation by pings ends when all have.
	failed []bool
}

// armSilence schedules the next silence check of st: when its next
// announcement is late (LateAfter), or else when it expires (ExpireAfter).
// A check that finds the peer heard since re-arms itself, so the hot path
// pushes no task; only an announcement that ends a late silence does.
func (g *Group) armSilence(id string, st *peerState, now time.Time) {
	st.lateProbed = false
	var at time.Time
	if g.cfg.LateAfter > 0 && !(st.pings && g.pinging()) {
		at = g.time(st.lastHeard).Add(g.cfg.LateAfter)
	}
	g.pushSilence(id, st, at)
}

// pushSilence schedules st's silence check at, or at its expiry if that is
// sooner or at is zero; any other silence task becomes stale.
func (g *Group) pushSilence(id string, st *peerState, at time.Time) {
	if expire := g.expireAfter(st); expire > 0 {
		if exp := g.time(st.lastHeard).Add(expire); at.IsZero() || exp.Before(at) {
			at = exp
		}
	}
	if at.IsZero() {
		return // neither late probes nor expiry
	}
	st.silenceAt = g.at(at)
	g.sched.push(task{at: st.silenceAt, kind: taskSilence, id: id, gen: st.gen})
}

// silence runs when st may have gone silent. A member silent for
// ExpireAfter is removed. One silent for LateAfter is probed at once, once
// per silence; under bounded probing only a ProbeFanout/N share of the
// members do so, so that a lost announcement does not bring a probe from
// everyone.
func (g *Group) silence(id string, st *peerState, now time.Time) {
	silent := now.Sub(g.time(st.lastHeard))
	if expire := g.expireAfter(st); expire > 0 && silent >= expire {
		g.log.Debug("peer expired", "peer", id, "silent", silent)
		g.remove(id, st, Expired, now)
		return
	}
	late := g.cfg.LateAfter
	if st.pings && g.pinging() {
		late = 0 // pinged, not expected to announce each interval
	}
	if late <= 0 || st.lateProbed {
		g.pushSilence(id, st, time.Time{})
		return
	}
	if silent < late {
		g.pushSilence(id, st, g.time(st.lastHeard).Add(late))
		return
	}
	st.lateProbed = true
	g.pushSilence(id, st, time.Time{})
	if g.bounded && rand.Float64()*float64(g.members()) >= float64(g.cfg.ProbeFanout) {
		return
	}
	g.log.Trace("late", "peer", id, "silent", silent)
	g.probe(id, st, now)
}

// startConfirm asks up to Confirmers healthy members whether they have
// seen st alive since our failed probe, and reports whether it did: false
// means there is nobody to ask, or st never joined, and the verdict
// stands. Only members are worth a confirmation: a flood of forged peers
// must not become a flood of requests.
func (g *Group) startConfirm(id string, st *peerState, now time.Time) bool {
	if g.cfg.Confirmers < 0 || !st.joined {
		return false // a peer never healthy goes without asking anyone
	}
	pingable := g.pingable(st)
	k := g.cfg.Confirmers
	if pingable {
		k = max(k, pingConfirmers)
	}
	helpers := g.pickHelpers(id, k, pingable)
	if len(helpers) == 0 {
		return false
	}
	g.seq++
	c := &confirmation{seq: g.seq, probe: g.bounded || pingable, asked: helpers, answered: make([]bool, len(helpers)), failed: make([]bool, len(helpers))}
	if pingable {
		// Our ping failed: anything heard since it started refutes it.
		c.since = g.time(st.failedStart)
	} else if st.failedStart == 0 {
		c.since = g.time(st.lastHeard)
	} else {
		c.since = g.time(st.failedStart)
		c.probeOnly = st.lastHeard > st.failedStart
	}
	st.confirm = c
	g.stats.confirms.Add(1)
	g.log.Debug("confirming death", "peer", id, "asking", helpers, "probe_only", c.probeOnly)
	g.ask(id, st, now)
	g.sched.push(task{at: g.at(now.Add(g.cfg.ConfirmTimeout / 2)), kind: taskConfirm, id: id, gen: c.seq})
	g.sched.push(task{at: g.at(now.Add(g.cfg.ConfirmTimeout)), kind: taskConfirmed, id: id, gen: c.seq})
	return true
}

// pickHelpers chooses up to k healthy joined members other than id, at
// random (reservoir sampling), that can be reached by unicast and are known
// to speak the extensions (peerState.extended): an original pir peer never
// answers a Confirm, and asking one would leave the confirmation waiting
// for nothing. pings asks for members that answer pings, which ping the
// peer themselves.
func (g *Group) pickHelpers(id string, k int, pings bool) []string {
	var picked []string
	n := 0
	for hid, h := range g.peers {
		if hid == id || !h.extended || pings && !h.pings || !h.joined || h.member.Verdict != score.Healthy || h.confirm != nil || !h.member.Addr.IsValid() {
			continue
		}
		n++
		if len(picked) < k {
			picked = append(picked, hid)
		} else if j := rand.IntN(n); j < k {
			picked[j] = hid
		}
	}
	return picked
}

// speaksExtensions reports whether m shows that its sender is no original
// pir peer: the codec says it was written in a form only the extensions
// write (codec.Message.Extended), or its kind is one no original knows.
// pickHelpers asks only such members. A member learns it of those that
// joined before it from their answers to its query, which are sent in the
// extension form, and of those that join after it from their queries.
func speaksExtensions(m *codec.Message) bool {
	return m.Extended || m.Kind != codec.Announce
}

// ask sends the Confirm to every member asked that has not answered.
func (g *Group) ask(id string, st *peerState, now time.Time) {
	c := st.confirm
	m := codec.Message{Kind: codec.Confirm, Group: g.cfg.Name, ID: g.me().ID, Target: id, Since: now.Sub(c.since), Probe: c.probe}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		g.log.Debug("encode confirm failed", "error", err)
		return
	}
	for i, hid := range c.asked {
		if h := g.peers[hid]; h != nil && !c.answered[i] {
			g.sendTo(b, h.member.Addr)
		}
	}
}

// confirmed ends a confirmation nobody refuted: the peer is dead. Under
// bounded probing most members do not probe it, so we tell them.
func (g *Group) confirmed(id string, st *peerState, now time.Time) {
	st.confirm = nil
	if g.pingable(st) {
		g.deathRoundFailed(id, st, now)
		return
	}
	bounded := g.bounded
	g.remove(id, st, Failed, now)
	if !bounded {
		return
	}
	b, err := g.cfg.Codec.Encode(nil, &codec.Message{Kind: codec.Obituary, Group: g.cfg.Name, ID: g.me().ID, Target: id})
	if err == nil {
		err = g.send(b)
	}
	if err != nil {
		g.log.Debug("obituary failed", "peer", id, "error", err)
	}
}

// takeEvidence weighs a member's answer to our Confirm. Evidence newer than
// our failed probe keeps the peer: what failed was our path to it, not the
// peer. Answers from members not asked, or not from the address the member
// is known by, are ignored.
func (g *Group) takeEvidence(in inbound) {
	m := &in.msg
	if !g.fromMember(&in) {
		return
	}
	st := g.peers[m.Target]
	if st == nil || st.confirm == nil {
		return
	}
	c := st.confirm
	i := slices.Index(c.asked, m.ID)
	if i < 0 {
		return
	}
	alive := m.Probed >= 0 && in.at.Add(-m.Probed).After(c.since) ||
		!c.probeOnly && m.Heard >= 0 && in.at.Add(-m.Heard).After(c.since)
	if alive {
		g.log.Debug("death refuted", "peer", m.Target, "by", m.ID, "heard", m.Heard, "probed", m.Probed)
		g.stats.refutes.Add(1)
		st.confirm = nil
		if g.pingable(st) {
			delete(g.pg.dying, m.Target)
			return
		}
		// Another member's successful probe counts as ours would.
		st.tracker.Observe(score.Observation{Event: score.ProbeOK, At: in.at})
		if g.assess(m.Target, st, in.at) && st.nextProbe == 0 && !st.probing && !st.queued && g.chained(st) {
			g.probeAt(m.Target, st, in.at.Add(g.cfg.SuspectProbeInterval))
		}
		return
	}
	c.answered[i] = true
	if m.Failed {
		c.failed[i] = true
	}
	if !c.probe && !slices.Contains(c.answered, false) || c.probe && !slices.Contains(c.failed, false) {
		g.confirmed(m.Target, st, in.at)
	}
}

// answerConfirm tells the member that asked what we know of the target. If
// it asks us to probe and what we have is older than it needs, we probe the
// target now and tell it again if the probe succeeds. A target we do not
// track gets an answer that says so. Only a joined member's request sent by
// unicast from its own address is answered (fromMember), so that the
// answer, and the later news of tellAskers, never go to a forged source.
func (g *Group) answerConfirm(in inbound) {
	m := &in.msg
	if !in.src.IsValid() || g.cfg.Passive || !g.fromMember(&in) || !g.mayAnswer(in) {
		return
	}
	reply := codec.Message{Kind: codec.Evidence, Group: g.cfg.Name, ID: g.me().ID, Target: m.Target, Heard: -1, Probed: -1}
	if m.Target == reply.ID {
		reply.Heard, reply.Probed = 0, 0
	} else if st := g.peers[m.Target]; st != nil {
		reply.Heard = in.at.Sub(g.time(st.lastHeard))
		if st.lastProbeOK != 0 {
			reply.Probed = in.at.Sub(g.time(st.lastProbeOK))
		}
		if m.Probe && (reply.Probed < 0 || reply.Probed >= m.Since) {
			if as := g.askers[m.Target]; len(as) < maxAskers && !slices.Contains(as, in.src) {
				if g.askers == nil {
					g.askers = make(map[string][]netip.AddrPort)
				}
				g.askers[m.Target] = append(as, in.src)
			}
			if g.pingable(st) {
				// Our own ping: its ack or failure is news for the askers
				// (pingAcked, pingFailed). One in flight already will do.
				g.startPing(m.Target, g.pingAddr(m.Target, st), st.gen, pingHelper, in.at)
			} else {
				defer g.probe(m.Target, st, in.at)
			}
		}
	}
	b, err := g.cfg.Codec.Encode(nil, &reply)
	if err != nil {
		g.log.Debug("encode evidence failed", "error", err)
		return
	}
	g.sendTo(b, in.src)
}

// maxAskers bounds the members waiting for our probe of one peer.
const maxAskers = 8

// tellAskers sends the members that asked us to probe st the news of a
// successful probe.
func (g *Group) tellAskers(id string, st *peerState, now time.Time) {
	as := g.askers[id]
	if len(as) == 0 {
		return
	}
	m := codec.Message{Kind: codec.Evidence, Group: g.cfg.Name, ID: g.me().ID, Target: id, Heard: now.Sub(g.time(st.lastHeard)), Probed: 0}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err == nil {
		for _, a := range as {
			g.sendTo(b, a)
		}
	}
	delete(g.askers, id)
}

// takeObituary removes a member another member found dead, unless we have
// heard or probed it within LateAfter: an obituary cannot remove a member
// that announces. A member we ping is removed instead ObituaryGrace later,
// unless heard after the obituary's since meanwhile (suspect). One about
// ourselves is answered with an announcement at once (and, when we ping,
// refuteCopies in all, refuteAgain apart), so that members that took it hear us
// again. Only a joined member's obituary, from the address it is known by,
// counts.
func (g *Group) takeObituary(in inbound) {
	m := &in.msg
	if !g.fromMember(&in) {
		return
	}
	if m.Target == g.me().ID {
		if g.announce != nil && in.at.Sub(g.refuted) > g.cfg.AnnounceInterval/4 {
			g.refuted = in.at
			g.announceNow()
			if g.pinging() {
				// More copies: the obituary's removal waits
				// ObituaryGrace, and lost refutations must not let it
				// happen.
				for i := 1; i < refuteCopies; i++ {
					g.sched.push(task{at: g.at(in.at.Add(time.Duration(i) * refuteAgain)), kind: taskRefute})
				}
			}
		}
		return
	}
	st := g.peers[m.Target]
	if st == nil {
		return
	}
	if g.pingable(st) {
		g.suspect(m.Target, st, in.at.Add(-m.Since), in.at)
		return
	}
	latest := max(st.lastHeard, st.lastProbeOK)
	late := g.cfg.LateAfter
	if late <= 0 {
		late = g.cfg.AnnounceInterval
	}
	if in.at.Sub(g.time(latest)) < late {
		return
	}
	g.log.Debug("obituary", "peer", m.Target, "from", m.ID)
	g.stats.obits.Add(1)
	g.remove(m.Target, st, Failed, in.at)
}

// answerBurst is the burst Config.AnswerRate allows.
const answerBurst = 32

// mayAnswer reports whether the source of in may have an answer now, and
// counts the request when it may not.
func (g *Group) mayAnswer(in inbound) bool {
	if g.answers.allow(in.src.Addr(), in.at) {
		return true
	}
	g.stats.drop(DropAnswerLimited)
	return false
}

// assess asks the policy about st and acts on the answer. It reports
// whether st is still tracked.
func (g *Group) assess(id string, st *peerState, now time.Time) bool {
	g.feedAlive(st, now)
	a := st.tracker.Assess(now)
	switch {
	case a.Verdict == score.Dead && st.confirm == nil && !g.startConfirm(id, st, now):
		g.remove(id, st, Failed, now)
		return false
	case a.Verdict == score.Dead:
		a.Verdict = score.Suspect // until the other members have answered
	case st.confirm != nil:
		st.confirm = nil // the policy changed its mind: a probe answered
	}
	if a.Health == st.member.Health && a.Verdict == st.member.Verdict {
		return true
	}
	g.mu.Lock()
	prev := st.member
	st.member.Health, st.member.Verdict = a.Health, a.Verdict
	if st.joined {
		g.emit(Event{Type: HealthChanged, Member: st.member, Prev: prev, At: now})
	}
	g.mu.Unlock()
	return true
}
