package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/plugins/etcd/internal/etcdtest"
)

// BenchmarkWatcherSeesJoinAndLeave measures how long a Watcher (its own
// etcd client) takes to report a member that starts mirroring (from
// StartMirror, self-probe included, to the Watcher's Joined) and one that
// leaves (from Mirror.Leave to the Watcher's Left), against a real etcd on
// loopback. It reports medians and 90th percentiles in milliseconds:
//
//	go test -run '^$' -bench WatcherSeesJoinAndLeave -benchtime 100x
func BenchmarkWatcherSeesJoinAndLeave(b *testing.B) {
	e := newEnv(b)
	w, _ := e.watch("")
	seen := make(chan discovery.Event, 16)
	w.AddListener(func(ev discovery.Event) bool {
		seen <- ev
		return true
	})
	cli := etcdtest.Client(b, e.etcd.Endpoint)
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(b, hc.Start("127.0.0.1:0"))
	b.Cleanup(func() { hc.Close() })
	await := func(typ discovery.EventType, id string) time.Time {
		for {
			select {
			case ev := <-seen:
				if ev.Type == typ && ev.Member.ID == id {
					return time.Now()
				}
			case <-time.After(wait):
				b.Fatalf("no %v event for %s", typ, id)
			}
		}
	}

	var joins, leaves []time.Duration
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("m%d", i)
		g, err := discovery.Join(ctx, discovery.Config{Name: e.group, Self: discovery.Peer{ID: id, HealthURI: hc.URI()}, Transport: e.lan.Join()})
		require.NoError(b, err)
		start := time.Now()
		m, err := pireetcd.StartMirror(ctx, g, cli, pireetcd.MirrorConfig{Prefix: e.prefix, Group: e.group})
		require.NoError(b, err)
		joins = append(joins, await(discovery.Joined, id).Sub(start))
		start = time.Now()
		require.NoError(b, m.Leave(ctx))
		leaves = append(leaves, await(discovery.Left, id).Sub(start))
	}
	b.StopTimer()
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(ds[len(ds)/2]), name+"-median-ms")
		b.ReportMetric(ms(ds[len(ds)*9/10]), name+"-p90-ms")
	}
	report("join", joins)
	report("leave", leaves)
}
