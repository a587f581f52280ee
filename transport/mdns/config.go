package mdns

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/transport"
)

const (
	// Port is the mDNS port (RFC 6762).
	Port = 5353
	// DefaultTTL is the TTL of every record a Conn publishes when
	// Config.TTL is zero: the 120 s RFC 6762 §10 recommends for host
	// names and SRV records. RFC 6762 suggests 75 minutes for PTR and TXT
	// records; pir uses 120 s for them too, so that a member that crashed
	// vanishes from every cache, pir's or other software's, within two
	// minutes.
	DefaultTTL = 120 * time.Second
	// DefaultHeartbeat is how often Receive gets an announcement for each
	// live instance in the cache when Config.Heartbeat is zero.
	DefaultHeartbeat = time.Second
	// DefaultRescanInterval is how often interfaces are polled for
	// changes when Config.RescanInterval is zero and the kernel's change
	// notices cannot be had (see Config.RescanInterval).
	DefaultRescanInterval = 5 * time.Second
	// DefaultMaxMessage is the largest mDNS message a Conn sends when
	// Config.MaxMessage is zero: a 1500-byte Ethernet frame less the IPv6
	// and UDP headers. Larger responses are split over several messages.
	DefaultMaxMessage = transport.MaxDatagram
	// MaxMessage is the largest mDNS message a Conn sends or accepts:
	// RFC 6762 §17 caps a packet, IP and UDP headers included, at 9000
	// bytes; this leaves room for an IPv6 header (40) and UDP's (8).
	MaxMessage = 9000 - 40 - 8
	// MaxRaw is the largest opaque datagram (bytes that are not a pir
	// message of the Conn's group) that Send and SendTo carry: MaxMessage
	// less the header and record that wrap it (see the package doc). A
	// raw datagram longer than 1429 bytes does not fit a 1500-byte frame
	// over IPv4 and is fragmented by IP.
	MaxRaw = MaxMessage - rawOverhead
	// MaxTTL is the largest Config.TTL.
	MaxTTL = 24 * time.Hour
)

var (
	// GroupV4 and GroupV6 are the mDNS multicast groups (RFC 6762 §3).
	GroupV4 = netip.MustParseAddr("224.0.0.251")
	GroupV6 = netip.MustParseAddr("ff02::fb")
)

// Health URI schemes of instances published by software other than pir,
// which has no health-check endpoint of pir's kind. Conn.Probers provides
// a prober for each, which passes only the services the Conn found; a
// discovery.Group whose Config.Prober is nil registers them. No default
// prober serves these schemes anywhere else.
const (
	// SchemeTCPConnect: tcpconnect://HOST:PORT is healthy when HOST:PORT
	// is the address of a foreign service the Conn found and a TCP
	// connection to it succeeds. A Conn no longer gives it to the
	// services it finds (they get SchemeAdvertised, so that a service
	// that is advertised but not listening does not flap in and out of
	// the group); Probers still serves it, for an application that
	// probes the reachability of a found service separately.
	SchemeTCPConnect = "tcpconnect"
	// SchemeAdvertised is the health scheme of a foreign service: its
	// presence is what mDNS says, so mdns://HOST:PORT is healthy while
	// the service is advertised. Its prober (Conn.Probers) sends nothing
	// and succeeds while the Conn has the service in its cache; the
	// instance's goodbye or the expiry of its records ends its
	// membership.
	SchemeAdvertised = "mdns"
)

// Config configures a Conn. Only Group is required. Every other zero field
// means its default; DefaultConfig writes them out.
type Config struct {
	// Group is the pir group name: non-empty UTF-8, at most MaxGroupLen
	// (253) bytes, no '|' and no control characters, as
	// discovery.Config.Name. Messages of
	// this group given to Send are published as DNS-SD services, and
	// every message Receive returns carries it. Required.
	Group string

	// Service is the DNS-SD service type that is published and browsed,
	// "_name._tcp" or "_name._udp" (RFC 6763 §7), such as "_http._tcp".
	// Empty means DefaultService, "_pir._udp": members are published
	// under it and under the subtype of their group
	// ("_GROUP._sub._pir._udp", see the package doc), and the subtype is
	// browsed, so that only the group's members answer. With a Service
	// set, the service type itself is browsed, so that every instance of
	// it is seen, whatever software published it.
	Service string

	// AllGroups, with Service set, delivers every instance of the service
	// type, pir members of other groups included (their TXT key g is not
	// compared with Group), each as a member of Group: a watcher that
	// lists a service type whatever published it. False (the default)
	// ignores pir members of other groups. Without Service only the
	// group's subtype is browsed, and AllGroups changes nothing.
	AllGroups bool

	// Opaque makes Send carry bytes that are not messages of Codec (a
	// Group configured with another codec, codec/auth say) as opaque
	// datagrams between Conns: members reach each other over the mDNS
	// port, but nothing is published as DNS-SD, and other software sees
	// nothing of them. False (the default) makes Send refuse such bytes
	// with ErrNotMessage, so that discovery.Join with such a codec fails
	// at once rather than publish nothing.
	Opaque bool

	// Instance is the DNS-SD instance name this member is published
	// under: UTF-8, at most 63 bytes. Empty means the member's peer ID.
	// On a conflict the Conn renames it "Instance (2)", "Instance (3)"...
	Instance string

	// HostName is the host label of the SRV target (HostName.local) and
	// of the A/AAAA records the Conn publishes: letters, digits and
	// hyphens, at most 63 bytes. Empty means this machine's host name,
	// "-pir-" and eight hex digits derived from the peer ID, so that the
	// Conn never claims a name that another responder on the host (avahi,
	// another member) owns. On a conflict it becomes HostName-2, -3...
	HostName string

	// Network is "udp4", "udp6", or empty for both: IPv4 and IPv6 where
	// the host has them, IPv4 alone on a host without IPv6.
	Network string

	// Interfaces names the interfaces to use. Empty means every interface
	// that is up, multicast-capable and has an address of a family in
	// use, except loopback, which is used only when no other interface
	// qualifies. A named interface is used whenever it is up,
	// multicast-capable and addressed, loopback or not; one that does not
	// exist yet is picked up when it appears.
	Interfaces []string

	// Port is the UDP port, also of the responder's sources. Zero means
	// Port (5353), the only port other mDNS software uses; another port
	// makes a private mDNS network, for tests.
	Port uint16

	// TTL is the time to live of the records the Conn publishes, from 1 s
	// to MaxTTL. Zero means DefaultTTL (120 s). The Conn announces its
	// records again after 80 % of it.
	TTL time.Duration

	// Heartbeat is how often Receive gets a synthesized announcement for
	// each instance in the cache whose records are alive, so that a
	// discovery.Group, which removes members it does not hear for
	// ExpireAfter, keeps them while their records live. Zero means
	// DefaultHeartbeat (1 s); negative means never (only changes and the
	// responses that refresh an instance are delivered).
	Heartbeat time.Duration

	// MaxMessage is the largest mDNS message the Conn sends, in bytes,
	// from 512 to MaxMessage (8952). Zero means DefaultMaxMessage (1452,
	// a 1500-byte frame over IPv6). Responses and queries that do not fit
	// are split over several messages (RFC 6762 §7.2, §18.5). Opaque
	// datagrams have their own limit, MaxRaw.
	MaxMessage int

	// SynthMax is the largest synthesized pir message Receive returns, in
	// bytes. Metadata of foreign services is dropped, longest value
	// first, until the message fits. Zero means transport.MaxDatagram
	// (1452).
	SynthMax int

	// RescanInterval paces the automatic checks of the interfaces for
	// changes. On Linux the Conn listens to the kernel's notices of link
	// and address changes (rtnetlink) and checks about 20 ms after a
	// burst of them, at most once a second; the periodic check is then
	// only a safety net, every RescanInterval or every minute, whichever
	// is longer. Elsewhere, or when the notices cannot be had, the Conn
	// checks every RescanInterval. Zero means DefaultRescanInterval (5 s);
	// negative disables every automatic check, notices included (Rescan
	// still works).
	RescanInterval time.Duration

	// DisableLoopback turns off multicast loopback. By default (false)
	// this host's other responders, and other Conns of this process, see
	// what the Conn sends.
	DisableLoopback bool

	// SilentClose makes Close leave without goodbyes, as a crash would:
	// the records the Conn published stay in other caches until their
	// TTL runs out. By default (false) Close sends goodbyes (records with
	// TTL 0, RFC 6762 §10.1) for everything the Conn published, as
	// Send of a pir Goodbye does.
	SilentClose bool

	// Logger receives the Conn's logs. Nil means no logging. Per-packet
	// events log at Trace, per-instance ones at Debug.
	Logger hclog.Logger

	// testEvent, when set by a test of this package, is called by the
	// engine goroutine at milestones: "published" and "renamed" with the
	// instance name, "expired" with the name of an instance whose records
	// ran out.
	testEvent func(event, name string)
}

// DefaultConfig returns the configuration New uses for cfg, with every
// default written out.
func DefaultConfig(group string) Config {
	return Config{Group: group}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.Port == 0 {
		c.Port = Port
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.SynthMax == 0 {
		c.SynthMax = transport.MaxDatagram
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

// Validate reports every problem with c at once, taking zero fields as
// their defaults. Each wraps ErrInvalidConfig.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if err := validGroup(c.Group); err != nil {
		bad("Group: %v", err)
	}
	if _, err := parseServiceType(d.Service); err != nil {
		bad("Service: %v", err)
	}
	switch {
	case len(c.Instance) > maxLabel:
		bad("Instance %q is longer than %d bytes", c.Instance, maxLabel)
	case !utf8.ValidString(c.Instance):
		bad("Instance %q is not UTF-8", c.Instance)
	}
	if c.HostName != "" && hostLabel(c.HostName, maxLabel) != c.HostName {
		bad("HostName %q: want 1 to %d lower-case letters, digits and inner hyphens", c.HostName, maxLabel)
	}
	switch c.Network {
	case "", "udp4", "udp6":
	default:
		bad("Network %q: want udp4, udp6 or empty for both", c.Network)
	}
	for i, name := range c.Interfaces {
		if name == "" {
			bad("Interfaces[%d] is an empty interface name", i)
		}
	}
	if d.TTL < time.Second || d.TTL > MaxTTL {
		bad("TTL %v: want 1s to %v", c.TTL, MaxTTL)
	}
	if d.MaxMessage < 512 || d.MaxMessage > MaxMessage {
		bad("MaxMessage %d: want 512 to %d", c.MaxMessage, MaxMessage)
	}
	if d.SynthMax < 64 {
		bad("SynthMax %d: want at least 64", c.SynthMax)
	}
	return errors.Join(errs...)
}

// validGroup checks a group name: Codec.CheckGroup.
func validGroup(g string) error {
	switch {
	case g == "":
		return errors.New("empty")
	case len(g) > MaxGroupLen:
		return fmt.Errorf("longer than %d bytes", MaxGroupLen)
	case !utf8.ValidString(g):
		return errors.New("not UTF-8")
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f || r == '|' {
			return errors.New("control character or '|'")
		}
	}
	return nil
}
