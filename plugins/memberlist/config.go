package memberlist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/pirlan/pir/transport"
)

// Defaults for the zero values of Config.
const (
	// DefaultRejoinInterval is how often a Conn tries again to join seeds
	// that are not members.
	DefaultRejoinInterval = 10 * time.Second
	// DefaultLeaveTimeout bounds the memberlist leave Close announces.
	DefaultLeaveTimeout = time.Second
	// DefaultQueueLen is how many received datagrams wait for Receive.
	DefaultQueueLen = 64
	// maxUDP is the largest UDP payload over IPv4.
	maxUDP = 65507
)

// ErrInvalidConfig wraps every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("memberlist: invalid config")

// Config configures a Conn. Bind is required, and Site when Inner is set;
// every other zero field means its default.
type Config struct {
	// Inner is the transport of this member's own LAN, normally a
	// multicast.Conn: Send multicasts there as well as relaying to the
	// other sites, and Receive returns what it hears. The Conn owns it from
	// New on and closes it on Close (also when New fails). Nil means none:
	// memberlist alone carries the group, every member relaying to every
	// other (a pure memberlist transport, for networks without multicast).
	Inner transport.Transport

	// Site names the LAN this member is on: members of one site hear each
	// other through Inner, so they relay nothing to each other; every node
	// of another site, or of none, gets a copy of each datagram Send sends.
	// Required when Inner is set; at most MaxSite bytes of UTF-8 without
	// control characters. Empty without Inner means no site: every other
	// node is relayed to.
	Site string

	// Name is this node's name in the memberlist cluster, unique in it.
	// Empty means "pir-" and 16 random hex digits, new at every start, so
	// that a restarted member never collides with its former self.
	Name string

	// Bind is the IP address and port memberlist listens on, TCP and UDP;
	// the relay socket uses the same address. The address is required: one
	// the other sites can reach, or the unspecified address (0.0.0.0 or ::)
	// together with Advertise. Port zero means a free port the kernel
	// chooses (memberlist's usual port is 7946).
	Bind netip.AddrPort

	// Advertise is the address and port the other nodes reach this one at,
	// when they differ from Bind (behind NAT, or Bind unspecified). It must
	// be of Bind's address family. A zero address means Bind's; a zero port
	// means the port Bind got.
	Advertise netip.AddrPort

	// RelayPort is the UDP port, on Bind's address, where this node
	// receives the datagrams other nodes relay to it, and from which it
	// relays its own. The others learn it from the node metadata. Zero
	// means a free port the kernel chooses.
	RelayPort int

	// Seeds are memberlist addresses ("host:port"; a host alone means
	// Bind's port) to join: at least one node on another site, ideally
	// one per site. A seed that is this node is skipped. New tries them
	// once; while some seed is not a member, they are tried again every
	// RejoinInterval, so sites may start in any order and heal after a
	// partition. Empty means starting a cluster that others join.
	Seeds []string

	// RejoinInterval is how often joining the seeds that are not members
	// is tried again. Zero means DefaultRejoinInterval (10 s); negative
	// means never after the first try.
	RejoinInterval time.Duration

	// SecretKey, when set, encrypts memberlist's own traffic (membership
	// gossip) with AES-GCM: 16, 24 or 32 bytes, the same on every node.
	// Relayed pir datagrams are not encrypted: authenticate them with
	// codec/auth, as on the LAN. Nil means no encryption.
	SecretKey []byte

	// Memberlist is the memberlist configuration to start from: its
	// probe, gossip and suspicion timings, its TCP timeout, labels and so
	// on. New copies it and sets Name, the bind and advertise addresses,
	// the transport, the delegates, the logger and, when SecretKey is set,
	// the key itself. Nil means memberlist.DefaultLANConfig(), whose
	// timings suit sites a few milliseconds apart; DefaultWANConfig suits
	// sites far apart.
	Memberlist *memberlist.Config

	// LeaveTimeout bounds how long Close waits for its memberlist leave to
	// reach another node, so that others stop relaying to it at once
	// rather than after memberlist's failure detection. Zero means
	// DefaultLeaveTimeout (1 s); negative means no leave (Close just
	// stops, as a crash would).
	LeaveTimeout time.Duration

	// MaxDatagram is the largest datagram Send and SendTo accept, in
	// bytes; larger ones fail with transport.ErrTooLarge. Zero means
	// transport.MaxDatagram (1452). At most 65507.
	MaxDatagram int

	// QueueLen is the number of received datagrams, from Inner and from
	// the relay, that wait for Receive; beyond it the readers wait and
	// the kernel's socket buffers fill. Zero means DefaultQueueLen (64).
	QueueLen int

	// Logger receives the Conn's logs, memberlist's included (its own
	// "[DEBUG]" ... prefixes become levels). Nil means no logging.
	Logger hclog.Logger
}

// DefaultConfig returns a Config with every default filled in, for a
// member of site on the LAN that inner reaches, listening at bind.
func DefaultConfig(inner transport.Transport, site string, bind netip.AddrPort) Config {
	return Config{
		Inner:          inner,
		Site:           site,
		Bind:           bind,
		RejoinInterval: DefaultRejoinInterval,
		LeaveTimeout:   DefaultLeaveTimeout,
		MaxDatagram:    transport.MaxDatagram,
		QueueLen:       DefaultQueueLen,
	}
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero fields that take defaults are not problems.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Inner != nil && c.Site == "" {
		bad("Site is empty: with Inner, name this member's LAN, the same on every member of it")
	}
	if err := checkSite(c.Site); err != nil {
		bad("%v", err)
	}
	if len(c.Name) > 128 || strings.ContainsFunc(c.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		bad("Name %q: want at most 128 bytes without control characters", c.Name)
	}
	bind := c.Bind.Addr().Unmap()
	switch {
	case !bind.IsValid():
		bad("Bind has no address: give the IP address the other sites reach this node at")
	case bind.Zone() != "":
		bad("Bind %v has a zone: memberlist needs an address other networks route to", c.Bind)
	case bind.IsUnspecified() && !c.Advertise.Addr().IsValid():
		bad("Bind %v is unspecified: set Advertise to the address the other nodes reach this one at", c.Bind)
	}
	if adv := c.Advertise.Addr().Unmap(); adv.IsValid() {
		if adv.IsUnspecified() {
			bad("Advertise %v is unspecified: others cannot reach it", c.Advertise)
		}
		if bind.IsValid() && adv.Is4() != bind.Is4() {
			bad("Advertise %v and Bind %v are of different address families", c.Advertise, c.Bind)
		}
	} else if c.Advertise.Port() != 0 {
		bad("Advertise has port %d but no address", c.Advertise.Port())
	}
	if c.RelayPort < 0 || c.RelayPort > 65535 {
		bad("RelayPort %d: want 0 to 65535", c.RelayPort)
	}
	for i, s := range c.Seeds {
		if strings.TrimSpace(s) == "" {
			bad("Seeds[%d] is empty", i)
		}
	}
	if n := len(c.SecretKey); n != 0 && n != 16 && n != 24 && n != 32 {
		bad("SecretKey is %d bytes: want 16, 24 or 32", n)
	}
	if c.MaxDatagram < 0 || c.MaxDatagram > maxUDP {
		bad("MaxDatagram %d: want 0 to %d", c.MaxDatagram, maxUDP)
	}
	if c.QueueLen < 0 {
		bad("QueueLen %d is negative", c.QueueLen)
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.MaxDatagram == 0 {
		c.MaxDatagram = transport.MaxDatagram
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.Seeds = append([]string(nil), c.Seeds...)
	c.SecretKey = append([]byte(nil), c.SecretKey...)
	return c
}
