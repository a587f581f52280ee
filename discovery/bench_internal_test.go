package discovery

import (
	"context"
	"net/netip"
	"net/url"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// BenchmarkHandleAnnouncement measures what the Group does with one
// announcement from a member it already tracks: decode, checks, lookup,
// update. This is the steady-state cost of every datagram.
func BenchmarkHandleAnnouncement(b *testing.B) {
	lan, err := mem.NewLAN(mem.Config{})
	if err != nil {
		b.Fatal(err)
	}
	// A Group whose goroutines are not running: the benchmark plays the
	// receiver and the owner itself.
	ok := healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil })
	cfg := Config{
		Name: "abc", Transport: lan.Join(), Prober: ok,
		Self: Peer{ID: "self", HealthURI: &url.URL{Scheme: "tcp", Host: "198.18.0.1:1"}},
	}
	cfg.setDefaults()
	g := newGroup(cfg)
	defer func() { g.cancel(); g.wg.Wait() }()

	datagram := []byte("abc|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80")
	pkt := transport.Packet{N: len(datagram), Src: netip.MustParseAddrPort("198.18.0.2:7946"), IfIndex: 1}
	var in inbound
	if !g.ingest(datagram, pkt, &in) {
		b.Fatal("not ingested")
	}
	g.handle(in) // first sight: tracked, probed
	if len(g.peers) != 1 {
		b.Fatal("not tracked")
	}
	b.ReportAllocs()
	next := new(inbound) // reused, as the receive loop does
	for b.Loop() {
		if !g.ingest(datagram, pkt, next) {
			b.Fatal("dropped")
		}
		g.handle(*next)
	}
}

// TestStateSize keeps what the owner holds per peer within its size class:
// a field more in peerState would cost 32 bytes for each tracked peer
// (BenchmarkMemoryPerPeer), and every peer has a task or two scheduled.
func TestStateSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the sizes are a 64-bit platform's")
	}
	if n := unsafe.Sizeof(peerState{}); n > 288 {
		t.Errorf("peerState is %d bytes, over the 288-byte size class", n)
	}
	if n := unsafe.Sizeof(task{}); n > 32 {
		t.Errorf("task is %d bytes, over 32", n)
	}
}

// BenchmarkMakeRing measures making the ring of 10,000 pinging members
// (nextPing makes it anew after a join or a departure, and at least every
// ringMaxAge PingIntervals).
func BenchmarkMakeRing(b *testing.B) {
	lan, err := mem.NewLAN(mem.Config{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{
		Name: "abc", Transport: lan.Join(), PingInterval: time.Second,
		Prober: healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil }),
		Self:   Peer{ID: "self", HealthURI: &url.URL{Scheme: "tcp", Host: "198.18.0.1:1"}},
	}
	cfg.setDefaults()
	g := newGroup(cfg)
	defer func() { g.cancel(); g.wg.Wait() }()
	if !g.pinging() {
		b.Skip("the mem transport does not ping")
	}
	for i := range 10_000 {
		id := uuid.NewString()
		g.peers[id] = &peerState{joined: true, pings: true,
			member: Member{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 7946)}}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		g.pg.ringStale = true
		g.makeRing(now)
	}
	if len(g.pg.ring) != 10_001 {
		b.Fatalf("ring of %d", len(g.pg.ring))
	}
}
