package mcast

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// Interface is one of the host's network interfaces with its addresses.
type Interface struct {
	net.Interface
	// Addrs are its unicast addresses, IPv4 in their 4-byte form, without
	// zone; multicast and unspecified addresses are left out.
	Addrs []netip.Addr
	// Prefixes are its on-link prefixes, one per address: an address
	// listed without a mask (a *net.IPAddr, as Windows lists anycast
	// addresses) gives a single-address prefix.
	Prefixes []netip.Prefix
}

// Interfaces reads the host's interfaces and their addresses. An interface
// whose addresses cannot be read is listed without any.
func Interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	return withAddrs(ifs, (*net.Interface).Addrs), nil
}

// withAddrs adds to each of ifs the addresses addrsOf reports.
func withAddrs(ifs []net.Interface, addrsOf func(*net.Interface) ([]net.Addr, error)) []Interface {
	out := make([]Interface, 0, len(ifs))
	for _, ifi := range ifs {
		it := Interface{Interface: ifi}
		addrs, err := addrsOf(&ifi)
		if err != nil {
			addrs = nil
		}
		for _, a := range addrs {
			var ip net.IP
			bits := -1 // a single address
			switch a := a.(type) {
			case *net.IPNet:
				ip = a.IP
				if ones, total := a.Mask.Size(); total != 0 {
					bits = ones
				}
			case *net.IPAddr:
				ip = a.IP
			}
			addr, ok := netip.AddrFromSlice(ip)
			if !ok {
				continue
			}
			addr = addr.Unmap()
			if addr.IsMulticast() || addr.IsUnspecified() {
				continue
			}
			if bits < 0 || bits > addr.BitLen() {
				bits = addr.BitLen()
			}
			it.Addrs = append(it.Addrs, addr)
			it.Prefixes = append(it.Prefixes, netip.PrefixFrom(addr, bits).Masked())
		}
		out = append(out, it)
	}
	return out
}

// Family returns the interface's addresses of one family (IPv6 when v6).
func (it *Interface) Family(v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range it.Addrs {
		if a.Is6() == v6 {
			out = append(out, a)
		}
	}
	return out
}

// Addr returns the address a member advertises to peers reached through
// the interface, in one family (LinkAddr); invalid when it has none.
func (it *Interface) Addr(v6 bool) netip.Addr { return LinkAddr(it.Addrs, it.Name, v6) }

// OnLink reports whether a can be a neighbour on the interface: an address
// in one of its prefixes, or a link-local or loopback one.
func (it *Interface) OnLink(a netip.Addr) bool { return OnLink(it.Prefixes, a) }

// OnLink reports whether a can be a neighbour on a link whose prefixes
// are prefixes: an address in one of them, or a link-local or loopback
// one.
func OnLink(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLinkLocalUnicast() || a.IsLoopback() {
		return true
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Rank orders addresses by how well they reach a host from elsewhere on
// the link: 0 for global and unique-local, 1 link-local, 2 loopback. ok is
// false for an address that reaches no host (unspecified, multicast,
// broadcast, invalid).
func Rank(a netip.Addr) (rank int, ok bool) {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return 2, true
	case a.IsLinkLocalUnicast():
		return 1, true
	case a.IsGlobalUnicast():
		return 0, true
	}
	return 0, false
}

// LinkAddr picks the address a member advertises to peers reached through
// an interface named ifName with addrs, in one family: the first of the
// best Rank; an IPv6 link-local one gets the interface as its zone.
// Invalid when there is none of the family.
func LinkAddr(addrs []netip.Addr, ifName string, v6 bool) netip.Addr {
	var best netip.Addr
	bestRank := 3
	for _, a := range addrs {
		if v6 != (a.Is6() && !a.Is4In6()) {
			continue
		}
		a = a.Unmap()
		if r, ok := Rank(a); ok && r < bestRank {
			best, bestRank = a, r
		}
	}
	if best.Is6() && best.IsLinkLocalUnicast() {
		best = best.WithZone(ifName)
	}
	return best
}

// Choose picks, for one family, the interfaces to use from ifs: up,
// multicast-capable and with an address to advertise in the family; the
// named ones when names is not empty, else every such interface but
// loopback, which is used only when nothing else qualifies. This is what
// the transports' Config.Interfaces documents.
func Choose(ifs []Interface, names []string, v6 bool) []Interface {
	var picked, loopbacks []Interface
	for _, it := range ifs {
		if len(names) > 0 && !slices.Contains(names, it.Name) {
			continue
		}
		if it.Flags&net.FlagUp == 0 || it.Flags&net.FlagMulticast == 0 || !it.Addr(v6).IsValid() {
			continue
		}
		if len(names) == 0 && it.Flags&net.FlagLoopback != 0 {
			loopbacks = append(loopbacks, it)
			continue
		}
		picked = append(picked, it)
	}
	if len(names) == 0 && len(picked) == 0 {
		return loopbacks
	}
	return picked
}

// ZoneIndex turns an interface name used as an IPv6 zone into the
// interface's index, as a string. Go's net package resolves a zone name
// through a cache it refreshes once a minute, or when the name is missing;
// an interface deleted and made again under the same name gets a new
// index, and the stale one would send to a link that no longer exists.
// known looks the name up among the caller's links, at most one rescan
// old; another name is looked up afresh. A numeric zone, or a name that
// resolves to nothing, is returned as it is.
func ZoneIndex(zone string, known func(name string) (index int, ok bool)) string {
	if zone == "" {
		return zone
	}
	if _, err := strconv.Atoi(zone); err == nil {
		return zone
	}
	if known != nil {
		if idx, ok := known(zone); ok {
			return strconv.Itoa(idx)
		}
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return strconv.Itoa(ifi.Index)
	}
	return zone
}
