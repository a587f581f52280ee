// Basic is the original pir README's example, modernised: a peer with a
// health-check server joins the "abc" group on port 9999 and prints who it
// finds until interrupted, then leaves gracefully.
//
//	go run ./examples/basic
//
// Run it in two terminals (or on two hosts of one LAN) to see them meet. It
// multicasts on your real interfaces: run it on a network you own.
package main

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/multicast"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// The health-check server other members probe: the original pir
	// protocol (one byte 0x00 each way) on every address, a free port.
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("0.0.0.0:0"); err != nil {
		log.Fatal(err)
	}
	defer hc.Close()

	// A peer who communicates over TCP on 10.1.1.1:12000.
	peer := discovery.Peer{
		HealthURI: hc.URI(), // tcp://0.0.0.0:PORT: each interface's own address is announced
		CommsURI:  &url.URL{Scheme: "tcp", Host: "10.1.1.1:12000"},
	}

	// The "abc" group on port 9999, at 224.0.0.1 as the original.
	tr, err := multicast.New(multicast.Config{}) // 224.0.0.1:9999, every interface
	if err != nil {
		log.Fatal(err)
	}
	g, err := discovery.Join(ctx, discovery.Config{Name: "abc", Self: peer, Transport: tr})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("joined abc as", g.Self().ID)
	g.AddListener(func(e discovery.Event) bool {
		fmt.Println("Membership change event has occurred:", e)
		return true
	})

	<-ctx.Done()
	if err := g.Leave(context.Background()); err != nil {
		log.Print(err)
	}
}
