// IPv6-only joins a group over IPv6 multicast alone, for hosts with no IPv4
// at all. The health-check server listens on [::]; each interface announces
// its own IPv6 address (a global or unique-local one, else its link-local
// address, which receivers dial through the interface they heard it on).
//
//	go run ./examples/ipv6-only -iface eth0
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/multicast"
)

func main() {
	ifaces := flag.String("iface", "", "comma-separated interfaces (default: all suitable)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("[::]:0"); err != nil {
		log.Fatal(err)
	}
	defer hc.Close()

	cfg := multicast.Config{Network: "udp6"} // group ff02::8070:6972, port 9999
	if *ifaces != "" {
		cfg.Interfaces = strings.Split(*ifaces, ",")
	}
	tr, err := multicast.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	g, err := discovery.Join(ctx, discovery.Config{
		Name: "v6", Self: discovery.Peer{HealthURI: hc.URI()}, Transport: tr,
	})
	if err != nil {
		log.Fatal(err)
	}
	g.AddListener(func(e discovery.Event) bool {
		fmt.Println(e)
		return true
	})
	<-ctx.Done()
	if err := g.Leave(context.Background()); err != nil {
		log.Print(err)
	}
}
