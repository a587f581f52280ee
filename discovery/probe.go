package discovery

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"time"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
)

// This file holds probe scheduling: starting a probe within MaxProbes and
// MaxProbeRate, the queue of members waiting for a slot, each member's
// chain of probes and what a result does, and bounded probing (a few
// members per interval in a shuffled round, above ProbeAllUpTo).

type probeResult struct {
	id      string
	gen     uint32
	err     error
	rtt     time.Duration
	at      time.Time
	src     netip.Addr // the peer's source address when the probe started
	pending bool       // a probe of a pending peer (admit.go's caps)
	suspect bool       // of a pending peer from a suspect source
}

// probe starts a probe of st, or queues it while the cap on probes in
// flight or on the probe rate is reached. Probes of one peer form a chain:
// each result schedules the next, ProbeInterval after the previous probe
// started (at once if that has passed), so a probe that runs as long as the
// interval delays the next one by nothing.
//
// A pending peer is probed only as admit.go allows (mayProbePending), and
// waits in lines of its own, behind members (queuePending).
func (g *Group) probe(id string, st *peerState, now time.Time) {
	if g.pingable(st) {
		return // a joined member that answers pings: liveness is the pings' (ping.go)
	}
	if !g.assess(id, st, now) {
		return
	}
	switch {
	case st.probing, st.queued:
	case !st.joined:
		if g.mayProbePending(id, st, now) {
			g.queuePending(id, st, now)
		}
	case len(g.waiting[0])+len(g.waiting[1]) > 0 || !g.mayStartProbe(now):
		// Wait in line: joined members before pending peers, so that a
		// flood of forged peers cannot starve the real ones.
		st.queued = true
		q := 1
		if st.joined {
			q = 0
		}
		g.waiting[q] = append(g.waiting[q], id)
		g.startWaiting(now)
	default:
		g.startProbe(id, st, false)
	}
}

// mayStartProbe reports whether a probe may start now, under both caps, and
// if so takes its token.
func (g *Group) mayStartProbe(now time.Time) bool {
	if g.inflight >= g.cfg.MaxProbes {
		return false // a result will free a slot and call startWaiting
	}
	if g.cfg.MaxProbeRate < 0 {
		return true
	}
	g.adm.rateMu.Lock()
	defer g.adm.rateMu.Unlock()
	if g.probeRate.take(now, g.cfg.MaxProbeRate, float64(g.cfg.MaxProbes)) {
		return true
	}
	if !g.slotArmed { // wake when the next token is due
		g.slotArmed = true
		g.sched.push(task{at: g.at(now.Add(g.probeRate.wait(g.cfg.MaxProbeRate))), kind: taskProbeSlot})
	}
	return false
}

// startProbe starts a probe of st. suspect says that st is pending and
// its source suspect (admit.go's tiers).
func (g *Group) startProbe(id string, st *peerState, suspect bool) {
	now := time.Now()
	st.probeStart = g.at(now)
	st.probing = true
	g.inflight++
	r := probeResult{id: id, gen: st.gen, src: st.member.Addr.Addr(), pending: !st.joined, suspect: suspect}
	if r.pending {
		g.adm.inflight++
		g.source(r.src, now).inflight++
	}
	if suspect {
		g.adm.suspects++
	}
	g.wg.Add(1)
	go g.runProbe(r, st.member.HealthURI)
}

// startWaiting starts the probes that waited for a free slot or token:
// joined members first, oldest first; then pending peers (startPending).
func (g *Group) startWaiting(now time.Time) {
	for q := range g.waiting {
		for len(g.waiting[q]) > 0 {
			id := g.waiting[q][0]
			st := g.peers[id]
			if st == nil || !st.queued || st.probing {
				// Gone, or already probing: drop its place in line.
				g.waiting[q] = g.waiting[q][1:]
				if st != nil {
					st.queued = false
				}
				continue
			}
			if !g.mayStartProbe(now) {
				return
			}
			g.waiting[q][0] = ""
			g.waiting[q] = g.waiting[q][1:]
			st.queued = false
			g.startProbe(id, st, false)
		}
		g.waiting[q] = nil // let the backing array go
	}
	g.startPending(now)
}

// runProbe runs one probe and hands r, its result, to the owner. A pending
// peer's probe is one connection attempt (healthcheck.WithoutRetry); every
// further attempt of a member's probe takes a token of MaxProbeRate.
func (g *Group) runProbe(r probeResult, target *url.URL) {
	defer g.wg.Done()
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.ProbeTimeout)
	if r.pending {
		ctx = healthcheck.WithoutRetry(ctx)
	}
	if g.cfg.MaxProbeRate >= 0 {
		ctx = healthcheck.WithAttemptGate(ctx, g.takeAttempt)
	}
	start := time.Now()
	r.err = g.cfg.Prober.Probe(ctx, target)
	cancel()
	r.rtt, r.at = time.Since(start), time.Now()
	select {
	case g.results <- r:
	case <-g.ctx.Done():
	}
}

func (g *Group) handleProbe(r probeResult) {
	g.inflight--
	g.probeDone(r)
	defer g.startWaiting(r.at)
	if r.err != nil {
		g.stats.probesKO.Add(1)
	} else {
		g.stats.probesOK.Add(1)
	}
	st := g.peers[r.id]
	if st == nil || st.gen != r.gen {
		return
	}
	st.probing = false
	if r.err != nil && !st.joined && !g.pendingFailed(r.id, st, r.at) {
		return
	}
	o := score.Observation{Event: score.ProbeOK, At: r.at, RTT: r.rtt}
	if r.err != nil {
		o.Event = score.ProbeFailed
		st.failedStart = st.probeStart
		delete(g.askers, r.id)
		g.log.Debug("probe failed", "peer", r.id, "error", r.err)
	} else {
		st.lastProbeOK = g.at(r.at)
		g.tellAskers(r.id, st, r.at)
	}
	st.tracker.Observe(o)
	if !g.assess(r.id, st, r.at) {
		return
	}
	if g.chained(st) {
		interval := g.cfg.ProbeInterval
		if st.member.Verdict != score.Healthy {
			interval = g.cfg.SuspectProbeInterval
		}
		next := g.time(st.probeStart).Add(interval)
		if next.Before(r.at) {
			next = r.at
		}
		g.probeAt(r.id, st, next)
	}
	if r.err == nil && !st.joined {
		if st.adm.vouch { // first, so that the others probe it the sooner
			st.adm.vouch = false
			g.sendVouch(r.id, st, r.at)
		}
		g.mu.Lock()
		g.join(st, r.at)
		g.mu.Unlock()
		g.welcomeJoin(r.id, st, r.at)
		g.updateMode(r.at)
	}
}

// probeAt schedules st's next probe in its chain; an earlier one still
// scheduled becomes stale.
func (g *Group) probeAt(id string, st *peerState, at time.Time) {
	st.nextProbe = g.at(at)
	g.sched.push(task{at: st.nextProbe, kind: taskProbe, id: id, gen: st.gen})
}

// chained reports whether st's probe chain goes on after a result: always
// unless probing is bounded, where a healthy joined member waits for its
// turn in the round.
func (g *Group) chained(st *peerState) bool {
	return !g.bounded || !st.joined || st.member.Verdict != score.Healthy || st.confirm != nil
}

// updateMode switches between probing every member and bounded probing
// when the number of members crosses ProbeAllUpTo.
func (g *Group) updateMode(now time.Time) {
	b := g.cfg.ProbeAllUpTo >= 0 && g.members() > g.cfg.ProbeAllUpTo
	if b == g.bounded {
		return
	}
	g.bounded = b
	g.log.Debug("probing mode", "bounded", b, "members", g.members())
	if b {
		g.round = nil
		g.armRound(now)
		return
	}
	// Back to probing everyone: restart the chains that bounded probing
	// let end, spread over one interval.
	for id, st := range g.peers {
		if st.nextProbe == 0 && !st.probing && !st.queued {
			g.probeAt(id, st, now.Add(rand.N(g.cfg.ProbeInterval)))
		}
	}
}

func (g *Group) armRound(now time.Time) {
	if g.roundOn || !g.bounded {
		return
	}
	g.roundOn = true
	every := g.cfg.ProbeInterval / time.Duration(max(g.cfg.ProbeFanout, 1))
	g.sched.push(task{at: g.at(now.Add(every)), kind: taskRound})
}

// nextInRound probes the next member of the round, SWIM's way: every
// member once per round, in an order shuffled anew for each round, so that
// each is probed within two rounds and the load is even.
func (g *Group) nextInRound(now time.Time) {
	if !g.bounded {
		return
	}
	defer g.armRound(now)
	for range 2 {
		for len(g.round) > 0 {
			id := g.round[len(g.round)-1]
			g.round = g.round[:len(g.round)-1]
			st := g.peers[id]
			if st == nil || !st.joined || st.probing || st.queued {
				continue
			}
			g.probe(id, st, now)
			return
		}
		for id, st := range g.peers {
			if st.joined {
				g.round = append(g.round, id)
			}
		}
		rand.Shuffle(len(g.round), func(i, j int) { g.round[i], g.round[j] = g.round[j], g.round[i] })
	}
}
