package discovery

import (
	"net/netip"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// This file holds the repair through pings of docs/design/frugal.md
// (section 2.3.4). A pinging member's announcements come once per T(N),
// so a member that missed a multicast (a join, a health report) would not
// learn it for minutes; pings and acks carry the sender's record version
// (v), and the IDs they carry name their senders, so every ping exchange
// is a chance to notice and repair it:
//
//   - a ping or ack from a member whose v is newer than our copy of its
//     record makes us ask it, by a unicast query from our own address to
//     the address we know it by; a member answers a unicast query from a
//     member it knows with its extended announcement, by unicast;
//   - a ping from an ID we do not know as a member is acked with who=1
//     (ping.go); the pinger then sends us its extended announcement by
//     unicast, and we admit it with one probe of our own when we sent who=1
//     to its address within whoWindow: nobody else will vouch for it, since
//     the others know it. Any other unsolicited announcement goes through
//     the usual admission rules (admit.go).

// Bounds of the repair.
const (
	// whoWindow is how long after our who=1 to an address an announcement
	// from that address is taken as its answer.
	whoWindow = 2 * time.Second
	// maxWho bounds the who=1 acks remembered.
	maxWho = 256
	// askAgain is how soon we ask a member for its record again.
	askAgain = time.Second
)

// repairState is the Group's state for the repair. The owner goroutine
// owns it.
type repairState struct {
	who   map[netip.AddrPort]instant // our who=1 acks, by destination (hostOf form), when sent
	asked map[string]instant         // our repair queries, by member ID, when sent
}

// whoKey is the form an address is remembered by: IPv4 mapping and zone
// aside, port kept (the pinger's announcement comes from the socket its
// ping came from).
func whoKey(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(hostOf(a.Addr()), a.Port()) }

// sentWho remembers that we acked a ping from dst with who=1.
func (g *Group) sentWho(dst netip.AddrPort, now time.Time) {
	at := g.at(now)
	if len(g.rep.who) >= maxWho {
		for k, t := range g.rep.who {
			if g.time(t).Add(whoWindow).Before(now) {
				delete(g.rep.who, k)
			}
		}
		if len(g.rep.who) >= maxWho {
			return // a flood of strangers: their announcements take the usual rules
		}
	}
	if g.rep.who == nil {
		g.rep.who = make(map[netip.AddrPort]instant)
	}
	g.rep.who[whoKey(dst)] = at
}

// answersWho reports whether in, an announcement by unicast, answers a
// who=1 of ours sent within whoWindow, and forgets that who=1: it admits
// one announcement.
func (g *Group) answersWho(in *inbound) bool {
	if in.msg.Kind != codec.Announce || !in.dst.IsValid() || in.dst.IsMulticast() {
		return false
	}
	k := whoKey(in.src)
	t, ok := g.rep.who[k]
	if !ok {
		return false
	}
	delete(g.rep.who, k)
	return !g.time(t).Add(whoWindow).Before(in.at)
}

// newerRecord runs on a ping or an ack from the member id (checked to be
// from its address): when it carries a record version newer than our copy,
// we missed a report or an announcement, and ask the member for its
// record by a unicast query, at most once per askAgain.
func (g *Group) newerRecord(id string, st *peerState, v uint32, now time.Time) {
	if v == 0 || v <= st.version || !st.joined || !st.member.Addr.IsValid() {
		return
	}
	at := g.at(now)
	if t, ok := g.rep.asked[id]; ok && now.Sub(g.time(t)) < askAgain {
		return
	}
	if g.rep.asked == nil {
		g.rep.asked = make(map[string]instant)
	}
	if len(g.rep.asked) >= len(g.peers)+16 {
		for k, t := range g.rep.asked {
			if g.peers[k] == nil || now.Sub(g.time(t)) >= askAgain {
				delete(g.rep.asked, k)
			}
		}
	}
	g.rep.asked[id] = at
	b, err := g.encodeTo(codec.Query, false, st.member.Addr, st.member.IfIndex)
	if err != nil {
		g.log.Debug("encode query failed", "error", err)
		return
	}
	g.log.Debug("record newer than ours: asking", "peer", id, "v", v, "ours", st.version)
	g.sendTo(b, st.member.Addr)
}

// answerDirect answers a query that came by unicast: from a joined member,
// from an address we know it by, with our extended announcement by unicast
// back to it, within AnswerRate. It reports whether in came by unicast:
// such a query is never answered by multicast or by a transfer.
func (g *Group) answerDirect(in inbound) bool {
	if !in.dst.IsValid() || in.dst.IsMulticast() {
		return false
	}
	st := g.peers[in.msg.ID]
	if st == nil || !st.joined || !samePort(st.member.Addr, in.src) && !g.isAlt(in.msg.ID, st, in.src) {
		g.stats.drop(DropSpoofed)
		return true
	}
	if !g.mayAnswer(in) {
		return true
	}
	b, err := g.encodeTo(codec.Announce, true, in.src, in.ifIndex)
	if err != nil {
		g.log.Debug("encode announcement failed", "error", err)
		return true
	}
	g.sendTo(b, in.src)
	return true
}

// encodeTo encodes our message of the given kind for a unicast to dst,
// which reaches us by interface ifIndex (0: unknown): when our URIs name
// no address, they carry the address of the link that leads to dst (that
// interface's, or else the first usable one of dst's family), as our
// announcements on that link do.
func (g *Group) encodeTo(kind codec.Kind, extended bool, dst netip.AddrPort, ifIndex int) ([]byte, error) {
	if l, ok := g.linkTo(dst, ifIndex); ok {
		return g.encodeFor(kind, extended, l)
	}
	return g.encodeSelf(kind, extended)
}

// linkTo returns the link whose address our URIs carry toward dst, which
// reaches us by interface ifIndex (0: unknown): that interface's, or else
// the first usable one of dst's family. It reports false when our URIs
// name an address, or no link of dst's family has one.
func (g *Group) linkTo(dst netip.AddrPort, ifIndex int) (transport.Link, bool) {
	if g.links == nil {
		return transport.Link{}, false
	}
	v4 := dst.Addr().Unmap().Is4()
	pick := -1
	links := g.links.Links()
	for i, l := range links {
		if !g.usable(l) || l.Addr.Unmap().Is4() != v4 {
			continue
		}
		if pick < 0 || l.Index == ifIndex && links[pick].Index != ifIndex {
			pick = i
		}
	}
	if pick < 0 {
		return transport.Link{}, false
	}
	return links[pick], true
}
