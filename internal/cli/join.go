package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// healthServer is what join needs of the healthcheck servers.
type healthServer interface {
	Start(addr string) error
	URI() *url.URL
	Check() error
	Close() error
}

func newHealthServer(kind string, known func(netip.Addr) bool) (healthServer, error) {
	cfg := healthcheck.ServerConfig{Known: known}
	switch kind {
	case "tcp":
		return healthcheck.NewTCPServer(cfg), nil
	case "udp":
		return healthcheck.NewUDPServer(cfg), nil
	case "http":
		return healthcheck.NewHTTPServer(cfg), nil
	}
	return nil, fmt.Errorf("-health %q: want tcp, udp or http", kind)
}

type metaFlag map[string]string

func (m metaFlag) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value")
	}
	m[k] = v
	return nil
}

func join(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pir join", flag.ContinueOnError)
	var nf NetFlags
	nf.Register(fs)
	health := fs.String("health", "tcp", "health-check protocol to serve: tcp (the original pir's), udp or http")
	comms := fs.String("comms", "", "URI the application is reached at (default: the health URI)")
	id := fs.String("id", "", "peer ID (default: a new UUID)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata key=value (repeatable)")
	useMDNS := fs.Bool("mdns", false, "publish and discover over mDNS/DNS-SD (port 5353, service _pir._udp and the group's subtype) instead of pir multicast")
	mdnsService := fs.String("mdns-service", "", "with -mdns: the DNS-SD service type to publish and browse, e.g. _http._tcp (default _pir._udp)")
	mdnsName := fs.String("mdns-name", "", "with -mdns: the DNS-SD instance name (default: the peer ID)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pir join [flags]\n\nJoin a group with a health-check server of its own, print membership events\nuntil interrupted, then leave gracefully (a goodbye the others act on at once).\n\n")
		fs.PrintDefaults()
	}
	if err := ParseFlags(fs, args, stdout); err != nil {
		return err
	}
	set := SetFlags(fs)
	if err := nf.Check(fs.Name(), set, *useMDNS); err != nil {
		return err
	}
	bad := func(format string, args ...any) error { return UsageErrorf(fs.Name(), false, format, args...) }
	if !*useMDNS {
		for _, f := range []string{"mdns-service", "mdns-name"} {
			if set[f] {
				return bad("-%s does nothing without -mdns", f)
			}
		}
	}
	if err := checkID(*id); err != nil {
		return bad("-id %q: %v", *id, err)
	}
	var commsURI *url.URL
	if *comms != "" {
		u, err := url.Parse(*comms)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return bad("-comms %q: want a URI with a scheme and a host, e.g. tcp://10.0.0.5:8080", *comms)
		}
		commsURI = u
	}
	// The server starts before the Group; it knows the Group's members
	// once there is one.
	var group atomic.Pointer[discovery.Group]
	hs, err := newHealthServer(*health, func(a netip.Addr) bool { g := group.Load(); return g != nil && g.Knows(a) })
	if err != nil {
		return bad("%v", err)
	}
	log := nf.Logger(stderr)

	if err := hs.Start(nf.HealthListenAddr()); err != nil {
		return fmt.Errorf("health-check server: %w", err)
	}
	defer hs.Close()
	self := discovery.Peer{ID: *id, HealthURI: hs.URI(), CommsURI: commsURI, Meta: meta}
	cfg, err := nf.GroupConfig(log, stderr)
	if err != nil {
		return err
	}
	adv := NewAdviser(stderr, nf.Group, nf.KeyFile)
	var tr transport.Transport
	where := fmt.Sprintf("on port %d", nf.Port)
	if *useMDNS {
		tr, err = nf.mdnsTransport(log, *mdnsService, *mdnsName, false, &cfg)
		where = "over mDNS"
	} else {
		tr, err = nf.Transport(log, stderr)
		cfg.Prober = adv.Prober(healthcheck.NewRegistry())
	}
	if err != nil {
		return err
	}
	cfg.Self, cfg.Transport, cfg.Codec = self, adv.Transport(tr), adv.Codec(cfg.Codec)
	// Our health server runs in this process: the self-check asks it, not
	// a connection to it over loopback (14 to 15 % of a member's CPU).
	cfg.SelfCheck = func(context.Context) error { return hs.Check() }
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return ConfigError(fs.Name(), err)
	}
	group.Store(g)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	out := NewPrinter(stdout, nf.JSON)
	out.Say("joined group %q %s as %s, health %s", nf.Group, where, g.Self().ID, ProbedAt(hs.URI(), tr, nf.only4))
	g.AddListener(func(e discovery.Event) bool {
		out.event("", e)
		return true
	})
	select {
	case <-ctx.Done():
	case <-out.Failed:
	case <-ReaderGone(ctx, stdout):
	}
	leaveCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = g.Leave(leaveCtx)
	out.Say("left group %q", nf.Group)
	return errors.Join(err, WriteErr(out))
}

// WriteErr is the printer's write error, if it matters: a reader that
// went away (EPIPE) is an ordinary end, as it is for other Unix tools.
func WriteErr(p *Printer) error {
	err := p.Err()
	if err == nil || errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return fmt.Errorf("writing output: %w", err)
}

// ProbedAt lists the addresses peers will probe to reach the health server
// at u: when u names no host (the server listens on every address), each
// link's own address, as the Group advertises it on that link.
func ProbedAt(u *url.URL, tr transport.Transport, only4 bool) string {
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	ls, ok := tr.(transport.LinkSender)
	if host != "" && (err != nil || !a.IsUnspecified()) || !ok {
		return u.String()
	}
	var uris []string
	for _, l := range ls.Links() {
		if !l.Addr.IsValid() || (only4 || a.Is4()) && !l.Addr.Is4() {
			continue
		}
		c := *u
		c.Host = net.JoinHostPort(l.Addr.String(), u.Port())
		uris = append(uris, fmt.Sprintf("%s (%s)", c.String(), l.Name))
	}
	if len(uris) == 0 {
		return fmt.Sprintf("port %s (no interface has an address yet)", u.Port())
	}
	return strings.Join(uris, ", ")
}
