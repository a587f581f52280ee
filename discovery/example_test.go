package discovery_test

import (
	"context"
	"fmt"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/mem"
)

// Two members find each other, in the spirit of the original pir's README:
// a health-check server, a peer, a group and a listener. The in-memory LAN
// stands in for multicast; the health checks are real TCP probes on
// 127.0.0.1 speaking the pir protocol.
func Example() {
	lan, _ := mem.NewLAN(mem.Config{Loopback: true})

	start := func(id string) (*discovery.Group, *healthcheck.TCPServer) {
		hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		if err := hc.Start("127.0.0.1:0"); err != nil {
			panic(err)
		}
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name:      "abc",
			Self:      discovery.Peer{ID: id, HealthURI: hc.URI()},
			Transport: lan.Join(),
		})
		if err != nil {
			panic(err)
		}
		return g, hc
	}

	a, hcA := start("peer-a")
	defer hcA.Close()
	events := make(chan discovery.Event, 8)
	a.AddListener(func(e discovery.Event) bool {
		events <- e
		return true
	})

	b, hcB := start("peer-b")
	defer hcB.Close()
	e := <-events
	fmt.Println(e.Type, e.Member.ID)

	if err := b.Leave(context.Background()); err != nil {
		panic(err)
	}
	e = <-events
	fmt.Println(e.Type, e.Member.ID, e.Reason)
	a.Close()
	// Output:
	// joined peer-b
	// left peer-b goodbye
}

// A listener that returns false stops listening, as in the original pir.
func ExampleGroup_AddListener() {
	lan, _ := mem.NewLAN(mem.Config{Loopback: true})
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer hc.Close()
	join := func(id string) *discovery.Group {
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name: "abc", Self: discovery.Peer{ID: id, HealthURI: hc.URI()}, Transport: lan.Join(),
		})
		if err != nil {
			panic(err)
		}
		return g
	}
	a := join("a")
	defer a.Close()
	first := make(chan string)
	a.AddListener(func(e discovery.Event) bool {
		first <- e.Member.ID
		return false
	})
	b := join("b")
	defer b.Close()
	fmt.Println("first member:", <-first)
	fmt.Println("members:", len(a.Members()))
	// Output:
	// first member: b
	// members: 1
}

// A member changes its metadata while it runs; the others see Updated.
func ExampleGroup_Update() {
	lan, _ := mem.NewLAN(mem.Config{Loopback: true})
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	if err := hc.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer hc.Close()
	join := func(id string) *discovery.Group {
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name: "abc", Self: discovery.Peer{ID: id, HealthURI: hc.URI()}, Transport: lan.Join(),
		})
		if err != nil {
			panic(err)
		}
		return g
	}
	a := join("a")
	defer a.Close()
	events := make(chan discovery.Event, 8)
	a.AddListener(func(e discovery.Event) bool {
		events <- e
		return true
	})
	b := join("b")
	defer b.Close()
	fmt.Println((<-events).Type)

	if err := b.Update(context.Background(), nil, map[string]string{"role": "leader"}); err != nil {
		panic(err)
	}
	e := <-events
	fmt.Println(e.Type, e.Member.ID, e.Member.Meta["role"])
	// Output:
	// joined
	// updated b leader
}
