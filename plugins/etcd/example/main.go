// Example is pir's etcd plugin at work. In join mode it joins a pir group on
// the LAN and mirrors itself into etcd, deleting the keys of the peers it
// sees leave; in watch mode it follows the group through etcd, from
// anywhere etcd is reachable, and prints the same events a member would.
//
//	go run ./example -etcd http://127.0.0.1:2379 join    # on each host of the LAN
//	go run ./example -etcd http://127.0.0.1:2379 watch   # anywhere
//
// join multicasts on your real interfaces (224.0.0.1:9999): run it on a
// network you own. With -lan mem the group lives in an in-memory LAN inside
// the process instead (a group of one), to try the etcd side alone. Stop
// join with Ctrl-C: it leaves etcd and the group at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/multicast"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

// run runs the example until ctx is done; it prints what happens on out.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	endpoints := fs.String("etcd", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	group := fs.String("group", "abc", "pir group name")
	prefix := fs.String("prefix", pireetcd.DefaultPrefix, "etcd key prefix")
	id := fs.String("id", "", "member ID (join; empty means a random UUID)")
	ttl := fs.Duration("ttl", 10*time.Second, "lease TTL: how long a crashed member stays in etcd (join)")
	lan := fs.String("lan", "multicast", `"multicast" (224.0.0.1:9999 on every interface) or "mem" (in-process) (join)`)
	health := fs.String("health", "", "health server address (join; default 0.0.0.0:0, 127.0.0.1:0 with -lan mem)")
	addr := fs.String("addr", "", "this host's LAN address, written for watchers in place of 0.0.0.0 (join)")
	comms := fs.String("comms", "", "where the application is reached, e.g. tcp://198.18.0.1:80 (join)")
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: example [flags] join|watch")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "join" && fs.Arg(0) != "watch") {
		fs.Usage()
		return errors.New("say join or watch")
	}

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()

	if fs.Arg(0) == "watch" {
		return watch(ctx, cli, *prefix, *group, out)
	}
	j := joinOpts{group: *group, prefix: *prefix, id: *id, ttl: *ttl, lan: *lan, health: *health}
	if *addr != "" {
		a, err := netip.ParseAddr(*addr)
		if err != nil {
			return fmt.Errorf("-addr: %w", err)
		}
		j.addr = netip.AddrPortFrom(a, multicast.DefaultPort)
	}
	if *comms != "" {
		u, err := url.Parse(*comms)
		if err != nil {
			return fmt.Errorf("-comms: %w", err)
		}
		j.comms = u
	}
	return join(ctx, cli, j, out)
}

type joinOpts struct {
	group, prefix, id, lan, health string
	ttl                            time.Duration
	addr                           netip.AddrPort
	comms                          *url.URL
}

// join runs one member with a Mirror until ctx is done, then leaves.
func join(ctx context.Context, cli *clientv3.Client, o joinOpts, out io.Writer) error {
	var tr transport.Transport
	switch o.lan {
	case "multicast":
		c, err := multicast.New(multicast.Config{})
		if err != nil {
			return err
		}
		tr = c
		if o.health == "" {
			o.health = "0.0.0.0:0"
		}
	case "mem":
		l, err := mem.NewLAN(mem.Config{Loopback: true})
		if err != nil {
			return err
		}
		tr = l.Join()
		if o.health == "" {
			o.health = "127.0.0.1:0"
		}
	default:
		return fmt.Errorf("-lan %q: want multicast or mem", o.lan)
	}

	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start(o.health); err != nil {
		tr.Close()
		return err
	}
	defer hc.Close()

	g, err := discovery.Join(ctx, discovery.Config{
		Name:      o.group,
		Self:      discovery.Peer{ID: o.id, HealthURI: hc.URI(), CommsURI: o.comms},
		Transport: tr,
	})
	if err != nil {
		return err
	}
	defer g.Close()
	g.AddListener(func(e discovery.Event) bool {
		fmt.Fprintln(out, "lan:", e)
		return true
	})

	cfg := pireetcd.DefaultMirrorConfig(o.group)
	cfg.Prefix, cfg.TTL, cfg.Addr = o.prefix, o.ttl, o.addr
	m, err := pireetcd.StartMirror(ctx, g, cli, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "joined %s as %s, mirrored at %s\n", o.group, g.Self().ID, m.Key())

	<-ctx.Done()
	lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Leave(lctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "left")
	return nil
}

// watch prints the group's events, as etcd shows them, until ctx is done.
func watch(ctx context.Context, cli *clientv3.Client, prefix, group string, out io.Writer) error {
	cfg := pireetcd.DefaultWatchConfig(group)
	cfg.Prefix = prefix
	w, err := pireetcd.Watch(ctx, cli, cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	fmt.Fprintf(out, "watching %s: %d members\n", group, len(w.Members()))
	w.AddListener(func(e discovery.Event) bool {
		fmt.Fprintln(out, "etcd:", e)
		return true
	})
	<-ctx.Done()
	return nil
}
