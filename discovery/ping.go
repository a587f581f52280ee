package discovery

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// This file holds the ping protocol of docs/design/frugal.md (section 2.1),
// on while Config.PingInterval > 0 and the transport's unicast reaches
// exactly one member (transport.UniqueUnicast): every PingInterval a member
// pings the next member of a shuffled round, by unicast on the Group's own
// socket; the ping is sent again at PingTimeout/3 and 2/3, and fails at
// PingTimeout, or RefusedGrace after its first send once the target's host
// refused it (transport.Packet.Refused). What a failure does is in
// liveness.go. Ping state lives here, on the Group, not in peerState.

// pinger is the Group's ping state, owned by the owner goroutine.
type pinger struct {
	round   []string           // members left in this round, next last
	flights map[string]*flight // pings in flight, by target ID
	seq     uint32             // numbers flights: their tasks carry it in gen
	armed   bool               // a taskPing is scheduled
}

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

// pingOn reports whether this member runs the ping protocol: Config asks
// for it, and the transport's unicast reaches exactly one member.
func (g *Group) pingOn() bool {
	if !g.pinging() {
		return false
	}
	u, ok := g.cfg.Transport.(transport.UniqueUnicast)
	return ok && u.UnicastIsUnique()
}

// pingable reports whether st is a member we ping: joined, it said it
// answers pings, and we run the protocol.
func (g *Group) pingable(st *peerState) bool {
	return st.joined && st.pings && st.member.Addr.IsValid() && g.pingOn()
}

// armPing schedules the next ping of the round, a PingInterval from now
// (the first one at a random point of the first interval, so that members
// that start together do not ping in step).
func (g *Group) armPing(now time.Time, first bool) {
	if g.pg.armed || !g.pingOn() {
		return
	}
	g.pg.armed = true
	d := g.cfg.PingInterval
	if first {
		d = rand.N(d) + 1
	}
	g.sched.push(task{at: g.at(now.Add(d)), kind: taskPing})
}

// nextPing pings the next member of the round, SWIM's way: every pingable
// member once per round, in an order shuffled anew for each round. The
// round's ping is one at a time: one still in flight skips this turn.
func (g *Group) nextPing(now time.Time) {
	defer g.armPing(now, false)
	for _, f := range g.pg.flights {
		if f.why == pingRound {
			return
		}
	}
	for range 2 {
		for len(g.pg.round) > 0 {
			id := g.pg.round[len(g.pg.round)-1]
			g.pg.round[len(g.pg.round)-1] = ""
			g.pg.round = g.pg.round[:len(g.pg.round)-1]
			st := g.peers[id]
			if st == nil || !g.pingable(st) || g.pg.flights[id] != nil || st.confirm != nil || g.dying(id) {
				continue
			}
			g.startPing(id, st.member.Addr, st.gen, pingRound, now)
			return
		}
		for id, st := range g.peers {
			if g.pingable(st) {
				g.pg.round = append(g.pg.round, id)
			}
		}
		if len(g.pg.round) == 0 {
			return
		}
		rand.Shuffle(len(g.pg.round), func(i, j int) { g.pg.round[i], g.pg.round[j] = g.pg.round[j], g.pg.round[i] })
	}
}

// addToRound puts a member that joined mid-round at a random place of the
// round, as memberlist does: a place already passed waits for the next
// round.
func (g *Group) addToRound(id string) {
	if !g.pingOn() {
		return
	}
	i := rand.N(len(g.pg.round) + 1)
	g.pg.round = append(g.pg.round, "")
	copy(g.pg.round[i+1:], g.pg.round[i:])
	g.pg.round[i] = id
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
	m := codec.Message{Kind: codec.Ping, Group: g.cfg.Name, ID: g.self.ID, Nonce: f.nonce}
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

// resendPing sends a ping again while no ack has come.
func (g *Group) resendPing(t task) {
	if f := g.flightOf(t); f != nil {
		g.sendPing(t.id, f)
	}
}

// pingDue ends a ping that timed out, or whose refusal's grace is over.
func (g *Group) pingDue(t task, now time.Time) {
	f := g.flightOf(t)
	if f == nil {
		return
	}
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

// takePing acks a ping: one from a member, by unicast from the address it
// is known by, at once; one from an ID we do not know with Who set, so that
// the pinger tells us who it is, within AnswerRate per source. Anything
// else is spoofed.
func (g *Group) takePing(in inbound) {
	m := &in.msg
	if !in.src.IsValid() || in.dst.IsValid() && in.dst.IsMulticast() {
		g.stats.drop(DropSpoofed)
		return
	}
	reply := codec.Message{Kind: codec.Ack, Group: g.cfg.Name, ID: g.self.ID, Nonce: m.Nonce}
	if st := g.peers[m.ID]; st != nil {
		if !samePort(st.member.Addr, in.src) && !g.isAlt(m.ID, st, in.src) {
			g.stats.drop(DropSpoofed)
			return
		}
	} else {
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
}

// takeAck ends the ping it answers: only an ack by unicast from the
// target's address, carrying the target's ID and the ping's nonce, counts.
func (g *Group) takeAck(in inbound) {
	m := &in.msg
	f := g.pg.flights[m.ID]
	if f == nil || f.nonce != m.Nonce || !samePort(f.addr, in.src) || in.dst.IsValid() && in.dst.IsMulticast() {
		g.stats.drop(DropSpoofed)
		return
	}
	delete(g.pg.flights, m.ID)
	g.stats.acksReceived.Add(1)
	g.pingAcked(m.ID, f, m.Who, in.at)
}

// pingAcked records a ping's success: the target is alive now.
func (g *Group) pingAcked(id string, f *flight, who bool, now time.Time) {
	st := g.peers[id]
	if st == nil || st.gen != f.gen {
		return
	}
	st.lastProbeOK = g.at(now) // our latest proof of life: an ack
	if who && st.joined {
		// It does not know us: tell it who we are.
		if b, err := g.encodeSelf(codec.Announce, true); err == nil {
			g.sendTo(b, f.addr)
		}
	}
}

// pingFailed acts on a failed ping.
func (g *Group) pingFailed(id string, f *flight, now time.Time) {}

// dying reports whether a death of id is being established.
func (g *Group) dying(id string) bool { return false }

// heardAlive is told of every datagram from a pinged member's address.
func (g *Group) heardAlive(id string, st *peerState, now time.Time) {}

// saysPings reports whether m, a member's own announcement or query, says
// that it answers pings. The kinds that reach the hot path are those.
func saysPings(m *codec.Message) bool {
	return m.Pings && (m.Kind == codec.Announce || m.Kind == codec.Query)
}
