package discovery

import (
	"maps"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/score"
)

// This file holds the owner goroutine, the one that owns the membership:
// its loop, the switch over timed tasks (schedule.go) and the switch over
// messages, which sends each kind to the file that handles it.

// own is the goroutine that owns the membership: it handles messages,
// probe results and timed tasks, one at a time.
func (g *Group) own() {
	defer g.wg.Done()
	now := time.Now()
	if g.announce != nil {
		g.scheduleAnnounce(now)
		g.scheduleBoot(now)
	}
	g.armPing(now, true)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		g.dropStale()
		if at, ok := g.sched.next(); ok {
			timer.Reset(time.Until(g.time(at)))
		} else {
			timer.Stop()
		}
		select {
		case <-g.ctx.Done():
			return
		case in := <-g.inbox:
			g.handle(in)
		case r := <-g.results:
			g.handleProbe(r)
		case ok := <-g.health.checks:
			g.selfChecked(ok, time.Now())
		case u := <-g.updates:
			u.done <- g.takeUpdate(u, time.Now())
		case <-timer.C:
		}
		g.runDue(time.Now())
	}
}

func (g *Group) runDue(now time.Time) {
	due := g.at(now)
	for {
		at, ok := g.sched.next()
		if !ok || at > due {
			return
		}
		t := g.sched.pop()
		if g.stale(t) {
			continue
		}
		switch t.kind {
		case taskAnnounce:
			g.announceDue(now)
		case taskProbe:
			st := g.peers[t.id]
			st.nextProbe = 0
			g.probe(t.id, st, now)
		case taskSilence:
			g.silence(t.id, g.peers[t.id], now)
		case taskConfirm:
			g.ask(t.id, g.peers[t.id], now) // those not answered yet, halfway to the deadline
		case taskConfirmed:
			g.confirmed(t.id, g.peers[t.id], now)
		case taskRound:
			g.roundOn = false
			g.nextInRound(now)
		case taskProbeSlot:
			g.slotArmed = false
			g.startWaiting(now)
		case taskUpdate:
			g.releaseUpdates(t.id, t.gen, now)
		case taskReport:
			g.reportCopy(t.gen)
		case taskRecord:
			g.health.updateDue = false
			g.reportUpdate(now)
		case taskAnswer:
			g.answerDue = false
			g.answerSoon(now)
		case taskPull:
			g.pullsDue(t.at, now)
		case taskServe:
			g.serveQueued(now)
		case taskPing:
			g.pg.armed = false
			g.nextPing(now)
		case taskPingResend:
			g.sendPing(t.id, g.flightOf(t))
		case taskPingTimeout:
			g.pingDue(t, now)
		case taskDeathPing:
			g.nextDeathRound(t, now)
		case taskObituary:
			g.sendObituary(t, now)
		case taskObitRemove:
			g.graceOver(t, now)
		case taskBoot:
			g.bootAnnounce(now)
		case taskRefute:
			g.announceNow()
		case taskReconnect:
			g.reconnectNext(now)
		case taskWelcome:
			g.welcomePing(t, now)
		}
	}
}

// stale reports whether t no longer has work to do, for the kinds whose
// state says so at a glance: its peer, confirmation or ping has gone or
// changed since it was scheduled, or a later one replaced it.
func (g *Group) stale(t task) bool {
	switch t.kind {
	case taskAnnounce:
		return t.at != g.ann.next
	case taskProbe:
		st := g.peers[t.id]
		return st == nil || st.gen != t.gen || t.at != st.nextProbe
	case taskSilence:
		st := g.peers[t.id]
		return st == nil || st.gen != t.gen || t.at != st.silenceAt
	case taskConfirm, taskConfirmed:
		st := g.peers[t.id]
		return st == nil || st.confirm == nil || st.confirm.seq != t.gen
	case taskAnswer:
		return !g.answerDue
	case taskPingResend, taskPingTimeout:
		return g.flightOf(t) == nil
	}
	return false
}

// dropStale pops the stale tasks at the head of the schedule, so that the
// owner's timer is armed for work: a ping's resends and timeout, once its
// ack came (the common case), would otherwise each wake the process for
// nothing, three times per PingInterval (TestAckedPingArmsNoTimer).
func (g *Group) dropStale() {
	for len(g.sched) > 0 && g.stale(g.sched[0]) {
		g.sched.pop()
	}
}

// signOfLife takes a datagram from member id, st, as the sign of life it
// is when it comes from the member's own address while we ping
// (docs/design/frugal.md, section 2.1).
func (g *Group) signOfLife(id string, st *peerState, in inbound) {
	if !g.pinging() || !samePort(st.member.Addr, in.src) {
		return
	}
	st.lastHeard = g.at(in.at)
	if st.pings {
		// Its acks and pings keep its path heard between its
		// announcements, which come once per T(N) (pathSilence).
		st.pathHeard = st.lastHeard
	}
	g.heardAlive(id, st, in.at)
}

func (g *Group) handle(in inbound) {
	if in.forged {
		g.refuteClaim(in)
		return
	}
	if in.refused {
		g.takeRefusal(in)
		return
	}
	m := &in.msg
	st := g.peers[m.ID]
	if st != nil && m.Kind != codec.Ack {
		// An ack is one only when it echoes our ping's nonce (takeAck):
		// anyone can send one from a dead member's address.
		g.signOfLife(m.ID, st, in)
	}
	switch m.Kind {
	case codec.Ping, codec.Ack:
		switch {
		case !g.pinging():
			// We did not say p=1 (selfArgs): drop it as an older pir
			// counts a kind it does not know.
			g.stats.drop(DropMalformed)
		case m.Kind == codec.Ping:
			g.takePing(in)
		default:
			g.takeAck(in)
		}
		return
	case codec.Goodbye:
		switch {
		case st == nil:
		case g.heardAt(m.ID, st, in.src):
			g.remove(m.ID, st, Goodbye, in.at)
		default:
			// A member says goodbye from where it announces; a forger
			// must also take its address, and the member, hearing
			// that, answers (refuteClaim).
			g.stats.drop(DropSpoofed)
		}
		return
	case codec.Query:
		g.answer(in)
		if m.Health == "" && m.Comms == "" {
			return // a watcher's query: nobody to track
		}
	case codec.Confirm:
		g.answerConfirm(in)
		return
	case codec.Evidence:
		// A vouch (probed=0, by multicast) about a peer joined here
		// already, or about ourselves, is news we have: it is neither
		// evidence nor a forgery.
		vouch := m.Probed == 0 && in.dst.IsValid() && in.dst.IsMulticast()
		if !g.takeVouch(in) && !vouch {
			g.takeEvidence(in)
		}
		return
	case codec.Obituary:
		g.takeObituary(in)
		return
	case codec.Offer, codec.Pull, codec.Page:
		g.takeTransfer(in)
		return
	}

	if m.Kind == codec.Announce && !m.Pings && (st == nil || !st.pings) {
		g.heardLegacy(in.at)
	}
	if st == nil {
		g.track(in)
		return
	}
	// A known peer: the hot path. No allocation unless something changed.
	if speaksExtensions(m) && sameAddr(st.member.Addr, in.src) {
		st.extended = true
		// Whether it pings: said in its every extended message. A plain
		// announcement (legacy mode) says nothing either way.
		st.pings = m.Pings
	}
	heard := g.at(in.at)
	st.lastHeard = heard
	st.tracker.Observe(score.Observation{Event: score.Heartbeat, At: in.at})
	if !g.heardRecord(m.ID, st, &in) {
		return // it reported itself dead
	}
	if st.lateProbed {
		g.armSilence(m.ID, st, in.at) // a new silence may be late again
	}
	if !st.joined {
		g.heardPending(m.ID, st, g.answersWho(&in), in.at)
	}
	p := pathOf(in)
	primary := p == st.path
	if primary {
		st.pathHeard = heard
	}
	changed := m.Health != st.health || m.Comms != st.comms || !maps.Equal(m.Meta, st.member.Meta)
	if changed && (primary || in.at.Sub(g.time(st.pathHeard)) > g.pathSilence(m.ID, st)) {
		st.path, st.pathHeard = p, heard
		g.update(st, in)
		return
	}
	// Nothing new; or the same member heard another way (IPv6 as well as
	// IPv4, a second interface), announcing the address it has there.
	// Keep the way we know while it is heard, so the member does not flap
	// between its addresses.
	g.mu.Lock()
	if primary {
		st.member.Addr, st.member.IfIndex = in.src, in.ifIndex
	}
	st.member.LastSeen = in.at
	g.mu.Unlock()
	if !primary {
		g.noteAlt(m.ID, st, in.src)
	}
}
