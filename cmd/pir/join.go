package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// healthServer is what join needs of the healthcheck servers.
type healthServer interface {
	Start(addr string) error
	URI() *url.URL
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
	fs.SetOutput(stderr)
	var nf netFlags
	nf.register(fs)
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := nf.logger(stderr)

	// The server starts before the Group; it knows the Group's members
	// once there is one.
	var group atomic.Pointer[discovery.Group]
	hs, err := newHealthServer(*health, func(a netip.Addr) bool { g := group.Load(); return g != nil && g.Knows(a) })
	if err != nil {
		return err
	}
	if err := hs.Start(nf.healthListenAddr()); err != nil {
		return fmt.Errorf("health-check server: %w", err)
	}
	defer hs.Close()
	self := discovery.Peer{ID: *id, HealthURI: hs.URI(), Meta: meta}
	if *comms != "" {
		if self.CommsURI, err = url.Parse(*comms); err != nil {
			return fmt.Errorf("-comms: %w", err)
		}
	}
	cfg, err := nf.groupConfig(log, stderr)
	if err != nil {
		return err
	}
	var tr transport.Transport
	where := fmt.Sprintf("on port %d", nf.port)
	if *useMDNS {
		tr, err = nf.mdnsTransport(log, *mdnsService, *mdnsName)
		where = "over mDNS"
	} else {
		tr, err = nf.transport(log, stderr)
	}
	if err != nil {
		return err
	}
	cfg.Self, cfg.Transport = self, tr
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return err
	}
	group.Store(g)
	out := &printer{w: stdout, json: nf.json}
	out.say("joined group %q %s as %s, health %s", nf.group, where, g.Self().ID, hs.URI())
	g.AddListener(func(e discovery.Event) bool {
		out.event("", e)
		return true
	})
	<-ctx.Done()
	leaveCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = g.Leave(leaveCtx)
	out.say("left group %q", nf.group)
	return err
}
