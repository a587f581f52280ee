// Listener shows the event API: it keeps a live table of the group's
// members, reacting to joins, health changes, updates and departures, and
// stops listening after a given number of events by returning false.
//
//	go run ./examples/listener -group web -port 9999 -events 20
//
// It only watches (a passive member): it announces nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/signal"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport/multicast"
)

func main() {
	group := flag.String("group", "web", "group name")
	port := flag.Int("port", 9999, "UDP port")
	max := flag.Int("events", 0, "stop after this many events (0: never)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tr, err := multicast.New(multicast.Config{
		Group: netip.AddrPortFrom(multicast.DefaultGroupV4, uint16(*port)),
	})
	if err != nil {
		log.Fatal(err)
	}
	g, err := discovery.Join(ctx, discovery.Config{Name: *group, Transport: tr, Passive: true})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	done := make(chan struct{})
	n := 0
	// A new listener first hears a Joined event for every current member,
	// so the table starts complete.
	g.AddListener(func(e discovery.Event) bool {
		switch e.Type {
		case discovery.Joined:
			fmt.Printf("+ %-36s %s\n", e.Member.ID, e.Member.CommsURI)
		case discovery.HealthChanged:
			fmt.Printf("~ %-36s health %.2f (%s)\n", e.Member.ID, e.Member.Health, e.Member.Verdict)
		case discovery.Updated:
			fmt.Printf("* %-36s now %s (was %s)\n", e.Member.ID, e.Member.CommsURI, e.Prev.CommsURI)
		case discovery.Left:
			fmt.Printf("- %-36s %s\n", e.Member.ID, e.Reason)
		}
		fmt.Printf("  %d members\n", len(g.Members())) // listeners may call the Group
		if n++; *max > 0 && n >= *max {
			close(done)
			return false // stop listening
		}
		return true
	})
	select {
	case <-ctx.Done():
	case <-done:
	}
}
