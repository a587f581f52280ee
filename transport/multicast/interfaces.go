package multicast

import (
	"net"
	"net/netip"
	"slices"
)

// iface is what interface selection needs to know of one interface.
type iface struct {
	net.Interface
	addrs []netip.Addr
}

// link is an interface in use: the group is joined on it and Send sends
// on it.
type link struct {
	ifi  net.Interface
	addr netip.Addr // the address to advertise, see linkAddr
}

// listInterfaces reads the host's interfaces and their addresses. An
// interface whose addresses cannot be read is listed without any.
func listInterfaces() ([]iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]iface, 0, len(ifs))
	for _, ifi := range ifs {
		it := iface{Interface: ifi}
		if addrs, err := ifi.Addrs(); err == nil {
			for _, a := range addrs {
				var ip net.IP
				switch a := a.(type) {
				case *net.IPNet:
					ip = a.IP
				case *net.IPAddr:
					ip = a.IP
				}
				if addr, ok := netip.AddrFromSlice(ip); ok {
					it.addrs = append(it.addrs, addr)
				}
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// chooseLinks picks the interfaces to use from ifs, as Config.Interfaces
// documents: up, multicast-capable and addressed in the family (v6 or
// not); named ones when names is not empty, else every such interface but
// loopback, which is used only when nothing else qualifies.
func chooseLinks(ifs []iface, names []string, v6 bool) []link {
	var picked, loopbacks []link
	for _, it := range ifs {
		if len(names) > 0 && !slices.Contains(names, it.Name) {
			continue
		}
		if it.Flags&net.FlagUp == 0 || it.Flags&net.FlagMulticast == 0 {
			continue
		}
		addr := linkAddr(it.addrs, it.Name, v6)
		if !addr.IsValid() {
			continue
		}
		l := link{ifi: it.Interface, addr: addr}
		if len(names) == 0 && it.Flags&net.FlagLoopback != 0 {
			loopbacks = append(loopbacks, l)
			continue
		}
		picked = append(picked, l)
	}
	if len(names) == 0 && len(picked) == 0 {
		return loopbacks
	}
	return picked
}

// linkAddr picks the address a member advertises to peers reached through
// an interface with addrs. IPv6: a global or unique-local address, else the
// link-local one with the interface as its zone, else loopback. IPv4: the
// first address that is neither link-local nor loopback, else a link-local
// one, else loopback. Invalid when there is none of the family.
func linkAddr(addrs []netip.Addr, ifName string, v6 bool) netip.Addr {
	var best netip.Addr
	bestRank := 3
	for _, a := range addrs {
		if v6 != (a.Is6() && !a.Is4In6()) {
			continue
		}
		a = a.Unmap()
		rank := 0
		switch {
		case a.IsLoopback():
			rank = 2
		case a.IsLinkLocalUnicast():
			rank = 1
		case a.IsGlobalUnicast():
			rank = 0
		default: // unspecified, multicast and the like
			continue
		}
		if rank < bestRank {
			best, bestRank = a, rank
		}
	}
	if best.Is6() && best.IsLinkLocalUnicast() {
		best = best.WithZone(ifName)
	}
	return best
}
