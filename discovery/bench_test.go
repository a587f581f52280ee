package discovery_test

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport/mem"
)

// BenchmarkMemoryPerPeer tracks 10,000 peers on the in-memory LAN and
// reports the heap each one costs (bytes/peer), everything included: the
// member, its URIs, its policy tracker and its scheduled tasks. It runs
// under the default policy (PhiAccrual, Policy nil) and under Threshold.
func BenchmarkMemoryPerPeer(b *testing.B) {
	for _, c := range []struct {
		name   string
		policy score.HealthPolicy
	}{
		{"PhiAccrual", nil},
		{"Threshold", score.NewThreshold(score.ThresholdConfig{})},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkMemoryPerPeer(b, c.policy) })
	}
}

// peerProfile names a file for the heap profile taken with the peers
// tracked, where -memprofile would show only what is left after Close:
//
//	go test -run XXX -bench MemoryPerPeer/PhiAccrual -benchtime 1x -args -peerprofile /tmp/peers.prof
//	go tool pprof -sample_index=inuse_space -top /tmp/peers.prof
var peerProfile = flag.String("peerprofile", "", "write a heap profile of the 10,000 peers of BenchmarkMemoryPerPeer to this file")

func benchmarkMemoryPerPeer(b *testing.B, policy score.HealthPolicy) {
	const peers = 10000
	if *peerProfile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	for range b.N {
		b.StopTimer()
		// NoLoopback: nobody reads src, so its own datagrams looped back
		// would fill its queue (4096 of them) and count as the Group's.
		lan, err := mem.NewLAN(mem.Config{QueueLen: 4096, NoLoopback: true})
		if err != nil {
			b.Fatal(err)
		}
		ok := healthcheck.ProberFunc(func(context.Context, *url.URL) error { return nil })
		g, err := discovery.Join(context.Background(), discovery.Config{
			Name: "web", Transport: lan.Join(), Prober: ok, MaxPeers: 2 * peers, Policy: policy,
			// One source introduces them all, as fast as it can: lift the
			// limits that are there to stop exactly that.
			MaxPending: 2 * peers, NewPeerRate: -1, MaxProbeRate: -1,
			Self: discovery.Peer{ID: "self", HealthURI: &url.URL{Scheme: "tcp", Host: "198.18.0.1:1"}},
		})
		if err != nil {
			b.Fatal(err)
		}
		src := lan.Join()
		joined := make(chan struct{})
		n := 0
		remove := g.AddListener(func(e discovery.Event) bool {
			if n++; n == peers {
				close(joined)
				return false
			}
			return true
		})
		before := heap()
		b.StartTimer()
		for i := range peers {
			d := fmt.Sprintf("web|%08x-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.%d.%d:37821|tcp://198.18.%d.%d:80",
				i, i/250, i%250+1, i/250, i%250+1)
			if err := src.Send([]byte(d)); err != nil {
				b.Fatal(err)
			}
			if i%1000 == 999 { // let the group keep up with the LAN's queue
				waitFor(b, func() bool { s := g.Stats(); return s.Received >= uint64(i) })
			}
		}
		select {
		case <-joined:
		case <-time.After(60 * time.Second):
			b.Fatalf("only %d of %d peers joined", g.Stats().Members, peers)
		}
		b.StopTimer()
		after := heap()
		b.ReportMetric(float64(after-before)/peers, "bytes/peer")
		if *peerProfile != "" {
			writeHeapProfile(b, *peerProfile)
		}
		remove()
		g.Close()
		src.Close()
	}
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatalf("write heap profile: %v", err)
	}
}

// waitFor polls cond, yielding the processor between tries.
func waitFor(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		runtime.Gosched()
	}
}
