package nslan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// MaxLANs is the largest number of LANs of a routed lab.
const MaxLANs = 16

// MaxLANHosts is the largest number of hosts on one LAN of a routed lab:
// addresses .1 to .253 of its /24, .254 being the router's.
const MaxLANHosts = 253

// routerHost is the host number of the router's address on every LAN.
const routerHost = 254

// RoutedConfig configures a routed lab: LANs of their own joined by a
// router.
type RoutedConfig struct {
	// LANs is the number of hosts on each LAN, e.g. []int{2, 2}: 1 to
	// MaxLANs LANs of 1 to MaxLANHosts hosts each.
	LANs []int

	// IPv4 and IPv6 choose the address families, as in Config. Both false
	// means both.
	IPv4, IPv6 bool

	// Prefix starts the name of every namespace, as in Config.
	Prefix string

	// Logf, if not nil, receives a line for each command the lab runs.
	Logf func(format string, args ...any)
}

// Routed is a lab of several LANs joined by a router: the topology of
// sites that unicast reaches but multicast does not.
//
//	X-sw   br0, br1, ...: one bridge per LAN, each with its own hosts'
//	       switch ports; the namespace routes between the bridges
//	       (ip_forward, IPv6 forwarding), with the address .254 (::fe) of
//	       each LAN on its bridge. No multicast routing daemon runs, so
//	       multicast stays on its LAN, whatever its TTL.
//	X-hI   eth0 on its LAN's bridge. Host J of LAN L (counting from 0):
//	       198.18.L.(J+1)/24 and fd42+L::(J+1)/64 (LAN 0: fd42::/64,
//	       LAN 1: fd43::/64, ...), default routes via the LAN's router,
//	       224.0.0.0/4 on eth0.
//
// Hosts are numbered across LANs, LAN 0's first: Host(I), Hosts and every
// method of the embedded Lab work as in a one-LAN lab. The switch
// namespace is the router: unlike a one-LAN lab's, it has IPv6 on its
// bridges, and so sends neighbour discovery and MLD there; its switch
// ports still have none. Loss and partitions (SetLoss, Partition) act on
// frames bridged within a LAN only, not on those routed between LANs.
type Routed struct {
	*Lab
	lans  [][]*Host
	nets4 []netip.Prefix
	nets6 []netip.Prefix
}

// NewRouted makes a routed lab as cfg says. When it fails half-way it
// deletes whatever it made. Close the lab when done.
func NewRouted(cfg RoutedConfig) (*Routed, error) {
	var errs []error
	if len(cfg.LANs) < 1 || len(cfg.LANs) > MaxLANs {
		errs = append(errs, fmt.Errorf("%d LANs: want 1 to %d", len(cfg.LANs), MaxLANs))
	}
	total := 0
	for i, n := range cfg.LANs {
		if n < 1 || n > MaxLANHosts {
			errs = append(errs, fmt.Errorf("LAN %d has %d hosts: want 1 to %d", i, n, MaxLANHosts))
		}
		total += n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lab: invalid routed config: %w", err)
	}
	l, err := New(Config{Hosts: total, IPv4: cfg.IPv4, IPv6: cfg.IPv6, Prefix: cfg.Prefix, Logf: cfg.Logf})
	if err != nil {
		return nil, err
	}
	r := &Routed{Lab: l}
	i := 0
	for lan, n := range cfg.LANs {
		r.lans = append(r.lans, slices.Clone(l.hosts[i:i+n]))
		r.nets4 = append(r.nets4, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(lan), 0}), 24))
		r.nets6 = append(r.nets6, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, byte(0x42 + lan)}), 64))
		i += n
	}
	if err := r.route(); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
		return nil, err
	}
	return r, nil
}

// route turns the one-LAN lab New made into LANs and a router: a bridge
// per LAN in the switch namespace, which forwards between them, and hosts
// readdressed into their LAN's prefixes.
func (r *Routed) route() error {
	l := r.Lab
	var sw strings.Builder
	for lan, hosts := range r.lans {
		br := fmt.Sprintf("br%d", lan)
		if lan > 0 {
			fmt.Fprintf(&sw, "link add %s type bridge stp_state 0 forward_delay 0 mcast_snooping 0\nlink set %s up\n", br, br)
		}
		for _, h := range hosts {
			fmt.Fprintf(&sw, "link set %s master %s\n", h.port, br)
		}
	}
	if err := l.run(sw.String(), l.tools.ip, "-n", l.sw, "-batch", "-"); err != nil {
		return fmt.Errorf("lab: cabling the LANs: %w", err)
	}

	sysctls := map[string]string{"net/ipv4/ip_forward": "1"}
	for _, c := range []string{"all", "default"} {
		sysctls["net/ipv4/conf/"+c+"/rp_filter"] = "0"
	}
	if l.cfg.IPv6 {
		sysctls["net/ipv6/conf/all/forwarding"] = "1"
	}
	for lan := range r.lans {
		br := fmt.Sprintf("br%d", lan)
		sysctls["net/ipv4/conf/"+br+"/rp_filter"] = "0"
		if l.cfg.IPv6 {
			sysctls["net/ipv6/conf/"+br+"/accept_dad"] = "0"
			sysctls["net/ipv6/conf/"+br+"/disable_ipv6"] = "0"
			sysctls["net/ipv6/conf/"+br+"/forwarding"] = "1"
		}
	}
	if err := l.sysctl(l.sw, sysctls); err != nil {
		return err
	}

	sw.Reset()
	for lan := range r.lans {
		v4, v6 := r.Router(lan)
		if l.cfg.IPv4 {
			fmt.Fprintf(&sw, "addr add %s dev br%d\n", netip.PrefixFrom(v4, 24), lan)
		}
		if l.cfg.IPv6 {
			fmt.Fprintf(&sw, "addr add %s dev br%d nodad\n", netip.PrefixFrom(v6, 64), lan)
		}
	}
	if err := l.run(sw.String(), l.tools.ip, "-n", l.sw, "-batch", "-"); err != nil {
		return fmt.Errorf("lab: addressing the router: %w", err)
	}

	for lan, hosts := range r.lans {
		gw4, gw6 := r.Router(lan)
		for j, h := range hosts {
			var b strings.Builder
			if h.IPv4.IsValid() {
				v4 := addrAt(r.nets4[lan], j+1)
				fmt.Fprintf(&b, "addr del %s dev eth0\n", netip.PrefixFrom(h.IPv4, netV4.Bits()))
				fmt.Fprintf(&b, "addr add %s dev eth0\n", netip.PrefixFrom(v4, 24))
				fmt.Fprintf(&b, "route add default via %s\n", gw4)
				h.IPv4 = v4
			}
			if h.IPv6.IsValid() {
				v6 := addrAt(r.nets6[lan], j+1)
				fmt.Fprintf(&b, "addr del %s dev eth0\n", netip.PrefixFrom(h.IPv6, netV6.Bits()))
				fmt.Fprintf(&b, "addr add %s dev eth0 nodad\n", netip.PrefixFrom(v6, 64))
				fmt.Fprintf(&b, "route add ::/0 via %s\n", gw6)
				h.IPv6 = v6
			}
			if err := l.run(b.String(), l.tools.ip, "-n", h.NS, "-batch", "-"); err != nil {
				return fmt.Errorf("lab: addressing host %s on LAN %d: %w", h.Name, lan, err)
			}
		}
	}
	return nil
}

// LANs returns the number of LANs.
func (r *Routed) LANs() int { return len(r.lans) }

// LAN returns the hosts of LAN i, in order.
func (r *Routed) LAN(i int) []*Host { return slices.Clone(r.lans[i]) }

// LANOf returns the LAN h is on, or -1 for a host of another lab.
func (r *Routed) LANOf(h *Host) int {
	for i, hosts := range r.lans {
		if slices.Contains(hosts, h) {
			return i
		}
	}
	return -1
}

// Net returns LAN i's prefixes: 198.18.i.0/24 and fd42+i::/64. Each is
// returned whether or not the lab uses its family.
func (r *Routed) Net(i int) (v4, v6 netip.Prefix) { return r.nets4[i], r.nets6[i] }

// Router returns the router's addresses on LAN i, the hosts' gateway:
// 198.18.i.254 and fd42+i::fe.
func (r *Routed) Router(i int) (v4, v6 netip.Addr) {
	return addrAt(r.nets4[i], routerHost), addrAt(r.nets6[i], routerHost)
}

// RouterNS returns the name of the router's namespace, which is also the
// switches' (see SwitchNS): for tcpdump, say.
func (r *Routed) RouterNS() string { return r.sw }
