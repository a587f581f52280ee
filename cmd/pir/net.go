package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

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

// netFlags are the flags every command shares: where the group is and how
// to print.
type netFlags struct {
	group    string
	port     int
	ifaces   string
	only4    bool
	only6    bool
	addr4    string
	addr6    string
	hops     int
	json     bool
	logLevel string
	keyFile  string
	policy   string
	allUpTo  int
	fanout   int
}

func (n *netFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.group, "group", "pir", "group name")
	fs.IntVar(&n.port, "port", multicast.DefaultPort, "UDP port of the group")
	fs.StringVar(&n.ifaces, "iface", "", "comma-separated interfaces to use (default: every up, multicast-capable one)")
	fs.BoolVar(&n.only4, "4", false, "IPv4 only")
	fs.BoolVar(&n.only6, "6", false, "IPv6 only")
	fs.StringVar(&n.addr4, "addr4", multicast.DefaultGroupV4.String(), "IPv4 multicast group (224.0.0.1 reaches original pir peers; 239.255.x.y is better for new deployments)")
	fs.StringVar(&n.addr6, "addr6", multicast.DefaultGroupV6.String(), "IPv6 multicast group")
	fs.IntVar(&n.hops, "hops", 1, "multicast TTL / hop limit")
	fs.BoolVar(&n.json, "json", false, "print one JSON object per line")
	fs.StringVar(&n.logLevel, "log", "off", "log level on stderr: off, error, warn, info, debug, trace")
	fs.StringVar(&n.policy, "policy", "phi", "health policy: phi (phi-accrual on announcements, corroborated by probes) or threshold (the original's: remove after 3 failed probes); see docs/policies.md")
	fs.IntVar(&n.allUpTo, "probe-all-up-to", 0, "largest group in which every member probes every other; above it each probes -probe-fanout per interval (0: the default, 32; -1: always all)")
	fs.IntVar(&n.fanout, "probe-fanout", 0, "members probed per probe interval in larger groups (0: the default, 4)")
	fs.StringVar(&n.keyFile, "key-file", "", "file of group keys (hex or base64, one per line, the first signs; see pir genkey): authenticate every message; every member needs the key")
}

// groupConfig is the part of a Group's config the shared flags decide:
// name, codec, health policy and logger.
func (n *netFlags) groupConfig(log hclog.Logger, warn io.Writer) (discovery.Config, error) {
	cd, err := n.codec(warn)
	if err != nil {
		return discovery.Config{}, err
	}
	policy, err := n.healthPolicy()
	if err != nil {
		return discovery.Config{}, err
	}
	return discovery.Config{Name: n.group, Codec: cd, Policy: policy, Logger: log, ProbeAllUpTo: n.allUpTo, ProbeFanout: n.fanout}, nil
}

// healthPolicy is the policy -policy names.
func (n *netFlags) healthPolicy() (score.HealthPolicy, error) {
	switch n.policy {
	case "phi", "":
		return nil, nil // the Group's default
	case "threshold":
		return score.NewThreshold(score.DefaultThresholdConfig()), nil
	}
	return nil, fmt.Errorf("-policy %q: want threshold or phi", n.policy)
}

// codec is the pipe format, in an authenticated envelope when -key-file is
// given.
func (n *netFlags) codec(warn io.Writer) (codec.Codec, error) {
	if n.keyFile == "" {
		return pipe.Codec{}, nil
	}
	f, err := os.Open(n.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-key-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warn, "pir: key file %s is readable by group or others (mode %v)\n", n.keyFile, fi.Mode().Perm())
	}
	keys, err := auth.ParseKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("-key-file %s: %w", n.keyFile, err)
	}
	return auth.New(pipe.Codec{}, auth.Config{Keys: keys})
}

func (n *netFlags) logger(stderr io.Writer) hclog.Logger {
	if n.logLevel == "off" || n.logLevel == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: "pir", Level: hclog.LevelFromString(n.logLevel), Output: stderr})
}

// interfaces returns the interfaces -iface names.
func (n *netFlags) interfaces() []string {
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
// member published as instance (empty: its ID).
func (n *netFlags) mdnsTransport(log hclog.Logger, service, instance string) (transport.Transport, error) {
	if n.keyFile != "" {
		// mDNS records carry no authentication: with a key, members would
		// still meet (the envelopes travel opaquely) but be invisible to
		// mDNS tools, which is the point of -mdns. Refuse rather than
		// surprise.
		return nil, fmt.Errorf("-mdns and -key-file cannot be combined: mDNS records are not authenticated")
	}
	cfg := mdns.Config{Group: n.group, Service: service, Instance: instance, Interfaces: n.interfaces(), Logger: log}
	switch {
	case n.only4 && n.only6:
		return nil, fmt.Errorf("-4 and -6 exclude each other")
	case n.only4:
		cfg.Network = "udp4"
	case n.only6:
		cfg.Network = "udp6"
	}
	return mdns.New(cfg)
}

// transport opens the multicast transport the flags describe: both
// families unless -4 or -6, falling back to IPv4 alone on a host without
// IPv6.
func (n *netFlags) transport(log hclog.Logger, warn io.Writer) (transport.Transport, error) {
	if n.only4 && n.only6 {
		return nil, fmt.Errorf("-4 and -6 exclude each other")
	}
	if n.port <= 0 || n.port > 65535 {
		return nil, fmt.Errorf("-port %d: want 1-65535", n.port)
	}
	a4, err := netip.ParseAddr(n.addr4)
	if err != nil || !a4.Is4() {
		return nil, fmt.Errorf("-addr4 %q: not an IPv4 address", n.addr4)
	}
	a6, err := netip.ParseAddr(n.addr6)
	if err != nil || !a6.Is6() {
		return nil, fmt.Errorf("-addr6 %q: not an IPv6 address", n.addr6)
	}
	ifaces := n.interfaces()
	cfg := func(network string, a netip.Addr) multicast.Config {
		return multicast.Config{
			Network: network, Group: netip.AddrPortFrom(a, uint16(n.port)),
			Interfaces: ifaces, HopLimit: n.hops, Logger: log,
		}
	}
	switch {
	case n.only4:
		return multicast.New(cfg("udp4", a4))
	case n.only6:
		return multicast.New(cfg("udp6", a6))
	}
	d, err := multicast.NewDual(cfg("udp4", a4), cfg("udp6", a6))
	if err == nil {
		return d, nil
	}
	fmt.Fprintf(warn, "pir: IPv6 unavailable (%v); using IPv4 only\n", err)
	return multicast.New(cfg("udp4", a4))
}

// healthListenAddr is where a member's health server listens: every
// address of the families in use, so that the Group can advertise each
// interface's own address.
func (n *netFlags) healthListenAddr() string {
	if n.only4 {
		return "0.0.0.0:0"
	}
	return "[::]:0"
}
