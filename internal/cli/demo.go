package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/multicast"
)

// exitCode makes run exit with a given code: the demo's inner run's.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type demoPeer struct {
	name string
	g    *discovery.Group
	hs   *healthcheck.TCPServer
}

type seen struct {
	who string
	e   discovery.Event
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pir demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("peers", 4, "number of peers (3 to 20)")
	v6 := fs.Bool("6", false, "use IPv6 multicast (ff02::8070:6972) instead of IPv4 (224.0.0.1)")
	memOnly := fs.Bool("mem", false, "use the in-memory LAN instead of real multicast")
	port := fs.Int("port", multicast.DefaultPort, "UDP port of the demo group")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: pir demo [flags]

Start several peers in this process and show pir at work: they discover each
other, one crashes and is detected by its failing health probes, one leaves
gracefully and is removed at once. Real multicast on loopback inside a private
network namespace (made with unshare; nothing leaves the machine). Where no
namespace can be made, the peers meet on the in-memory LAN instead; health
checks are real TCP probes either way.

`)
		fs.PrintDefaults()
	}
	if err := ParseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *n < 3 || *n > 20 {
		return fmt.Errorf("-peers %d: want 3 to 20", *n)
	}

	out := &Printer{w: stdout, start: time.Now()}
	newTransport, healthHost, where, err := demoNetwork(*memOnly, *v6, uint16(*port), stderr)
	if err != nil {
		return err
	}
	if newTransport == nil {
		return nil // the demo ran in the namespace; where holds its exit status
	}
	out.Say("pir demo: %d peers in group %q, %s", *n, "demo", where)
	out.Say("defaults: announce every 1s, probe every 2s (timeout 2s; every 0.5s once a probe failed)")
	out.Say("removal (phi-accrual): a failed probe while the peer's announcements are unusually late, or 3 failed probes in a row; then up to 3 other peers confirm")

	events := make(chan seen, 1024)
	var peers []*demoPeer
	defer func() {
		for _, p := range peers {
			p.g.Close()
			p.hs.Close()
		}
	}()
	start := func(name string) (*demoPeer, error) {
		hs := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		if err := hs.Start(netip.AddrPortFrom(healthHost, 0).String()); err != nil {
			return nil, err
		}
		tr, err := newTransport()
		if err != nil {
			hs.Close()
			return nil, err
		}
		g, err := discovery.Join(ctx, discovery.Config{
			Name: "demo", Self: discovery.Peer{ID: name, HealthURI: hs.URI()}, Transport: tr,
		})
		if err != nil {
			hs.Close()
			return nil, err
		}
		g.AddListener(func(e discovery.Event) bool {
			select {
			case events <- seen{name, e}:
			case <-ctx.Done():
			}
			return true
		})
		return &demoPeer{name: name, g: g, hs: hs}, nil
	}
	// wait reads events, printing them, until done says so; then it prints
	// the events still on their way (listeners run on their own).
	wait := func(what string, limit time.Duration, done func() bool) (at time.Time, err error) {
		timeout := time.After(limit)
		for !done() {
			select {
			case s := <-events:
				out.event(s.who, s.e)
			case <-timeout:
				return at, fmt.Errorf("demo: %s: nothing after %v", what, limit)
			case <-ctx.Done():
				return at, ctx.Err()
			}
		}
		at = time.Now()
		for {
			select {
			case s := <-events:
				out.event(s.who, s.e)
			case <-time.After(20 * time.Millisecond):
				return at, nil
			}
		}
	}
	sees := func(p *demoPeer, want []*demoPeer) bool {
		for _, q := range want {
			if _, ok := p.g.Member(q.name); !ok && q != p {
				return false
			}
		}
		return true
	}

	// 1. Peers join one by one; each learns the others by its query.
	for i := range *n {
		t0 := time.Now()
		p, err := start(fmt.Sprintf("peer-%d", i+1))
		if err != nil {
			return err
		}
		out.Say("%s starts, health %s", p.name, p.hs.URI())
		peers = append(peers, p)
		at, err := wait(p.name+" joining", 10*time.Second, func() bool {
			return slices.IndexFunc(peers, func(q *demoPeer) bool { return !sees(q, peers) }) < 0
		})
		if err != nil {
			return err
		}
		if i > 0 {
			out.Say("%s and the %d before it see each other, %v after it started", p.name, i, at.Sub(t0).Round(time.Microsecond))
		}
	}
	out.Say("all %d peers see each other", *n)

	// 2. A crash: no goodbye, the health server just stops answering.
	crashed, alive := peers[len(peers)-1], peers[:len(peers)-1]
	peers = alive
	out.Say("%s crashes (no goodbye): detection needs failed probes", crashed.name)
	t0 := time.Now()
	crashed.g.Close()
	crashed.hs.Close()
	at, err := wait("detecting the crash", 30*time.Second, func() bool {
		return slices.IndexFunc(alive, func(q *demoPeer) bool { _, ok := q.g.Member(crashed.name); return ok }) < 0
	})
	if err != nil {
		return err
	}
	out.Say("every survivor removed %s, %v after the crash", crashed.name, at.Sub(t0).Round(time.Millisecond))

	// 3. A graceful leave: a goodbye, acted on at once.
	leaver, rest := alive[len(alive)-1], alive[:len(alive)-1]
	peers = rest
	out.Say("%s leaves gracefully (goodbye)", leaver.name)
	t0 = time.Now()
	if err := leaver.g.Leave(ctx); err != nil {
		return err
	}
	leaver.hs.Close()
	at, err = wait("the goodbye", 10*time.Second, func() bool {
		return slices.IndexFunc(rest, func(q *demoPeer) bool { _, ok := q.g.Member(leaver.name); return ok }) < 0
	})
	if err != nil {
		return err
	}
	out.Say("every remaining peer removed %s, %v after its goodbye", leaver.name, at.Sub(t0).Round(time.Microsecond))

	names := make([]string, len(rest))
	for i, p := range rest {
		names[i] = p.name
	}
	if len(names) == 1 {
		out.Say("done: %s is the last peer in the group; closing", names[0])
	} else {
		out.Say("done: %s and %s are still in the group; closing", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	return nil
}

// demoNetwork picks where the demo's peers meet. It returns a nil
// newTransport when it ran the demo itself in a private network namespace
// (re-executing this program there) and the error is the run's exit status.
func demoNetwork(memOnly, v6 bool, port uint16, stderr io.Writer) (newTransport func() (transport.Transport, error), healthHost netip.Addr, where string, err error) {
	useMem := func(why string) (func() (transport.Transport, error), netip.Addr, string, error) {
		lan, err := mem.NewLAN(mem.Config{Loopback: true}) // health servers on 127.0.0.1: members must be "on this host"
		if err != nil {
			return nil, netip.Addr{}, "", err
		}
		return func() (transport.Transport, error) { return lan.Join(), nil },
			netip.MustParseAddr("127.0.0.1"), "on the in-memory LAN (" + why + ")", nil
	}
	if memOnly {
		return useMem("-mem")
	}
	if !netlab.Inside() {
		code, ran, reason := netlab.Reexec()
		if ran {
			if code != 0 {
				return nil, netip.Addr{}, "", exitCode(code)
			}
			return nil, netip.Addr{}, "", nil
		}
		fmt.Fprintf(stderr, "pir demo: no private network namespace (%s)\n", reason)
		return useMem("no private network namespace")
	}
	if ok, reason := netlab.Enter(); !ok {
		return nil, netip.Addr{}, "", fmt.Errorf("setting up the private network namespace: %s", reason)
	}
	cfg := multicast.Config{Interfaces: []string{netlab.Loopback}, Network: "udp4",
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, port)}
	host := netlab.LoopbackV4
	if v6 {
		if !netlab.AvailableIPv6() {
			return nil, netip.Addr{}, "", fmt.Errorf("-6: IPv6 multicast is unavailable in the namespace")
		}
		cfg.Network, cfg.Group, host = "udp6", netip.AddrPortFrom(multicast.DefaultGroupV6, port), netlab.LoopbackV6
	}
	return func() (transport.Transport, error) { return multicast.New(cfg) }, host,
		fmt.Sprintf("%s multicast %s on loopback in a private network namespace", cfg.Network, cfg.Group), nil
}
