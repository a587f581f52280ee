package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// The one-shot watch (-t) listens for listenFor, long enough to hear every
// live member announce at least once whether or not it answers the query
// (announcements come every second, ±10 %), then waits for the first probes
// of the members heard to finish, for at most probeWait more (the default
// probe timeout, 2 s, and a little).
const (
	listenFor = 1200 * time.Millisecond
	probeWait = 2500 * time.Millisecond
)

func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pir watch", flag.ContinueOnError)
	var nf NetFlags
	nf.Register(fs)
	probe := fs.Bool("wait-probe", false, "list a member only after its first successful health probe (default: as soon as it announces)")
	once := fs.Bool("t", false, "list the members once, when the group has answered and their first probes are done, then exit (like avahi-browse -t)")
	mdnsService := fs.String("mdns", "", "watch over mDNS/DNS-SD: every service of this type (e.g. _http._tcp), whatever software published it (with -group, only pir members of that group and other software's services), or \"pir\" for the group's pir members")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pir watch [flags]\n\nObserve a group without announcing: ask who is there, then print members and\ntheir events as they happen, until interrupted. Members are probed, so health\nchanges and failures show too. Original pir peers are listed like any other.\nWith -t, list the members that answered and passed their first probe, then\nexit.\n\n")
		fs.PrintDefaults()
	}
	if err := ParseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := nf.Check(fs.Name(), SetFlags(fs), *mdnsService != ""); err != nil {
		return err
	}
	log := nf.Logger(stderr)
	cfg, err := nf.GroupConfig(log, stderr)
	if err != nil {
		return err
	}
	adv := NewAdviser(stderr, nf.Group, nf.KeyFile)
	var tr transport.Transport
	where := fmt.Sprintf("on port %d", nf.Port)
	header := "" // the header line, when not "watching group G WHERE"
	switch *mdnsService {
	case "":
		tr, err = nf.Transport(log, stderr)
		cfg.Prober = adv.Prober(healthcheck.NewRegistry())
	case "pir":
		tr, err = nf.mdnsTransport(log, "", "", false, &cfg)
		where = "over mDNS"
	default:
		// Every instance of the type, whatever its group, unless -group
		// names one.
		all := !SetFlags(fs)["group"]
		tr, err = nf.mdnsTransport(log, *mdnsService, "", all, &cfg)
		header = fmt.Sprintf("watching service %s over mDNS", Printable(*mdnsService))
		if !all {
			header = fmt.Sprintf("watching group %q over mDNS, service %s", nf.Group, Printable(*mdnsService))
		}
	}
	if err != nil {
		return err
	}
	// -t lists members that passed their first probe, as -wait-probe does.
	cfg.Passive, cfg.Transport, cfg.JoinBeforeProbe = true, adv.Transport(tr), !*probe && !*once
	cfg.Codec = adv.Codec(cfg.Codec)
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return ConfigError(fs.Name(), err)
	}
	defer g.Close()
	out := NewPrinter(stdout, nf.JSON)
	if *once {
		if err := settle(ctx, g); err != nil {
			return err
		}
		members := g.Members()
		slices.SortFunc(members, func(a, b discovery.Member) int { return cmp.Compare(a.ID, b.ID) })
		for _, m := range members {
			out.event("", discovery.Event{Type: discovery.Joined, Member: m, At: m.Joined})
		}
		return WriteErr(out)
	}
	if header == "" {
		header = fmt.Sprintf("watching group %q %s", nf.Group, where)
	}
	out.Say("%s", header)
	g.AddListener(func(e discovery.Event) bool {
		out.event("", e)
		return true
	})
	select {
	case <-ctx.Done():
	case <-out.Failed:
	case <-ReaderGone(ctx, stdout):
	}
	if err := g.Close(); err != nil {
		return err
	}
	return WriteErr(out)
}

// settle waits until the group has answered (listenFor) and no peer heard
// waits for its first probe, or probeWait more has passed, or ctx is done
// (Ctrl-C: list what is known).
func settle(ctx context.Context, g *discovery.Group) error {
	listened := time.NewTimer(listenFor)
	defer listened.Stop()
	select {
	case <-listened.C:
	case <-ctx.Done():
		return nil
	}
	deadline := time.NewTimer(probeWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for g.Stats().Pending > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
