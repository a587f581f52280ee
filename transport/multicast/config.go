package multicast

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/transport"
)

const (
	// DefaultPort is the UDP port of the group when Config.Group has none:
	// the port the original pir's example used.
	DefaultPort = 9999
	// DefaultHopLimit keeps announcements on the local link.
	DefaultHopLimit = 1
	// DefaultRescanInterval is how often interfaces are polled for
	// changes when Config.RescanInterval is zero and the kernel's change
	// notices cannot be had (see Config.RescanInterval).
	DefaultRescanInterval = 5 * time.Second
)

var (
	// DefaultGroupV4 is the IPv4 group when Config.Group has no address:
	// 224.0.0.1, the all-hosts group the original pir used, so that the two
	// interoperate. New deployments should prefer an administratively
	// scoped group such as 239.255.112.105 (see the package doc).
	DefaultGroupV4 = netip.MustParseAddr("224.0.0.1")
	// DefaultGroupV6 is the IPv6 group when Config.Group has no address: a
	// link-local scoped group (ff02::/16) whose group ID, 0x80706972, lies
	// in the range RFC 3307 leaves to dynamic allocation, so no IANA
	// assignment uses it; its low bytes spell "pir".
	DefaultGroupV6 = netip.MustParseAddr("ff02::8070:6972")
)

// Largest UDP payloads: 65535 less the IPv4 (20) or IPv6 (none: the
// payload length excludes the fixed header) and UDP (8) headers.
const (
	maxPayload4 = 65535 - 20 - 8
	maxPayload6 = 65535 - 8
)

// Config configures a Conn. The zero value is usable: IPv4 multicast to
// 224.0.0.1:9999 on every suitable interface.
type Config struct {
	// Group is the multicast group address and UDP port. A zero address
	// means DefaultGroupV4 for "udp4" and DefaultGroupV6 for "udp6"; a zero
	// port means DefaultPort. The address must be a multicast address of
	// Network's family, without a zone (Interfaces chooses the links).
	Group netip.AddrPort

	// Network is "udp4" or "udp6"; empty means "udp4". Use NewDual for
	// both families at once.
	Network string

	// Interfaces names the interfaces to use. Empty means every interface
	// that is up, multicast-capable and has an address of Network's
	// family, except loopback, which is used only when no other interface
	// qualifies. A named interface is used whenever it is up,
	// multicast-capable and addressed, loopback or not; one that does not
	// exist yet is picked up when it appears.
	Interfaces []string

	// HopLimit is the IPv4 TTL or IPv6 hop limit of multicast datagrams,
	// from 1 to 255. Zero means DefaultHopLimit (1: the local link only).
	HopLimit int

	// DisableLoopback turns off IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP.
	// By default (false) datagrams are looped back, so that members on the
	// same host, and this Conn itself, receive them.
	DisableLoopback bool

	// MaxDatagram is the largest datagram Send, SendTo and SendVia accept,
	// in bytes; larger ones fail with transport.ErrTooLarge. Zero means
	// transport.MaxDatagram (1452). At most 65507 for udp4, 65527 for udp6.
	MaxDatagram int

	// RescanInterval paces the automatic checks of the interfaces for
	// changes (interfaces appearing, going up or down, addresses
	// changing). On Linux the Conn listens to the kernel's notices of
	// link and address changes (rtnetlink) and checks about 20 ms after a
	// burst of them, at most once a second; the periodic check is then
	// only a safety net, every RescanInterval or every minute, whichever
	// is longer. Elsewhere, or when the notices cannot be had, the Conn
	// checks every RescanInterval. Zero means DefaultRescanInterval (5 s);
	// negative disables every automatic check, notices included (Rescan
	// still works).
	RescanInterval time.Duration

	// Logger receives the Conn's logs. Nil means no logging.
	Logger hclog.Logger
}

// DefaultConfig returns the configuration New uses for a zero Config, with
// every default written out.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults returns a copy of c with every zero field set to its
// default.
func (c Config) withDefaults() Config {
	if c.Network == "" {
		c.Network = "udp4"
	}
	addr, port := c.Group.Addr(), c.Group.Port()
	if !addr.IsValid() {
		switch c.Network {
		case "udp4":
			addr = DefaultGroupV4
		case "udp6":
			addr = DefaultGroupV6
		}
	}
	if c.Network == "udp4" {
		addr = addr.Unmap()
	}
	if port == 0 {
		port = DefaultPort
	}
	if addr.IsValid() {
		c.Group = netip.AddrPortFrom(addr, port)
	}
	if c.HopLimit == 0 {
		c.HopLimit = DefaultHopLimit
	}
	if c.MaxDatagram == 0 {
		c.MaxDatagram = transport.MaxDatagram
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.Interfaces = append([]string(nil), c.Interfaces...)
	return c
}

// ErrInvalidConfig wraps every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("multicast: invalid config")

// Validate reports every problem with c at once, taking zero fields as
// their defaults. Each names its field and wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	maxPayload := maxPayload4
	switch c.Network {
	case "udp4":
		if g := c.Group.Addr(); !g.Is4() && !g.Is4In6() {
			bad("Group %s is not an IPv4 address (Network is udp4)", g)
		}
	case "udp6":
		maxPayload = maxPayload6
		if g := c.Group.Addr(); !g.Is6() || g.Is4In6() {
			bad("Group %s is not an IPv6 address (Network is udp6)", g)
		}
	default:
		bad("Network %q: want udp4 or udp6", c.Network)
	}
	if g := c.Group.Addr(); g.IsValid() && !g.IsMulticast() {
		bad("Group %s is not a multicast address", g)
	}
	if z := c.Group.Addr().Zone(); z != "" {
		bad("Group %s has a zone: choose interfaces with Interfaces", c.Group.Addr())
	}
	for i, name := range c.Interfaces {
		if name == "" {
			bad("Interfaces[%d] is an empty interface name", i)
		}
	}
	if c.HopLimit < 1 || c.HopLimit > 255 {
		bad("HopLimit %d: want 1 to 255", c.HopLimit)
	}
	if c.MaxDatagram < 1 || c.MaxDatagram > maxPayload {
		bad("MaxDatagram %d bytes: want 1 to %d", c.MaxDatagram, maxPayload)
	}
	return errors.Join(errs...)
}
