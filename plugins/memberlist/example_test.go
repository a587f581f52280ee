package memberlist_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport/mem"

	"github.com/pirlan/pir/plugins/memberlist"
)

// Two sites, each a LAN of its own (in memory here; a multicast.Conn on a
// real one), bridged by memberlist over unicast (127.0.0.1 here): the
// member of site B sees the member of site A, with its metadata, through
// the relay.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bind := netip.MustParseAddrPort("127.0.0.1:0") // an address the other sites reach, in real life
	lanA, _ := mem.NewLAN(mem.Config{Loopback: true})
	lanB, _ := mem.NewLAN(mem.Config{Loopback: true})

	a, err := memberlist.New(ctx, memberlist.Config{Inner: lanA.Join(), Site: "A", Bind: bind})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := memberlist.New(ctx, memberlist.Config{Inner: lanB.Join(), Site: "B", Bind: bind,
		Seeds: []string{a.Addr().String()}}) // a member of the other site
	if err != nil {
		_ = a.Close()
		fmt.Println(err)
		return
	}

	// A pir member on each site, with a health server that the other
	// site probes across the routers.
	join := func(id, site string, conn *memberlist.Conn) (*discovery.Group, error) {
		hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
		if err := hc.Start("127.0.0.1:0"); err != nil {
			_ = conn.Close()
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = hc.Close() })
		return discovery.Join(ctx, discovery.Config{
			Name:      "shop",
			Self:      discovery.Peer{ID: id, HealthURI: hc.URI(), Meta: map[string]string{"site": site}},
			Transport: conn, // the Group owns it now
		})
	}
	ga, err := join("web-a", "A", a)
	if err != nil {
		_ = b.Close()
		fmt.Println(err)
		return
	}
	defer ga.Close()
	gb, err := join("web-b", "B", b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gb.Close()

	seen := make(chan discovery.Member, 1)
	gb.AddListener(func(e discovery.Event) bool {
		if e.Type == discovery.Joined && e.Member.ID == "web-a" {
			seen <- e.Member
			return false
		}
		return true
	})
	select {
	case m := <-seen:
		fmt.Println("site B sees", m.ID, "with meta", m.Meta, "relayed:", m.Addr == a.RelayAddr())
	case <-ctx.Done():
		fmt.Println("site B did not see web-a")
	}
	// Output:
	// site B sees web-a with meta map[site:A] relayed: true
}
