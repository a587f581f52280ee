package discovery

import (
	"cmp"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// This file holds the ping protocol of docs/design/frugal.md (section 2.1),
// on while Config.PingInterval > 0 and the transport's unicast reaches
// exactly one member (transport.UniqueUnicast): every PingInterval a member
// pings the member whose turn it is in the ring rotation (nextPing), by
// unicast on the Group's own socket; the ping is sent again at
// PingTimeout/3 and 2/3, and fails at PingTimeout, or RefusedGrace after its first send once the target's host
// refused it (transport.Packet.Refused). What a failure does is in
// liveness.go. Ping state lives here, on the Group, not in peerState.

// pinger is the Group's ping state, owned by the owner goroutine.
type pinger struct {
	// ring is the pingable members and us, in ringRank order, made anew
	// when members join or go (ringStale) and at least every ringMaxAge
	// PingIntervals; me is our place in it.
	ring      []string
	ranked    []rankedID // makeRing's scratch
	me        int
	ringStale bool
	ringAt    instant
	phase     time.Duration      // where in each PingInterval we ping: from our ID
	flights   map[string]*flight // pings in flight, by target ID
	seq       uint32             // numbers flights and deaths: their tasks carry it in gen
	armed     bool               // a taskPing is scheduled

	// loss is f of docs/design/frugal.md: the share of our round's acked
	// pings that needed a resend, an exponentially weighted average over
	// about lossWindow acks (a ping that failed may be a death, not loss).
	// It sets how many failed rounds a death needs.
	loss   float64
	dying  map[string]*death    // deaths being established, by member ID
	graces map[string]obitGrace // obituaries waiting for their grace, by member ID

	// neigh is the transport's, nil if it has none; confirm is the
	// addresses acked since our last ping, to confirm again then
	// (confirmAgain), at most maxConfirm.
	neigh   transport.NeighbourConfirmer
	confirm []netip.AddrPort

	reconnect []recheck // members removed as Failed, oldest first
	recNext   int       // the next of them to ping
	recArmed  bool      // a taskReconnect is scheduled
}

// death is a member whose ping failed, while the rounds that decide its
// death run: each a direct ping and a confirmation, deathRoundGap apart.
type death struct {
	seq    uint32
	gen    uint32    // the member's peerState gen
	since  time.Time // when the first failed ping started
	rounds int       // rounds failed
	obits  int       // copies of the obituary sent
}

// obitGrace is an obituary whose removal waits ObituaryGrace.
type obitGrace struct {
	gen   uint32  // the member's peerState gen
	since instant // the member heard after this is alive
}

// recheck is a member removed as Failed, pinged now and then in case a
// partition healed.
type recheck struct {
	id   string
	addr netip.AddrPort
	at   time.Time // removed
}

// Constants of the death rounds (docs/design/frugal.md, section 2.1).
const (
	deathRoundGap = 250 * time.Millisecond // between a failed round and the next
	obitCopies    = 3                      // an obituary is sent 3 times,
	obitGap       = 100 * time.Millisecond // this far apart
	refuteAgain   = 70 * time.Millisecond  // a refutation's later copies, this far apart
	refuteCopies  = 3                      // copies of a refutation, within the grace
	// lossWindow is how many acks the loss average spans: few enough
	// that a LAN turning lossy raises the rounds a death needs within
	// seconds (at 30 % loss, to 2 after 2 acks and 3 after about 10).
	// The lab's 30 % loss soak (e2e TestLossNoFalseRemovals) removed a
	// live member when it spanned 100 acks: R stayed at 1 for the first
	// half minute of loss.
	lossWindow = 16
	// pingConfirmers is how many members are asked to ping a member whose
	// ping failed, at the least: they ask at once, in parallel, so more
	// of them cost a few datagrams on a death and no time, and at 30 %
	// loss each more one halves the odds that none of them reaches it.
	pingConfirmers = 5
	maxReconnect   = 256 // members on the reconnect list
)

// initialPingLoss is the loss estimate a Group starts with: zero, but
// tests of the rounds set it (ping_export_test.go).
var initialPingLoss float64

// pingWhy says what a ping is for, and so what its result does.
type pingWhy uint8

const (
	pingRound   pingWhy = iota + 1 // the round's ping
	pingHelper                     // a confirmation asked us (answerConfirm)
	pingDeath                      // a further round of a death (liveness.go)
	pingRecheck                    // a member on the reconnect list
)

// flight is one ping in flight: all its sends carry the same nonce.
type flight struct {
	seq     uint32
	gen     uint32 // the target's peerState gen when it started; 0 for a reconnect
	addr    netip.AddrPort
	nonce   uint32
	start   instant
	sent    int     // datagrams sent
	refused instant // when the target's host refused it; 0: not refused
	why     pingWhy
}

// maxFlights bounds the pings in flight: the round's, the helpers' and the
// deaths' ones. Past it a helper answers from memory only.
const maxFlights = 64

// pingable reports whether st is a member we ping: joined, it said it
// answers pings, and we run the protocol.
func (g *Group) pingable(st *peerState) bool {
	return st.joined && st.pings && st.member.Addr.IsValid() && g.pinging()
}

// armPing schedules our next ping: at our phase of the next PingInterval
// of the wall clock (pingSlot).
func (g *Group) armPing(now time.Time, first bool) {
	if g.pg.armed || !g.pinging() {
		return
	}
	g.pg.armed = true
	pi := int64(g.cfg.PingInterval)
	if first {
		g.pg.loss = initialPingLoss
		g.pg.phase = time.Duration(ringRank(g.me().ID) % uint64(pi))
	}
	wall := now.UnixNano() - int64(g.pg.phase)
	d := time.Duration((wall/pi+1)*pi - wall)
	if !first && d < g.cfg.PingInterval/2 {
		// Our timer fired a little before the interval began (the wall
		// clock slewed): that interval's ping went now.
		d += g.cfg.PingInterval
	}
	g.sched.push(task{at: g.at(now.Add(d)), kind: taskPing})
}

// pingSlot numbers the PingInterval of the wall clock that now falls in,
// counted from the Unix epoch and shifted by our phase; a timer a little
// late or early still names its own.
func (g *Group) pingSlot(now time.Time) uint64 {
	pi := int64(g.cfg.PingInterval)
	return uint64((now.UnixNano() - int64(g.pg.phase) + pi/2) / pi)
}

// ringMaxAge is how many PingIntervals a ring serves at most: members that
// turn pingable (or not) without joining or going get their turn by then.
const ringMaxAge = 10

// ringRank is a member's place in the ring: FNV-1a 64 of its ID.
func ringRank(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// makeRing makes the ring anew when it is stale or old.
func (g *Group) makeRing(now time.Time) {
	if !g.pg.ringStale && g.pg.ring != nil && now.Sub(g.time(g.pg.ringAt)) < ringMaxAge*g.cfg.PingInterval {
		return
	}
	// Each ID's rank is hashed once, not at each comparison.
	self := g.me().ID
	ranked := append(g.pg.ranked[:0], rankedID{ringRank(self), self})
	for id, st := range g.peers {
		if g.pingable(st) {
			ranked = append(ranked, rankedID{ringRank(id), id})
		}
	}
	slices.SortFunc(ranked, func(a, b rankedID) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.id, b.id))
	})
	ring := g.pg.ring[:0]
	for i, r := range ranked {
		ring = append(ring, r.id)
		if r.id == self {
			g.pg.me = i
		}
		ranked[i].id = "" // keep no ID alive past its member
	}
	g.pg.ring, g.pg.ranked, g.pg.ringStale, g.pg.ringAt = ring, ranked, false, g.at(now)
}

// rankedID is a member of the ring while it is made.
type rankedID struct {
	rank uint64
	id   string
}

// ringChanged notes that a member joined or went: the ring is made anew
// before our next ping.
func (g *Group) ringChanged() { g.pg.ringStale = true }

// pingAddr is where to ping member id: its IPv4 address when it is heard
// on both families, whether by its primary path or by the other one
// (noteAlt). One family per member means one neighbour entry per member,
// kept reachable by the acks (transport.NeighbourConfirmer) where two
// would each go stale and be re-probed; and IPv4 frames are 20 bytes
// shorter.
func (g *Group) pingAddr(id string, st *peerState) netip.AddrPort {
	if st.member.Addr.Addr().Unmap().Is4() {
		return st.member.Addr
	}
	if a, ok := g.alt[id]; ok && a.st == st && a.addr.Addr().Unmap().Is4() {
		return a.addr
	}
	return st.member.Addr
}

// nextPing pings the member whose turn it is (docs/design/frugal.md,
// section 2.1): in slot s (pingSlot) of a ring of M (the pingable members
// and us, by ringRank), the member s mod (M-1) + 1 places after us, or,
// when that one may not be pinged now (in flight, its death being
// confirmed), the next after it. While members see the same ring and
// their clocks agree, each member is pinged once a PingInterval, by a
// different member each time, so that a dead one is pinged within two
// intervals (shuffled rounds, SWIM's and memberlist's order, leave it to
// chance: the wait is about exponential, 2.2 s or more one time in ten).
// Whatever the views and clocks, we ping every other member once in any
// M-1 slots of a ring that stays, as a round does.
//
// A member that joins here moves our place in the rotation at random, and
// more joins may move it again before its turn: a member that missed a
// join learns the newcomer from the newcomer's ping (who=1), and members
// started together would wait rounds for it. So a member that joined here
// other than from a page of our own transfer is also pinged once at a
// random point of the next (M-1)/2 intervals (welcomeJoin), as shuffled
// rounds put a newcomer at a random place of the round; that costs one
// ping a join, and nothing in a group that stays. The round's ping is one
// at a time: one still in flight skips this turn.
func (g *Group) nextPing(now time.Time) {
	defer g.armPing(now, false)
	g.confirmAgain()
	for _, f := range g.pg.flights {
		if f.why == pingRound {
			return
		}
	}
	g.makeRing(now)
	m := uint64(len(g.pg.ring))
	if m < 2 {
		return
	}
	s := g.pingSlot(now)
	for i := range m - 1 {
		id := g.pg.ring[(uint64(g.pg.me)+1+(s+i)%(m-1))%m]
		if st := g.peers[id]; g.mayPingNow(id, st) {
			g.startPing(id, g.pingAddr(id, st), st.gen, pingRound, now)
			return
		}
	}
}

// mayPingNow reports whether member id, st, may get a ping of ours now:
// pingable, none in flight, its death neither being confirmed nor
// established.
func (g *Group) mayPingNow(id string, st *peerState) bool {
	return st != nil && g.pingable(st) && g.pg.flights[id] == nil && st.confirm == nil && !g.dying(id, st)
}

// welcomeJoin schedules the welcome ping of st, which just joined here:
// at a random point of the next (M-1)/2 PingIntervals, besides the
// rotation's pings.
func (g *Group) welcomeJoin(id string, st *peerState, now time.Time) {
	if !g.pinging() || !st.pings {
		return
	}
	w := time.Duration(max(1, len(g.peers)/2)) * g.cfg.PingInterval
	g.sched.push(task{at: g.at(now.Add(rand.N(w))), kind: taskWelcome, id: id, gen: st.gen})
}

// welcomePing runs taskWelcome: the member is pinged unless it went,
// changed, or is being pinged already.
func (g *Group) welcomePing(t task, now time.Time) {
	if st := g.peers[t.id]; g.mayPingNow(t.id, st) && st.gen == t.gen {
		g.startPing(t.id, g.pingAddr(t.id, st), st.gen, pingRound, now)
	}
}

// startPing pings id at addr, and reports whether it did: false when a
// ping of id is in flight already or too many are.
func (g *Group) startPing(id string, addr netip.AddrPort, gen uint32, why pingWhy, now time.Time) bool {
	if g.pg.flights[id] != nil || len(g.pg.flights) >= maxFlights {
		return false
	}
	if g.pg.flights == nil {
		g.pg.flights = make(map[string]*flight)
	}
	g.pg.seq++
	f := &flight{seq: g.pg.seq, gen: gen, addr: addr, nonce: rand.Uint32(), start: g.at(now), why: why}
	g.pg.flights[id] = f
	g.stats.pingsSent.Add(1)
	g.sendPing(id, f)
	timeout := g.cfg.PingTimeout
	if n := g.cfg.PingResends; n > 0 {
		for k := 1; k <= n; k++ {
			at := now.Add(timeout * time.Duration(k) / time.Duration(n+1))
			g.sched.push(task{at: g.at(at), kind: taskPingResend, id: id, gen: f.seq})
		}
	}
	g.sched.push(task{at: g.at(now.Add(timeout)), kind: taskPingTimeout, id: id, gen: f.seq})
	return true
}

func (g *Group) sendPing(id string, f *flight) {
	m := codec.Message{Kind: codec.Ping, Group: g.cfg.Name, ID: g.me().ID, Nonce: f.nonce, Version: g.version()}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err != nil {
		g.log.Debug("encode ping failed", "error", err)
		return
	}
	f.sent++
	g.sendTo(b, f.addr)
}

// flightOf returns the ping of id a task was scheduled for, nil when that
// one has ended.
func (g *Group) flightOf(t task) *flight {
	if f := g.pg.flights[t.id]; f != nil && f.seq == t.gen {
		return f
	}
	return nil
}

// pingDue ends a ping that timed out, or whose refusal's grace is over.
func (g *Group) pingDue(t task, now time.Time) {
	f := g.flightOf(t)
	at := g.at(now)
	refusedDue := f.refused != 0 && at >= max(f.refused, f.start+instant(g.cfg.RefusedGrace))
	if !refusedDue && now.Before(g.time(f.start).Add(g.cfg.PingTimeout)) {
		return
	}
	delete(g.pg.flights, t.id)
	g.stats.pingsFailed.Add(1)
	g.log.Debug("ping failed", "peer", t.id, "refused", f.refused != 0, "sent", f.sent)
	g.pingFailed(t.id, f, now)
}

// takeRefusal marks the ping to in.src refused: it fails RefusedGrace after
// its first send unless an ack comes meanwhile. A refusal for an address no
// ping is in flight to is ignored: it is a hint, as easy to forge as any
// ICMP message.
func (g *Group) takeRefusal(in inbound) {
	for id, f := range g.pg.flights {
		if !samePort(f.addr, in.src) || f.refused != 0 {
			continue
		}
		f.refused = g.at(in.at)
		g.stats.pingsRefused.Add(1)
		due := max(f.refused, f.start+instant(g.cfg.RefusedGrace))
		g.sched.push(task{at: due, kind: taskPingTimeout, id: id, gen: f.seq})
	}
}

// samePort reports whether a and b are the same address and port, IPv4
// mapping and zone aside: a ping's ack must come from the very socket the
// ping went to.
func samePort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && hostOf(a.Addr()) == hostOf(b.Addr())
}

// takePing acks a ping, with our record's version: one from a member, by
// unicast from the address it is known by, at once (and a version newer
// than our copy of its record makes us ask for it: repair.go); one from
// a member by another address (its other family), within AnswerRate per
// source; one from an ID we do not know as a member (unknown, or pending
// here) with Who set, so that the pinger tells us who it is, within
// AnswerRate per source. A ping by multicast is spoofed.
func (g *Group) takePing(in inbound) {
	m := &in.msg
	if !in.src.IsValid() || in.dst.IsValid() && in.dst.IsMulticast() {
		g.stats.drop(DropSpoofed)
		return
	}
	reply := codec.Message{Kind: codec.Ack, Group: g.cfg.Name, ID: g.me().ID, Nonce: m.Nonce, Version: g.version()}
	st := g.peers[m.ID]
	switch {
	case st != nil && st.joined && (samePort(st.member.Addr, in.src) || g.isAlt(m.ID, st, in.src)):
	case st != nil && st.joined:
		// A member pings us by the path it knows us by, from its socket of
		// that family: on a dual-stack LAN, often not the path we know it
		// by (each member keeps the path it heard first, or the one its
		// table came with), and we may not have heard its other one yet.
		// Acked as a stranger's ping is, within AnswerRate, but we know
		// who it is, and take nothing else from it.
		if !g.mayAnswer(in) {
			return
		}
		st = nil
	default:
		if !g.mayAnswer(in) {
			return
		}
		reply.Who = true
	}
	b, err := g.cfg.Codec.Encode(nil, &reply)
	if err != nil {
		g.log.Debug("encode ack failed", "error", err)
		return
	}
	g.sendTo(b, in.src)
	switch {
	case reply.Who:
		g.sentWho(in.src, in.at)
	case st != nil:
		g.newerRecord(m.ID, st, m.Version, in.at)
	}
}

// confirmNeighbour tells the transport (transport.NeighbourConfirmer) that
// addr, which has just acked our ping (echoing its nonce: the way there
// works), is reachable, so that the kernel does not probe its neighbour
// entry; and notes it to be told again at our next ping (confirmAgain).
func (g *Group) confirmNeighbour(addr netip.AddrPort) {
	if g.pg.neigh == nil {
		return
	}
	_ = g.pg.neigh.ConfirmNeighbour(addr)
	if len(g.pg.confirm) < maxConfirm {
		g.pg.confirm = append(g.pg.confirm, addr)
	}
}

// maxConfirm bounds the addresses confirmed again at our next ping: the
// round's ping is one at a time, and welcome pings and rechecks are rare.
const maxConfirm = 4

// confirmAgain tells the transport again of the addresses acked since our
// last ping. A ping to an entry gone stale (the kernel's 15 to 45 s of
// reachability, less than the ring's N-1 s between two pings of a pair
// from about 30 members on) puts it in the kernel's delay state, which
// probes after 5 s unless the entry was confirmed in the last 5 s; its
// timer fires late, by up to a quarter second, so a confirmation in the
// same millisecond as the send came too early and the kernel probed all
// the same: at 100 hosts, an ARP request and reply per ping
// (docs/performance.md, session 16). The next ping, a PingInterval later,
// falls within the delay; it costs no wake-up of its own.
func (g *Group) confirmAgain() {
	for _, a := range g.pg.confirm {
		_ = g.pg.neigh.ConfirmNeighbour(a)
	}
	g.pg.confirm = g.pg.confirm[:0]
}

// takeAck ends the ping it answers: only an ack by unicast from the
// target's address, carrying the target's ID and the ping's nonce, counts,
// and only such an ack is a sign of life (signOfLife): an off-path forger
// can send acks from a dead member's address, but not echo a nonce it
// never saw.
func (g *Group) takeAck(in inbound) {
	m := &in.msg
	f := g.pg.flights[m.ID]
	if f == nil || f.nonce != m.Nonce || !samePort(f.addr, in.src) || in.dst.IsValid() && in.dst.IsMulticast() {
		g.stats.drop(DropSpoofed)
		return
	}
	delete(g.pg.flights, m.ID)
	g.stats.acksReceived.Add(1)
	if st := g.peers[m.ID]; st != nil {
		g.signOfLife(m.ID, st, in)
	}
	// The ack echoes our nonce: the way to the target works.
	g.confirmNeighbour(f.addr)
	if f.why == pingRound {
		x := 0.0 // lost: the ack came only after a resend
		if f.sent > 1 {
			x = 1
		}
		g.pg.loss += (x - g.pg.loss) / lossWindow
	}
	g.pingAcked(m.ID, f, m, in.at)
}

// pingAcked records a ping's success, ack its answer: the target is alive
// now. An ack with Who means the target does not know us; one with a
// version newer than our copy of the target's record, that we missed a
// change of it (repair.go).
func (g *Group) pingAcked(id string, f *flight, ack *codec.Message, now time.Time) {
	st := g.peers[id]
	if f.why == pingRecheck {
		g.reconnected(id, now)
		return
	}
	if st == nil || st.gen != f.gen {
		return
	}
	st.lastProbeOK = g.at(now) // our latest proof of life: an ack
	g.tellAskers(id, st, now)
	g.heardAlive(id, st, now)
	if ack.Who && st.joined && !g.cfg.Passive {
		// It does not know us: tell it who we are (a watcher is nobody's
		// member).
		if b, err := g.encodeTo(codec.Announce, true, f.addr, st.member.IfIndex); err == nil {
			g.sendTo(b, f.addr)
		}
	}
	g.newerRecord(id, st, ack.Version, now)
}

// pingFailed acts on a failed ping: the members that asked us to check
// are told; a round's ping, or a death's, starts a confirmation.
func (g *Group) pingFailed(id string, f *flight, now time.Time) {
	st := g.peers[id]
	if st == nil || st.gen != f.gen || f.why == pingRecheck {
		return
	}
	g.tellFailed(id, st, now)
	if f.why == pingHelper || !g.pingable(st) || st.confirm != nil || st.lastHeard > f.start {
		return // heard since it started: alive
	}
	d := g.pg.dying[id]
	if d == nil || d.gen != st.gen {
		// None, or one of an earlier incarnation: removed by another's
		// obituary while ours was under way, it ended with it.
		if g.pg.dying == nil {
			g.pg.dying = make(map[string]*death)
		}
		g.sweepDying()
		g.pg.seq++
		d = &death{seq: g.pg.seq, gen: st.gen, since: g.time(f.start)}
		g.pg.dying[id] = d
	}
	st.failedStart = f.start
	if !g.startConfirm(id, st, now) {
		g.deathRoundFailed(id, st, now) // nobody to ask: our rounds alone
	}
}

// tellFailed sends the members that asked us to check st the news that our
// ping of it failed.
func (g *Group) tellFailed(id string, st *peerState, now time.Time) {
	as := g.askers[id]
	if len(as) == 0 {
		return
	}
	// Heard was in our first answer; a failed check says nothing new of
	// it. (Leaving it out also keeps clear of codec/pipe's encoding of
	// failed=1 followed by heard=, which lacks the '&' on main.)
	m := codec.Message{Kind: codec.Evidence, Group: g.cfg.Name, ID: g.me().ID, Target: id, Heard: -1, Probed: -1, Failed: true}
	if st.lastProbeOK != 0 {
		m.Probed = now.Sub(g.time(st.lastProbeOK))
	}
	if b, err := g.cfg.Codec.Encode(nil, &m); err == nil {
		for _, a := range as {
			g.sendTo(b, a)
		}
	}
	delete(g.askers, id)
}

// rounds is R: how many failed rounds in a row a death needs, by the loss
// our pings see (docs/design/frugal.md, section 2.1).
func (g *Group) rounds() int {
	switch {
	case g.pg.loss < 0.05:
		return 1
	case g.pg.loss < 0.2:
		return 2
	}
	return 3
}

// deathRoundFailed ends a round of id's death that nothing refuted: the
// next round follows, or after the last one the obituary.
func (g *Group) deathRoundFailed(id string, st *peerState, now time.Time) {
	d := g.pg.dying[id]
	if d == nil || d.gen != st.gen {
		return
	}
	d.rounds++
	if d.rounds < g.rounds() {
		g.sched.push(task{at: g.at(now.Add(deathRoundGap)), kind: taskDeathPing, id: id, gen: d.seq})
		return
	}
	g.log.Debug("member dead by pings", "peer", id, "rounds", d.rounds)
	g.sendObituary(task{id: id, gen: d.seq}, now)
	g.suspect(id, st, d.since, now)
}

// deathOf returns the death a task was scheduled for, nil when it ended.
func (g *Group) deathOf(t task) *death {
	if d := g.pg.dying[t.id]; d != nil && d.seq == t.gen {
		return d
	}
	return nil
}

// nextDeathRound pings a dying member again: a round of its own.
func (g *Group) nextDeathRound(t task, now time.Time) {
	d := g.deathOf(t)
	if d == nil {
		return
	}
	st := g.peers[t.id]
	if st == nil || st.gen != d.gen {
		delete(g.pg.dying, t.id)
		return
	}
	if !g.startPing(t.id, g.pingAddr(t.id, st), st.gen, pingDeath, now) {
		// A ping of it is in flight (a helper's): try again after it.
		g.sched.push(task{at: g.at(now.Add(deathRoundGap)), kind: taskDeathPing, id: t.id, gen: d.seq})
	}
}

// sendObituary multicasts a dying member's obituary, with since, and
// schedules the next copy.
func (g *Group) sendObituary(t task, now time.Time) {
	d := g.deathOf(t)
	if d == nil {
		return
	}
	m := codec.Message{Kind: codec.Obituary, Group: g.cfg.Name, ID: g.me().ID, Target: t.id, Since: max(now.Sub(d.since), time.Millisecond)}
	b, err := g.cfg.Codec.Encode(nil, &m)
	if err == nil {
		err = g.send(b)
	}
	if err != nil {
		g.log.Debug("obituary failed", "peer", t.id, "error", err)
	}
	d.obits++
	if d.obits < obitCopies {
		g.sched.push(task{at: g.at(now.Add(obitGap)), kind: taskObituary, id: t.id, gen: d.seq})
		return
	}
	delete(g.pg.dying, t.id)
}

// suspect starts an obituary's grace: id is removed ObituaryGrace from now
// unless it is heard after since meanwhile. A member that hears its own
// obituary answers at once (takeObituary), so this is a suspicion that the
// suspect can end.
func (g *Group) suspect(id string, st *peerState, since, now time.Time) {
	if st.lastHeard > g.at(since) {
		return // heard after the failed ping: alive
	}
	if w, ok := g.pg.graces[id]; ok && w.gen == st.gen {
		return // a grace runs already
	}
	if g.pg.graces == nil {
		g.pg.graces = make(map[string]obitGrace)
	}
	g.pg.graces[id] = obitGrace{gen: st.gen, since: g.at(since)}
	g.sched.push(task{at: g.at(now.Add(g.cfg.ObituaryGrace)), kind: taskObitRemove, id: id, gen: st.gen})
}

// graceOver removes a member whose obituary's grace ended, unless it was
// heard after the obituary's since.
func (g *Group) graceOver(t task, now time.Time) {
	w, ok := g.pg.graces[t.id]
	if !ok || w.gen != t.gen {
		return
	}
	delete(g.pg.graces, t.id)
	st := g.peers[t.id]
	if st == nil || st.gen != w.gen || st.lastHeard > w.since {
		return
	}
	g.log.Debug("obituary", "peer", t.id)
	g.stats.obits.Add(1)
	addr := st.member.Addr
	g.remove(t.id, st, Failed, now)
	g.addReconnect(t.id, addr, now)
}

// heardAlive is told of every sign of life of a pinged member: a datagram
// from its address, or an ack. It ends a death being established.
func (g *Group) heardAlive(id string, st *peerState, now time.Time) {
	if d := g.pg.dying[id]; d != nil && d.gen == st.gen {
		g.log.Debug("dying member heard", "peer", id)
		delete(g.pg.dying, id)
		st.confirm = nil
	}
}

// dying reports whether a death of st, tracked as id, is being
// established. A death of id's earlier incarnation does not count: it ended
// when that one was removed, by another's obituary perhaps, and the member
// back must be pinged in our rounds again.
func (g *Group) dying(id string, st *peerState) bool {
	d := g.pg.dying[id]
	return d != nil && d.gen == st.gen
}

// sweepDying drops the deaths of members gone, so that the table stays
// bounded by the members.
func (g *Group) sweepDying() {
	if len(g.pg.dying) < len(g.peers)+16 {
		return
	}
	for id, d := range g.pg.dying {
		if st := g.peers[id]; st == nil || st.gen != d.gen {
			delete(g.pg.dying, id)
		}
	}
	for id, w := range g.pg.graces {
		if st := g.peers[id]; st == nil || st.gen != w.gen {
			delete(g.pg.graces, id)
		}
	}
}

// addReconnect puts a member removed as Failed on the reconnect list: it is
// pinged every ReconnectInterval in turn with the others, for ReconnectFor,
// so that the halves of a healed partition meet again.
func (g *Group) addReconnect(id string, addr netip.AddrPort, now time.Time) {
	if !g.pinging() || !addr.IsValid() {
		return
	}
	g.pg.reconnect = slices.DeleteFunc(g.pg.reconnect, func(r recheck) bool { return r.id == id })
	if len(g.pg.reconnect) >= maxReconnect {
		g.pg.reconnect = slices.Delete(g.pg.reconnect, 0, 1)
	}
	g.pg.reconnect = append(g.pg.reconnect, recheck{id: id, addr: addr, at: now})
	if !g.pg.recArmed {
		g.pg.recArmed = true
		g.sched.push(task{at: g.at(now.Add(g.cfg.ReconnectInterval)), kind: taskReconnect})
	}
}

// reconnectNext pings the next member of the reconnect list.
func (g *Group) reconnectNext(now time.Time) {
	g.pg.recArmed = false
	g.pg.reconnect = slices.DeleteFunc(g.pg.reconnect, func(r recheck) bool {
		// One heard again but pending stays: its query (reconnected)
		// reached us, ours may not have reached its side.
		st := g.peers[r.id]
		return now.Sub(r.at) > g.cfg.ReconnectFor || st != nil && st.joined
	})
	if len(g.pg.reconnect) == 0 {
		g.pg.reconnect = nil
		return
	}
	r := g.pg.reconnect[g.pg.recNext%len(g.pg.reconnect)]
	g.pg.recNext++
	g.startPing(r.id, r.addr, 0, pingRecheck, now)
	g.pg.recArmed = true
	g.sched.push(task{at: g.at(now.Add(g.cfg.ReconnectInterval)), kind: taskReconnect})
}

// removedAsFailed reports whether id is on the reconnect list: a member we
// removed as Failed within ReconnectFor.
func (g *Group) removedAsFailed(id string) bool {
	return slices.ContainsFunc(g.pg.reconnect, func(r recheck) bool { return r.id == id })
}

// reconnected: a member removed as Failed acked our ping, so a partition
// healed. We multicast a query: the members that hear it track us and
// probe us, as each has us on its reconnect list (mayProbePending). Each
// member of the other side does the same within a ReconnectInterval, so we
// list them all by their queries. The member stays on our list until it
// has joined here again (reconnectNext drops it then): while it is pending
// here, it is one we probe ourselves, since no member that removed it
// vouches for it (each probes it as we do). Dropping it here left it
// pending for good when its answer came after our ack (1 cut in about
// 1,000 of TestCutMemberReunion).
func (g *Group) reconnected(id string, now time.Time) {
	g.log.Debug("removed member answers again", "peer", id)
	if g.announce == nil {
		return
	}
	if err := g.sendSelf(codec.Query, true); err != nil {
		g.log.Debug("query failed", "error", err)
	}
}

// saysPings reports whether m, a member's own announcement or query, says
// that it answers pings. The kinds that reach the hot path are those.
func saysPings(m *codec.Message) bool {
	return m.Pings && (m.Kind == codec.Announce || m.Kind == codec.Query)
}
