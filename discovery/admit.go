package discovery

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/score"
)

// This file holds how the Group admits a pending peer (heard, not yet
// probed successfully) so that forged announcements cost little to their
// victims and to us. docs/architecture.md describes the whole:
//
//   - One member probes a new peer first: the first prober, the member
//     (among the healthy members we know, and us) with the smallest
//     hash of the peer's ID and its own. It tells the group when the probe
//     succeeds (a vouch: an Evidence with Probed 0, by multicast), and the
//     others probe the peer then. A peer heard again half an announce
//     interval after it was first heard is probed by everyone anyway, in
//     case the first prober is dead or sees the group otherwise. A forged
//     announcement sent once draws one connection attempt from the group.
//   - A pending peer's probe is one connection attempt (no hedging). One
//     whose probe failed is probed again only once heard after the
//     failure, and is dropped after a second failure.
//   - At most half of MaxProbes probe pending peers, and at most
//     pendingPerSource of those probe peers heard from one address.
//     Pending peers wait in three lines, by what their source address has
//     done: answered probes, nothing yet, failed recently (or probes
//     running, none answered: suspect). Suspect sources' peers take at
//     most a quarter of MaxProbes, so that a flood from a few addresses
//     leaves slots for a newcomer from another.
//   - A full pending pool makes room for a new peer by dropping the oldest
//     pending peer.

// peerAdmission is what the Group keeps of a pending peer's admission: 8
// bytes, which keep peerState in its size class. Its fields are for the
// health URI of generation gen; another generation starts them afresh.
// Two more fields serve while a peer is pending: member.Joined holds when
// this generation was first heard (join sets it anew), and failedStart
// when its failed probe started.
type peerAdmission struct {
	gen     uint32
	fails   uint8
	cleared bool // it may be probed: we are its first prober, a member vouched for it, or it was heard again
	vouch   bool // we are its first prober: tell the group when a probe succeeds
}

// admitByOwnProbe clears the pending peer st, first heard at now, for a
// probe of ours, which admits it: nobody will vouch for it (a peer that
// answers our who=1, whom the others know; a page's sender, F itself).
func (st *peerState) admitByOwnProbe(now time.Time) {
	st.adm = peerAdmission{gen: st.gen, cleared: true}
	st.member.Joined = now // first heard, as mayProbePending keeps it
}

// admission is the Group's state for admitting pending peers. The owner
// goroutine owns it, except rateMu.
type admission struct {
	// rateMu guards Group.probeRate, which probe goroutines also take
	// tokens from for their hedged attempts.
	rateMu   sync.Mutex
	inflight int                          // probes of pending peers running
	suspects int                          // of which of peers from suspect sources
	sources  map[netip.Addr]*sourceRecord // by source address; bounded by maxSources plus MaxProbes
	order    []string                     // pending peers, oldest first (some may have joined or gone since)
	lines    [3][]string                  // pending peers waiting for a probe slot, by tier (see tier)
}

// sourceRecord is what one source address's pending peers have done.
type sourceRecord struct {
	inflight int     // probes of its pending peers running
	ok       instant // the latest successful probe of a peer heard from it
	failed   instant // the latest failed probe of a pending peer heard from it
}

const (
	// pendingPerSource caps the probes of pending peers from one source
	// address running at once.
	pendingPerSource = 2
	// recentFailure is how long a failed probe of a pending peer puts its
	// source address at the back of the line.
	recentFailure = 30 * time.Second
)

// firstProber reports whether we are the first prober of the peer id: the
// one with the smallest rank among us and the healthy members we know. A
// Passive group, which no member counts, ranks itself only when it knows
// no member.
func (g *Group) firstProber(id string) bool {
	self := g.me().ID
	mine := probeRank(id, self)
	for mid, st := range g.peers {
		if !st.joined || st.member.Verdict != score.Healthy {
			continue
		}
		// Map order is random: this stops at the first member ranked
		// before us, after a few looks on average.
		if r := probeRank(id, mid); g.cfg.Passive || r < mine || r == mine && mid < self {
			return false
		}
	}
	return true
}

// probeRank is member's rank as a prober of peer: FNV-1a 64 of both IDs,
// each preceded by its length.
func probeRank(peer, member string) uint64 {
	h := fnv.New64a()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(peer)))
	h.Write(n[:])
	h.Write([]byte(peer))
	binary.BigEndian.PutUint32(n[:], uint32(len(member)))
	h.Write(n[:])
	h.Write([]byte(member))
	return h.Sum64()
}

// mayProbePending reports whether the pending peer st may be probed now,
// starting its admission afresh when its health URI is new.
func (g *Group) mayProbePending(id string, st *peerState, now time.Time) bool {
	a := &st.adm
	if a.gen != st.gen {
		// A Group that has just started hears the members answer its
		// query: they are new to it only. It probes them all at once, as
		// it must to learn the group quickly, and vouches for none.
		starting := now.Before(g.epoch.Add(time.Second + g.cfg.AnnounceInterval/4))
		// A member we removed as Failed, heard again: a partition or a
		// cut link healed. The members we admitted back since know it
		// already and will never vouch for it; we probe it ourselves,
		// as each member that removed it does.
		back := g.removedAsFailed(id)
		// A starting Group vouches nonetheless when it pings: it learns
		// the members from a page of the state transfer, not from their
		// answers, so whom it holds pending is a newcomer like itself,
		// whose first prober the others may rank it. Before, they held
		// that newcomer pending until its next announcement.
		ranked := !back && (!starting || g.pinging()) && g.firstProber(id)
		*a = peerAdmission{gen: st.gen, cleared: starting || back || ranked, vouch: ranked && !g.cfg.Passive}
		st.member.Joined = now // first heard; no Member of a pending peer is ever shown
	}
	switch {
	case !a.cleared:
		return false // until a member vouches for it, or it is heard again
	case st.failedStart != 0 && st.lastHeard <= st.failedStart:
		return false // until heard again since its failed probe started
	}
	return true
}

// heardPending runs when a pending peer st is heard again: one that waited
// for a vouch is probed once it has been heard for half an announce
// interval, or at once when what we heard answers our who=1 (who:
// repair.go), and one whose probe failed is probed again.
func (g *Group) heardPending(id string, st *peerState, who bool, now time.Time) {
	a := &st.adm
	if a.gen != st.gen || st.probing || st.queued {
		return
	}
	switch {
	case !a.cleared:
		if who || now.Sub(st.member.Joined) >= g.cfg.AnnounceInterval/2 {
			a.cleared = true
			g.probe(id, st, now)
		}
	case st.failedStart != 0 && st.nextProbe == 0:
		g.probe(id, st, now)
	}
}

// takeVouch handles an Evidence about a peer pending here, and reports
// whether it was one. A successful probe (Probed 0) by a member, sent from
// the address we hear that member from, clears the peer for probing.
func (g *Group) takeVouch(in inbound) bool {
	m := &in.msg
	st := g.peers[m.Target]
	if st == nil || st.joined {
		return false
	}
	if m.Probed != 0 || st.adm.gen != st.gen || st.adm.cleared {
		return true
	}
	v := g.peers[m.ID]
	if v == nil || !v.joined || !sameHost(v.member.Addr.Addr(), in.src.Addr()) {
		g.log.Trace("vouch ignored", "peer", m.Target, "by", m.ID, "from", in.src)
		return true
	}
	g.log.Trace("vouched", "peer", m.Target, "by", m.ID)
	st.adm.cleared = true
	g.probe(m.Target, st, in.at)
	return true
}

// sameHost reports whether a and b are one address, zones aside.
func sameHost(a, b netip.Addr) bool {
	return a.IsValid() && hostOf(a) == hostOf(b)
}

// sendVouch tells the group that our probe of the pending peer id
// succeeded.
func (g *Group) sendVouch(id string, st *peerState, now time.Time) {
	m := codec.Message{Kind: codec.Evidence, Group: g.cfg.Name, ID: g.me().ID, Target: id,
		Heard: now.Sub(g.time(st.lastHeard)), Probed: 0}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err == nil {
		err = g.send(b)
	}
	if err != nil {
		g.log.Debug("vouch failed", "peer", id, "error", err)
	}
}

// pendingFailed counts a failed probe of the pending peer st, and reports
// whether st is still tracked: a second failure drops it (no event: it
// never joined).
func (g *Group) pendingFailed(id string, st *peerState, now time.Time) bool {
	st.adm.fails++
	if st.adm.fails < 2 {
		return true
	}
	g.remove(id, st, Failed, now)
	return false
}

// makeRoom drops the oldest pending peer, if any, so that a new one fits,
// and reports whether it did.
func (g *Group) makeRoom(now time.Time) bool {
	for len(g.adm.order) > 0 {
		id := g.adm.order[0]
		g.adm.order[0] = ""
		g.adm.order = g.adm.order[1:]
		if st := g.peers[id]; st != nil && !st.joined {
			g.log.Trace("pending peer dropped for a new one", "peer", id)
			g.stats.drop(DropPeerCap)
			g.remove(id, st, Failed, now)
			return true
		}
	}
	g.adm.order = nil
	return false
}

// tracked records a new pending peer for makeRoom.
func (g *Group) tracked(id string) {
	if len(g.adm.order) >= 2*g.cfg.MaxPending+16 {
		// Forget those that joined or left since.
		kept := g.adm.order[:0]
		for _, p := range g.adm.order {
			if st := g.peers[p]; st != nil && !st.joined {
				kept = append(kept, p)
			}
		}
		clear(g.adm.order[len(kept):])
		g.adm.order = kept
	}
	g.adm.order = append(g.adm.order, id)
}

// queuePending puts the pending peer st in line for a probe, and starts
// what may start.
func (g *Group) queuePending(id string, st *peerState, now time.Time) {
	st.queued = true
	t := g.tier(st.member.Addr.Addr(), now)
	g.adm.lines[t] = append(g.adm.lines[t], id)
	g.startWaiting(now)
}

// Lines of pending peers, by what their source address has done.
const (
	tierAnswered = iota // its latest probe outcome was a success: a member's host, say
	tierUnknown         // nothing yet, or only failures older than recentFailure
	tierSuspect         // a failure within recentFailure, or a probe running and none answered yet
)

// tier is the line a pending peer heard from src waits in.
func (g *Group) tier(src netip.Addr, now time.Time) int {
	r := g.adm.sources[src]
	switch {
	case r == nil:
		return tierUnknown
	case r.ok != 0 && r.ok >= r.failed:
		return tierAnswered
	case r.failed != 0 && now.Sub(g.time(r.failed)) < recentFailure:
		return tierSuspect
	case r.inflight > 0 && r.ok == 0:
		return tierSuspect
	}
	return tierUnknown
}

// pendingCap is the number of probes of pending peers that may run at
// once: half of MaxProbes, the rest kept for members. Peers from suspect
// sources may use half of that, so that a flood from a few addresses
// leaves room for a newcomer from another.
func (g *Group) pendingCap() int { return max(1, g.cfg.MaxProbes/2) }

func (g *Group) suspectCap() int { return max(1, g.cfg.MaxProbes/4) }

// startPending starts the probes of pending peers that wait, line by line,
// while the caps allow. A peer whose source has fallen to a later line
// since it was queued moves there.
func (g *Group) startPending(now time.Time) {
	for t := range g.adm.lines {
		line := g.adm.lines[t]
		kept := line[:0]
		stopped := false
		for i, id := range line {
			if stopped {
				kept = append(kept, line[i:]...)
				break
			}
			st := g.peers[id]
			if st == nil || !st.queued || st.probing {
				if st != nil && !st.probing {
					st.queued = false
				}
				continue // gone, or probing already: drop its place
			}
			src := st.member.Addr.Addr()
			if nt := g.tier(src, now); nt > t {
				g.adm.lines[nt] = append(g.adm.lines[nt], id)
				continue
			}
			switch {
			case g.adm.inflight >= g.pendingCap() || g.inflight >= g.cfg.MaxProbes:
				stopped = true
			case t == tierSuspect && g.adm.suspects >= g.suspectCap():
				stopped = true
			}
			if stopped {
				kept = append(kept, id)
				continue
			}
			if r := g.adm.sources[src]; r != nil && r.inflight >= pendingPerSource {
				kept = append(kept, id) // its source's other peers first
				continue
			}
			if !g.mayStartProbe(now) {
				stopped = true
				kept = append(kept, id)
				continue
			}
			st.queued = false
			g.startProbe(id, st, t == tierSuspect)
		}
		clear(line[len(kept):])
		if len(kept) == 0 {
			kept = nil // let the backing array go
		}
		g.adm.lines[t] = kept
		if stopped {
			return
		}
	}
}

// source returns src's record, making one. The table is bounded: past
// maxSources it forgets first the addresses with nothing to tell, then
// those with only old failures, then all but those with probes running
// (at most MaxProbes).
func (g *Group) source(src netip.Addr, now time.Time) *sourceRecord {
	if r := g.adm.sources[src]; r != nil {
		return r
	}
	if g.adm.sources == nil {
		g.adm.sources = make(map[netip.Addr]*sourceRecord)
	}
	if len(g.adm.sources) >= maxSources {
		for pass := 0; pass < 3 && len(g.adm.sources) >= maxSources/2; pass++ {
			for a, r := range g.adm.sources {
				if r.inflight > 0 {
					continue
				}
				stale := r.failed == 0 || now.Sub(g.time(r.failed)) >= recentFailure
				if pass == 2 || pass == 1 && r.ok == 0 || pass == 0 && r.ok == 0 && stale {
					delete(g.adm.sources, a)
				}
			}
		}
	}
	r := &sourceRecord{}
	g.adm.sources[src] = r
	return r
}

// probeDone updates src's record with a probe's outcome. Only probes of
// pending peers count their failures: a member that dies says nothing of
// the peers its address may bring later.
func (g *Group) probeDone(r probeResult) {
	if !r.pending && r.err != nil {
		return
	}
	s := g.source(r.src, r.at)
	if r.pending {
		g.adm.inflight--
		s.inflight--
	}
	if r.suspect {
		g.adm.suspects--
	}
	if r.err == nil {
		s.ok = g.at(r.at)
	} else {
		s.failed = g.at(r.at)
	}
}

// takeAttempt takes a probe token for a connection attempt beyond a
// probe's first (healthcheck.WithAttemptGate). Probe goroutines call it.
func (g *Group) takeAttempt() bool {
	g.adm.rateMu.Lock()
	defer g.adm.rateMu.Unlock()
	return g.probeRate.take(time.Now(), g.cfg.MaxProbeRate, float64(g.cfg.MaxProbes))
}
