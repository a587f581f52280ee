package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mdns"
	"github.com/pirlan/pir/transport/multicast"
)

// NetFlags are the flags every command shares: where the group is and how
// to print.
type NetFlags struct {
	Group    string
	Port     int
	ifaces   string
	only4    bool
	Only4    bool
	addr4    string
	addr6    string
	hops     int
	JSON     bool
	logLevel string
	KeyFile  string
	policy   string
	allUpTo  int
	fanout   int
	foreign  bool
	ping     time.Duration
	self     time.Duration
}

func (n *NetFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&n.Group, "group", "pir", "group name")
	fs.IntVar(&n.Port, "port", multicast.DefaultPort, "UDP port of the group")
	fs.StringVar(&n.ifaces, "iface", "", "comma-separated interfaces to use (default: every up, multicast-capable one)")
	fs.BoolVar(&n.only4, "4", false, "IPv4 only")
	fs.BoolVar(&n.Only4, "6", false, "IPv6 only")
	fs.StringVar(&n.addr4, "addr4", multicast.DefaultGroupV4.String(), "IPv4 multicast group (224.0.0.1 reaches original pir peers; 239.255.x.y is better for new deployments)")
	fs.StringVar(&n.addr6, "addr6", multicast.DefaultGroupV6.String(), "IPv6 multicast group")
	fs.IntVar(&n.hops, "hops", 1, "multicast TTL / hop limit")
	fs.BoolVar(&n.JSON, "json", false, "print one JSON object per line")
	fs.StringVar(&n.logLevel, "log", "off", "log level on stderr: off, error, warn, info, debug, trace")
	fs.StringVar(&n.policy, "policy", "phi", "health policy: phi (phi-accrual on announcements, corroborated by probes) or threshold (the original's: remove after 3 failed probes); see docs/policies.md")
	fs.IntVar(&n.allUpTo, "probe-all-up-to", 0, "largest group in which every member probes every other; above it each probes -probe-fanout per interval (0: the default, 32; -1: always all)")
	fs.IntVar(&n.fanout, "probe-fanout", 0, "members probed per probe interval in larger groups (0: the default, 4)")
	fs.BoolVar(&n.foreign, "foreign-health-hosts", false, "probe a health URI whose host is not the address its announcement came from, or a DNS name (off: such announcements are dropped, so that a forger cannot aim probes at a third party; docs/security.md)")
	fs.DurationVar(&n.ping, "ping", time.Second, "ping one member each interval, on the group's own socket, instead of probing every member (the frugal engine, docs/architecture.md); members that ping announce rarely, but every second while a peer that does not ping is heard (0: off, every member probes every other, as original pir peers do; off with -mdns)")
	fs.DurationVar(&n.self, "self-check", 2*time.Second, "with -ping: check our own health each interval and multicast its changes, instead of being probed by every member (0: off)")
	fs.StringVar(&n.KeyFile, "key-file", "", "file of group keys (hex or base64, one per line, the first signs; see pir genkey): authenticate every message; every member needs the key")
}

// GroupConfig is the part of a Group's config the shared flags decide:
// name, codec, health policy and logger.
func (n *NetFlags) GroupConfig(log hclog.Logger, warn io.Writer) (discovery.Config, error) {
	cd, err := n.codec(warn)
	if err != nil {
		return discovery.Config{}, err
	}
	policy, err := n.healthPolicy()
	if err != nil {
		return discovery.Config{}, err
	}
	return discovery.Config{Name: n.Group, Codec: cd, Policy: policy, Logger: log, ProbeAllUpTo: n.allUpTo, ProbeFanout: n.fanout, ForeignHealthHosts: n.foreign,
		PingInterval: orOff(n.ping), HealthInterval: orOff(n.self)}, nil
}

// orOff is a duration flag as discovery.Config takes it: the flag's 0
// (off) is the Config's negative, whose 0 means the default.
func orOff(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// healthPolicy is the policy -policy names.
func (n *NetFlags) healthPolicy() (score.HealthPolicy, error) {
	switch n.policy {
	case "phi", "":
		return nil, nil // the Group's default
	case "threshold":
		return score.NewThreshold(score.DefaultThresholdConfig()), nil
	}
	return nil, fmt.Errorf("-policy %q: want phi or threshold", n.policy)
}

// codec is the pipe format, in an authenticated envelope when -key-file is
// given.
func (n *NetFlags) codec(warn io.Writer) (codec.Codec, error) {
	if n.KeyFile == "" {
		return pipe.Codec{}, nil
	}
	f, err := os.Open(n.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("-key-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warn, "pir: key file %s is readable by group or others (mode %v)\n", n.KeyFile, fi.Mode().Perm())
	}
	keys, err := auth.ParseKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("-key-file %s: %w", n.KeyFile, err)
	}
	return auth.New(pipe.Codec{}, auth.Config{Keys: keys})
}

// logLevels are the levels -log takes.
var logLevels = []string{"off", "error", "warn", "info", "debug", "trace"}

func (n *NetFlags) Logger(stderr io.Writer) hclog.Logger {
	if n.logLevel == "off" || n.logLevel == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "pir", Level: hclog.LevelFromString(n.logLevel), Output: stderr})
}

// Check reports the first problem with the shared flags, before anything
// is opened, as a usageError naming the flag. set holds the flags given on
// the command line; mdns says whether the group runs over mDNS, where the
// multicast flags do not apply.
func (n *NetFlags) Check(cmd string, set map[string]bool, mdns bool) error {
	bad := func(format string, args ...any) error { return UsageErrorf(cmd, false, format, args...) }
	if !slices.Contains(logLevels, n.logLevel) {
		return bad("-log %q: want one of %s", n.logLevel, strings.Join(logLevels, ", "))
	}
	if err := CheckGroupName(n.Group); err != nil {
		return bad("-group %q: %v", n.Group, err)
	}
	if n.only4 && n.Only4 {
		return bad("-4 and -6 exclude each other")
	}
	if n.only4 && set["addr6"] {
		return bad("-addr6 does nothing with -4")
	}
	if n.Only4 && set["addr4"] {
		return bad("-addr4 does nothing with -6")
	}
	if set["self-check"] && n.ping == 0 {
		return bad("-self-check does nothing with -ping 0: without pings every member probes every other")
	}
	if set["self-check"] && cmd == "pir watch" {
		return bad("-self-check does nothing with pir watch: a watcher has no health of its own to check")
	}
	if mdns {
		for _, f := range []string{"ping", "self-check"} {
			if set[f] {
				return bad("-%s does nothing with -mdns: members share port 5353 and are probed, not pinged", f)
			}
		}
		for _, f := range []string{"port", "addr4", "addr6", "hops"} {
			if set[f] {
				return bad("-%s does nothing with -mdns (mDNS uses 224.0.0.251 and ff02::fb, port 5353)", f)
			}
		}
		if n.KeyFile != "" {
			// mDNS records carry no authentication: with a key, members
			// would still meet (the envelopes travel opaquely) but be
			// invisible to mDNS tools, which is the point of -mdns.
			return bad("-mdns and -key-file cannot be combined: mDNS records are not authenticated")
		}
	}
	if n.Port <= 0 || n.Port > 65535 {
		return bad("-port %d: want 1 to 65535", n.Port)
	}
	if a, err := netip.ParseAddr(n.addr4); err != nil || !a.Is4() || !a.IsMulticast() {
		return bad("-addr4 %q: not an IPv4 multicast address (224.0.0.0/4)", n.addr4)
	}
	if a, err := netip.ParseAddr(n.addr6); err != nil || !a.Is6() || a.Is4In6() || !a.IsMulticast() || a.Zone() != "" {
		return bad("-addr6 %q: not an IPv6 multicast address (ff00::/8, no zone)", n.addr6)
	}
	if n.hops < 1 || n.hops > 255 {
		return bad("-hops %d: want 1 to 255", n.hops)
	}
	if n.policy != "phi" && n.policy != "threshold" {
		return bad("-policy %q: want phi or threshold", n.policy)
	}
	if n.allUpTo < -1 {
		return bad("-probe-all-up-to %d: want -1 (always all), 0 (the default) or more", n.allUpTo)
	}
	if n.fanout < 0 {
		return bad("-probe-fanout %d: want 0 (the default) or more", n.fanout)
	}
	if err := checkInterfaces(n.interfaces(), n.only4, n.Only4); err != nil {
		return bad("%v", err)
	}
	return nil
}

// fieldFlags names the flags that set discovery.Config's fields.
var fieldFlags = strings.NewReplacer(
	"Self.ID", "-id", "Self.Meta", "-meta", "Self.CommsURI", "-comms", "Self.HealthURI", "-health",
	"ProbeAllUpTo", "-probe-all-up-to", "ProbeFanout", "-probe-fanout", "Name", "-group",
	"PingInterval", "-ping", "HealthInterval", "-self-check",
)

// ConfigError is err from discovery.Join as the user should see it: a
// Config that does not validate is a usage error, its fields named by the
// flags that set them. check catches these problems first; this covers
// rules the library adds later.
func ConfigError(cmd string, err error) error {
	if !errors.Is(err, discovery.ErrInvalidConfig) {
		return err
	}
	msg := strings.ReplaceAll(fieldFlags.Replace(err.Error()), "\n", "; ")
	return UsageErrorf(cmd, false, "%s", Printable(msg))
}

// CheckGroupName checks a group name as discovery.Config.Validate does,
// so that the error names the flag rather than the Config field.
func CheckGroupName(name string) error {
	cfg := discovery.Config{Name: name, Transport: noTransport{}, Passive: true}
	if cfg.Validate() != nil {
		return fmt.Errorf("want 1 to %d bytes of UTF-8 without '|' or control characters", pipe.MaxGroupLen)
	}
	return nil
}

// checkID checks a peer ID as discovery.Config.Validate does. The empty ID
// is valid: the Group makes one.
func checkID(id string) error {
	cfg := discovery.Config{Name: "x", Transport: noTransport{}, Passive: true, Self: discovery.Peer{ID: id}}
	if cfg.Validate() != nil {
		return fmt.Errorf("want at most %d bytes of Printable ASCII without '|' or spaces", pipe.MaxIDLen)
	}
	return nil
}

// noTransport stands in for a transport where only a Config's other fields
// are validated.
type noTransport struct{}

func (noTransport) Send([]byte) error                   { return transport.ErrClosed }
func (noTransport) SendTo([]byte, netip.AddrPort) error { return transport.ErrClosed }
func (noTransport) Receive([]byte) (transport.Packet, error) {
	return transport.Packet{}, transport.ErrClosed
}
func (noTransport) Close() error { return nil }

// DefaultCodec is the codec pir always uses, so that Validate checks names
// against its limits.
func (noTransport) DefaultCodec() codec.Codec { return pipe.Codec{} }

// checkInterfaces reports a named interface that does not exist, is down,
// cannot multicast or, with -4 or -6, has no address of that family, and
// lists the interfaces that would do.
func checkInterfaces(names []string, only4, only6 bool) error {
	if len(names) == 0 {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("-iface: listing interfaces: %w", err)
	}
	var usable []string
	for _, ifi := range ifs {
		if problem(&ifi, only4, only6) == "" {
			usable = append(usable, ifi.Name)
		}
	}
	hint := "no interface is up and multicast-capable"
	if len(usable) > 0 {
		hint = "usable: " + strings.Join(usable, ", ")
	}
	for _, name := range names {
		i := slices.IndexFunc(ifs, func(ifi net.Interface) bool { return ifi.Name == name })
		if i < 0 {
			return fmt.Errorf("-iface %s: no such interface (%s)", Printable(name), hint)
		}
		if p := problem(&ifs[i], only4, only6); p != "" {
			return fmt.Errorf("-iface %s: %s (%s)", name, p, hint)
		}
	}
	return nil
}

// problem says why ifi cannot carry the group, or "".
func problem(ifi *net.Interface, only4, only6 bool) string {
	switch {
	case ifi.Flags&net.FlagUp == 0:
		return "interface is down"
	case ifi.Flags&net.FlagMulticast == 0:
		return "interface cannot multicast (no MULTICAST flag)"
	}
	if !only4 && !only6 {
		return ""
	}
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok && (p.IP.To4() != nil) == only4 {
			return ""
		}
	}
	if only4 {
		return "interface has no IPv4 address"
	}
	return "interface has no IPv6 address"
}

// interfaces returns the interfaces -iface names.
func (n *NetFlags) interfaces() []string {
	var ifaces []string
	for _, s := range strings.Split(n.ifaces, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ifaces = append(ifaces, s)
		}
	}
	return ifaces
}

// mdnsTransport opens the mDNS transport (port 5353; -port, -addr4, -addr6
// and -hops do not apply) for the group, publishing and browsing service
// type service (empty: pir's own, _pir._udp and the group's subtype), the
// member published as instance (empty: its ID); allGroups lists pir
// members of every group (mdns.Config.AllGroups). It sets gc.Codec to the
// transport's own codec: a Group over mDNS hands the Conn messages in its
// format (check refuses -key-file with -mdns).
func (n *NetFlags) mdnsTransport(log hclog.Logger, service, instance string, allGroups bool, gc *discovery.Config) (transport.Transport, error) {
	cfg := mdns.Config{Group: n.Group, Service: service, Instance: instance, AllGroups: allGroups, Interfaces: n.interfaces(), Logger: log}
	switch {
	case n.only4:
		cfg.Network = "udp4"
	case n.Only4:
		cfg.Network = "udp6"
	}
	c, err := mdns.New(cfg)
	if err != nil {
		return nil, err
	}
	gc.Codec = c.DefaultCodec()
	return c, nil
}

// Transport opens the multicast Transport the flags describe (check has
// passed): both families unless -4 or -6, falling back to IPv4 alone on a
// host without IPv6.
func (n *NetFlags) Transport(log hclog.Logger, warn io.Writer) (transport.Transport, error) {
	a4, a6 := netip.MustParseAddr(n.addr4), netip.MustParseAddr(n.addr6)
	ifaces := n.interfaces()
	cfg := func(network string, a netip.Addr) multicast.Config {
		return multicast.Config{
			Network: network, Group: netip.AddrPortFrom(a, uint16(n.Port)),
			Interfaces: ifaces, HopLimit: n.hops, Logger: log,
		}
	}
	switch {
	case n.only4:
		return multicast.New(cfg("udp4", a4))
	case n.Only4:
		return multicast.New(cfg("udp6", a6))
	}
	d, err := multicast.NewDual(cfg("udp4", a4), cfg("udp6", a6))
	if err == nil {
		return d, nil
	}
	// Blame IPv6 only when IPv4 alone works.
	t, err4 := multicast.New(cfg("udp4", a4))
	if err4 != nil {
		return nil, err4
	}
	fmt.Fprintf(warn, "pir: IPv6 unavailable (%v); using IPv4 only\n", err)
	return t, nil
}

// HealthListenAddr is where a member's health server listens: every
// address of the families in use, so that the Group can advertise each
// interface's own address.
func (n *NetFlags) HealthListenAddr() string {
	if n.only4 {
		return "0.0.0.0:0"
	}
	return "[::]:0"
}
