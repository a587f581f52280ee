package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/pirlan/pir/internal/mcast"
	"github.com/pirlan/pir/transport"
)

// iface is an interface the Conn uses, with its addresses.
type iface struct {
	ifi      net.Interface
	v4, v6   []netip.Addr   // its addresses of each family, without zone
	prefixes []netip.Prefix // its on-link prefixes, for the source check
	on       [2]bool        // the group is joined on it: [0] IPv4, [1] IPv6
	best     [2]netip.Addr  // the address to advertise (transport.Link.Addr)
}

// newIface returns the iface of it, joined on no family yet.
func newIface(it mcast.Interface) *iface {
	return &iface{
		ifi:      it.Interface,
		v4:       it.Family(false),
		v6:       it.Family(true),
		prefixes: slices.Clone(it.Prefixes),
		best:     [2]netip.Addr{it.Addr(false), it.Addr(true)},
	}
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
func (l *iface) onLink(a netip.Addr) bool { return mcast.OnLink(l.prefixes, a) }

// addrRank orders addresses by how well they reach a host from elsewhere
// on the link: 0 for global and unique-local, 1 link-local, 2 loopback
// (mcast.Rank); 0 too for one that reaches no host.
func addrRank(a netip.Addr) int {
	r, _ := mcast.Rank(a)
	return r
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

// zoned replaces an interface name used as an IPv6 zone by the
// interface's index (mcast.ZoneIndex), which the Conn knows at most one
// rescan late, rather than Go's cache of names.
func (c *Conn) zoned(dst netip.AddrPort) netip.AddrPort {
	a := dst.Addr()
	if a.Is4In6() {
		return netip.AddrPortFrom(a.Unmap(), dst.Port())
	}
	if a.Zone() == "" {
		return dst
	}
	return netip.AddrPortFrom(a.WithZone(mcast.ZoneIndex(a.Zone(), c.indexOf)), dst.Port())
}

// indexOf returns the index of the link named name.
func (c *Conn) indexOf(name string) (int, bool) {
	for _, l := range c.linkList() {
		if l.ifi.Name == name {
			return l.ifi.Index, true
		}
	}
	return 0, false
}

// Rescan checks the interfaces now rather than at the next automatic
// check (Config.RescanInterval): it joins the group on interfaces that
// appeared or came up, leaves it on those that went away, and updates the
// addresses the Conn publishes.
func (c *Conn) Rescan() error {
	if c.isClosed() {
		return fmt.Errorf("mdns: rescan: %w", transport.ErrClosed)
	}
	return c.rescan()
}

func (c *Conn) rescan() error {
	c.rescanMu.Lock()
	defer c.rescanMu.Unlock()
	ifs, err := mcast.Interfaces()
	if err != nil {
		return fmt.Errorf("mdns: listing interfaces: %w", err)
	}
	changed := false
	for _, f := range c.fams {
		if f.mc.joined == nil {
			f.mc.joined = mcast.NewMembership(f.mc.Socket, f.group.Addr(), c.cfg.Interfaces, c.log.With("ipv6", f.v6))
		}
		if f.mc.joined.Update(ifs) {
			changed = true
		}
	}
	next := make(map[int]*iface)
	for _, it := range ifs {
		l := newIface(it)
		for _, f := range c.fams {
			_, l.on[famIndex(f.v6)] = f.mc.joined.Link(it.Index)
		}
		if l.on[0] || l.on[1] {
			next[it.Index] = l
		}
	}
	c.mu.Lock()
	c.links = next
	c.mu.Unlock()
	if changed {
		select {
		case c.rescanned <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *Conn) rescanLoop(every time.Duration) {
	defer c.wg.Done()
	mcast.RescanLoop(c.done, every, c.log, func() {
		if err := c.rescan(); err != nil {
			c.log.Debug("rescan failed", "error", err)
		}
	})
}
