package discovery

import (
	"fmt"
	"net/netip"

	"github.com/pirlan/pir/codec"
)

// This file holds the checks that keep forged datagrams from turning
// members into a weapon: probes aimed only at a peer's own address, and
// answers sent only to members that asked by unicast from their own
// address. docs/wire.md states the rules; docs/security.md the attacks.

// checkHealthHost reports why a health URI host may not be probed, or nil:
// an IP address equal to the datagram's source src, or with foreign (see
// Config.ForeignHealthHosts) any address or name; never an unspecified or
// multicast address, nor a loopback one unless src is loopback too (a
// member on this host).
func checkHealthHost(host string, src netip.Addr, foreign bool) error {
	a, err := netip.ParseAddr(host)
	if err != nil {
		if foreign {
			return nil
		}
		return fmt.Errorf("health host %q is not an IP address", host)
	}
	a, s := hostOf(a), hostOf(src)
	switch {
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("health host %s is not a unicast address", a)
	case a.IsLoopback():
		if !s.IsLoopback() {
			return fmt.Errorf("health host %s is a loopback address and the source %s is not", a, s)
		}
	case !foreign && a != s:
		return fmt.Errorf("health host %s is not the source address %s", a, s)
	}
	return nil
}

// hostOf is a as the Group compares hosts: IPv4 mapping and zone aside.
func hostOf(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// sameAddr reports whether a and b name the same host address, IPv4
// mapping, zone and port aside: the port a member sends from is not what a
// forger cannot choose, its address is.
func sameAddr(a, b netip.AddrPort) bool { return hostOf(a.Addr()) == hostOf(b.Addr()) }

// fromMember reports whether in, a request or news about another member
// (Confirm, Evidence, Obituary), may be taken: it came by unicast when
// unicast is what its sender uses (every kind but Obituary), and from the
// address its sender is known by as a joined member. Otherwise it counts
// the drop: a forger on the LAN can claim any member's ID, but not, in
// return, receive what is sent to that member's address.
func (g *Group) fromMember(in *inbound) bool {
	if in.msg.Kind != codec.Obituary && in.dst.IsValid() && in.dst.IsMulticast() {
		g.stats.drop(DropSpoofed)
		return false
	}
	st := g.peers[in.msg.ID]
	if st == nil || !st.joined || !g.heardAt(in.msg.ID, st, in.src) {
		g.stats.drop(DropSpoofed)
		g.log.Trace("not from the member it names", "peer", in.msg.ID, "from", in.src, "kind", in.msg.Kind)
		return false
	}
	st.extended = true // it sent a kind no original knows
	return true
}

// altAddr is the address a joined member's announcements also come from,
// by its other path (IPv6 as well as IPv4, a second interface): a member
// may ask us by either, whichever way it knows us.
type altAddr struct {
	st   *peerState // the member's state when it was heard; stale once it differs
	addr netip.AddrPort
}

// noteAlt records that member id, known by st.member.Addr, was also heard
// from src. Only joined members are recorded, and the table is swept of
// members gone whenever it outgrows the peer table, so that it stays
// bounded by the members.
func (g *Group) noteAlt(id string, st *peerState, src netip.AddrPort) {
	if !st.joined || sameAddr(st.member.Addr, src) {
		return
	}
	if a, ok := g.alt[id]; ok && a.st == st && a.addr == src {
		return
	}
	if g.alt == nil {
		g.alt = make(map[string]altAddr)
	}
	if len(g.alt) >= 2*len(g.peers)+16 {
		for k, a := range g.alt {
			if g.peers[k] != a.st {
				delete(g.alt, k)
			}
		}
	}
	g.alt[id] = altAddr{st: st, addr: src}
}

// heardAt reports whether src is an address member id, st, is known by:
// the one it was heard from, or its other path's (isAlt), ports aside.
func (g *Group) heardAt(id string, st *peerState, src netip.AddrPort) bool {
	return sameAddr(st.member.Addr, src) || g.isAlt(id, st, src)
}

// isAlt reports whether src is member id's address on its other path.
func (g *Group) isAlt(id string, st *peerState, src netip.AddrPort) bool {
	a, ok := g.alt[id]
	return ok && a.st == st && sameAddr(a.addr, src)
}
