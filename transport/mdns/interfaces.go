package mdns

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// iface is an interface the Conn uses, with its addresses.
type iface struct {
	ifi      net.Interface
	v4, v6   []netip.Addr   // its addresses of each family, without zone
	prefixes []netip.Prefix // its on-link prefixes, for the source check
	on       [2]bool        // the group is joined on it: [0] IPv4, [1] IPv6
	best     [2]netip.Addr  // the address to advertise (transport.Link.Addr)
}

func famIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// onLink reports whether a can be a neighbour on this interface: an
// address in one of its prefixes, or a link-local or loopback one (RFC 6762
// §11: responses must come from the local link).
func (l *iface) onLink(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.IsLinkLocalUnicast() || a.IsLoopback() {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// listInterfaces reads the host's interfaces and their addresses. An
// interface whose addresses cannot be read is listed without any.
func listInterfaces() ([]*iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]*iface, 0, len(ifs))
	for _, ifi := range ifs {
		l := &iface{ifi: ifi}
		addrs, err := ifi.Addrs()
		if err == nil {
			for _, a := range addrs {
				n, ok := a.(*net.IPNet)
				if !ok {
					continue
				}
				addr, ok := netip.AddrFromSlice(n.IP)
				if !ok {
					continue
				}
				addr = addr.Unmap()
				ones, _ := n.Mask.Size()
				l.prefixes = append(l.prefixes, netip.PrefixFrom(addr, ones).Masked())
				switch {
				case addr.IsMulticast() || addr.IsUnspecified():
				case addr.Is4():
					l.v4 = append(l.v4, addr)
				default:
					l.v6 = append(l.v6, addr)
				}
			}
		}
		l.best[0] = bestAddr(l.v4, "")
		l.best[1] = bestAddr(l.v6, ifi.Name)
		out = append(out, l)
	}
	return out, nil
}

// chooseLinks picks, for one family, the interfaces to use from ifs, as
// Config.Interfaces documents: up, multicast-capable and addressed in the
// family; named ones when names is not empty, else every such interface
// but loopback, which is used only when nothing else qualifies.
func chooseLinks(ifs []*iface, names []string, v6 bool) []*iface {
	var picked, loopbacks []*iface
	for _, l := range ifs {
		if len(names) > 0 && !slices.Contains(names, l.ifi.Name) {
			continue
		}
		if l.ifi.Flags&net.FlagUp == 0 || l.ifi.Flags&net.FlagMulticast == 0 || !l.best[famIndex(v6)].IsValid() {
			continue
		}
		if len(names) == 0 && l.ifi.Flags&net.FlagLoopback != 0 {
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

// bestAddr picks the address a member advertises among addrs of one
// family: a global or unique-local one, else a link-local one (with the
// interface as zone), else loopback.
func bestAddr(addrs []netip.Addr, zone string) netip.Addr {
	var best netip.Addr
	bestRank := 3
	for _, a := range addrs {
		if r := addrRank(a); r < bestRank {
			best, bestRank = a, r
		}
	}
	if best.Is6() && best.IsLinkLocalUnicast() && zone != "" {
		best = best.WithZone(zone)
	}
	return best
}

// addrRank orders addresses by how well they reach a host from elsewhere
// on the link: 0 for global and unique-local, 1 link-local, 2 loopback.
func addrRank(a netip.Addr) int {
	switch {
	case a.IsLoopback():
		return 2
	case a.IsLinkLocalUnicast():
		return 1
	}
	return 0
}

// zoneName returns the zone for a link-local address heard on interface
// ifIndex: the interface's name if it is known, else its index.
func zoneName(links map[int]*iface, ifIndex int) string {
	if l := links[ifIndex]; l != nil {
		return l.ifi.Name
	}
	if ifIndex > 0 {
		return strconv.Itoa(ifIndex)
	}
	return ""
}
