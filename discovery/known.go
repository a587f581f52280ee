package discovery

import "net/netip"

// Knows reports whether a joined member was last heard from address a: the
// source address of its latest message (Member.Addr) is a, zones aside
// and an IPv4-mapped IPv6 address taken as IPv4. Pending peers, which no
// probe has vouched for yet, are not known.
//
// It is meant for healthcheck.ServerConfig.Known, so that a member's
// health-check server keeps room for the members that probe it while
// strangers hold connections; the healthcheck package doc shows how to
// wire it. It is safe for concurrent use and cheap: one read lock and a
// pass over the tracked peers, with no allocation.
//
// A member heard over IPv6 but probing over IPv4 (or from another address
// than it announces from) is not known by that other address.
func (g *Group) Knows(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = hostOf(a)
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, st := range g.peers {
		if st.joined && hostOf(st.member.Addr.Addr()) == a {
			return true
		}
	}
	return false
}
