// Example joins a pir group that spans several LANs: it multicasts on its
// own LAN, as every pir member does, and relays through
// github.com/hashicorp/memberlist to the members of the other LANs, which
// multicast cannot reach across the routers between them. It prints who it
// finds until interrupted, then leaves gracefully.
//
// On a host of site A (LAN 198.18.0.0/24) and one of site B
// (198.18.1.0/24), each seeding memberlist with the other:
//
//	go run ./example -iface eth0 -seeds 198.18.1.1:7946
//	go run ./example -iface eth0 -seeds 198.18.0.1:7946
//
// Each address is its host's first IPv4 address on -iface unless -addr
// says otherwise, and the site is that address's network (e.g.
// 198.18.0.0/24) unless -site names it. Members of one site must agree on
// the site; seeds should name at least one member of every other site.
// With -json it prints one JSON object per event, as "pir join -json"
// does; its other messages go to stderr.
//
// It multicasts on your real interfaces and listens on memberlist's port:
// run it on networks you own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/plugins/memberlist"
	"github.com/pirlan/pir/transport/multicast"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		stop()
		os.Exit(1)
	}
}

type metaFlag map[string]string

func (m metaFlag) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	m[k] = v
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	group := fs.String("group", "pir", "pir group name")
	id := fs.String("id", "", "peer ID (default: a new UUID)")
	iface := fs.String("iface", "", "interface of this LAN: multicast there, and take -addr from it (default: every interface)")
	mcast := fs.String("mcast", netip.AddrPortFrom(multicast.DefaultGroupV4, multicast.DefaultPort).String(), "IPv4 multicast group and port of the LAN")
	addrFlag := fs.String("addr", "", "IP address of this member, for memberlist, the relay and the health check; other sites must reach it (default: the first IPv4 address of -iface)")
	port := fs.Int("port", 7946, "memberlist port (TCP and UDP)")
	seeds := fs.String("seeds", "", "comma-separated memberlist addresses (host:port) to join, at least one on every other site")
	site := fs.String("site", "", "name of this member's site, the same for every member of its LAN (default: the network of -addr on its interface)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata key=value (repeatable)")
	jsonOut := fs.Bool("json", false, "print one JSON object per event")
	logLevel := fs.String("log", "off", "log level on stderr: off, error, warn, info, debug, trace")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	log := hclog.NewNullLogger()
	if *logLevel != "off" {
		log = hclog.New(&hclog.LoggerOptions{Name: "example", Level: hclog.LevelFromString(*logLevel), Output: stderr})
	}
	mgroup, err := netip.ParseAddrPort(*mcast)
	if err != nil {
		return fmt.Errorf("-mcast: %w", err)
	}
	addr, network, err := pickAddr(*addrFlag, *iface)
	if err != nil {
		return err
	}
	if *site == "" {
		if !network.IsValid() {
			return fmt.Errorf("-site: no interface has %v; name the site", addr)
		}
		*site = network.String()
	}

	// The health check other members probe, on this member's address:
	// the members of other sites probe it across the routers.
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{Logger: log})
	if err := hc.Start(netip.AddrPortFrom(addr, 0).String()); err != nil {
		return fmt.Errorf("health-check server: %w", err)
	}
	defer hc.Close()

	// The LAN: pir's multicast, as without memberlist.
	var ifaces []string
	if *iface != "" {
		ifaces = []string{*iface}
	}
	lan, err := multicast.New(multicast.Config{Group: mgroup, Interfaces: ifaces, Logger: log})
	if err != nil {
		return fmt.Errorf("multicast: %w", err)
	}

	// The bridge to the other sites. It owns lan from here on.
	cfg := memberlist.Config{
		Inner:  lan,
		Site:   *site,
		Bind:   netip.AddrPortFrom(addr, uint16(*port)),
		Logger: log,
	}
	for _, s := range strings.Split(*seeds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Seeds = append(cfg.Seeds, s)
		}
	}
	// New waits for its first try at the seeds, for 5 s at most: seeds
	// that do not answer are tried again in the background.
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := memberlist.New(startCtx, cfg)
	if err != nil {
		return err
	}

	// The group, over the bridge. It owns conn from here on.
	joinCtx, cancelJoin := context.WithTimeout(ctx, 5*time.Second)
	defer cancelJoin()
	g, err := discovery.Join(joinCtx, discovery.Config{
		Name:      *group,
		Self:      discovery.Peer{ID: *id, HealthURI: hc.URI(), Meta: meta},
		Transport: conn,
		Logger:    log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "joined group %q as %s on site %q: health %s, memberlist %v (%s), relay %v, %d other nodes\n",
		*group, g.Self().ID, *site, hc.URI(), conn.Addr(), conn.Name(), conn.RelayAddr(), conn.Stats().Nodes)
	out := &printer{w: stdout, json: *jsonOut}
	g.AddListener(func(e discovery.Event) bool {
		out.event(e)
		return true
	})

	<-ctx.Done()
	leaveCtx, cancelLeave := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelLeave()
	err = g.Leave(leaveCtx)
	fmt.Fprintf(stderr, "left group %q\n", *group)
	return err
}

// pickAddr returns the address to use, given or the first IPv4 address of
// iface, and the network it is on when an interface has it.
func pickAddr(given, iface string) (netip.Addr, netip.Prefix, error) {
	var want netip.Addr
	if given != "" {
		a, err := netip.ParseAddr(given)
		if err != nil {
			return netip.Addr{}, netip.Prefix{}, fmt.Errorf("-addr: %w", err)
		}
		want = a.Unmap()
	} else if iface == "" {
		return netip.Addr{}, netip.Prefix{}, errors.New("-addr or -iface is required: the address other sites reach this member at")
	}
	ifis, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, ifi := range ifis {
		if iface != "" && ifi.Name != iface {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ipn.IP)
			ip = ip.Unmap()
			ones, _ := ipn.Mask.Size()
			switch {
			case want.IsValid() && ip == want,
				!want.IsValid() && ip.Is4() && !ip.IsLinkLocalUnicast():
				return ip, netip.PrefixFrom(ip, ones).Masked(), nil
			}
		}
	}
	if want.IsValid() {
		return want, netip.Prefix{}, nil
	}
	return netip.Addr{}, netip.Prefix{}, fmt.Errorf("-iface %s has no IPv4 address: give -addr", iface)
}

// printer prints events as text or, like "pir join -json", JSON lines.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

type jsonEvent struct {
	Time    time.Time         `json:"time"`
	Event   string            `json:"event"`
	ID      string            `json:"id"`
	Health  string            `json:"health_uri,omitempty"`
	Comms   string            `json:"comms_uri,omitempty"`
	Addr    string            `json:"addr,omitempty"`
	Score   float64           `json:"health"`
	Verdict string            `json:"verdict,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

func (p *printer) event(e discovery.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := e.Member
	if !p.json {
		fmt.Fprintf(p.w, "%s %s\n", e.At.Format("15:04:05.000"), e)
		return
	}
	je := jsonEvent{Time: e.At, Event: e.Type.String(), ID: m.ID, Score: m.Health, Meta: m.Meta}
	if m.HealthURI != nil {
		je.Health = m.HealthURI.String()
	}
	if m.CommsURI != nil {
		je.Comms = m.CommsURI.String()
	}
	if m.Addr.IsValid() {
		je.Addr = m.Addr.String()
	}
	if m.Verdict != 0 {
		je.Verdict = m.Verdict.String()
	}
	if e.Type == discovery.Left {
		je.Reason = e.Reason.String()
	}
	b, _ := json.Marshal(je)
	fmt.Fprintf(p.w, "%s\n", b)
}
