package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
)

func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pir watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf netFlags
	nf.register(fs)
	probe := fs.Bool("wait-probe", false, "list a member only after its first successful health probe (default: as soon as it announces)")
	mdnsService := fs.String("mdns", "", "watch over mDNS/DNS-SD: every service of this type (e.g. _http._tcp), whatever software published it, or \"pir\" for the group's pir members")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pir watch [flags]\n\nObserve a group without announcing: ask who is there, then print members and\ntheir events as they happen, until interrupted. Members are probed, so health\nchanges and failures show too. Original pir peers are listed like any other.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := nf.logger(stderr)
	cfg, err := nf.groupConfig(log, stderr)
	if err != nil {
		return err
	}
	var tr transport.Transport
	where := fmt.Sprintf("on port %d", nf.port)
	switch *mdnsService {
	case "":
		tr, err = nf.transport(log, stderr)
	case "pir":
		tr, err = nf.mdnsTransport(log, "", "")
		where = "over mDNS"
	default:
		tr, err = nf.mdnsTransport(log, *mdnsService, "")
		where = "over mDNS, service " + *mdnsService
	}
	if err != nil {
		return err
	}
	cfg.Passive, cfg.Transport, cfg.JoinBeforeProbe = true, tr, !*probe
	g, err := discovery.Join(ctx, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	out := &printer{w: stdout, json: nf.json}
	out.say("watching group %q %s", nf.group, where)
	g.AddListener(func(e discovery.Event) bool {
		out.event("", e)
		return true
	})
	<-ctx.Done()
	return g.Close()
}
