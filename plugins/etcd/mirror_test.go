package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pirlan/pir/discovery"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/score"
)

// A member that joins appears in etcd, with its own lease, and in a Watcher
// that started before it and in one that starts after it.
func TestJoinAppearsInEtcdAndWatcher(t *testing.T) {
	e := newEnv(t)
	w, rec := e.watch("")
	a := e.join("a")

	v, lease, ok := e.get(a.mirror.Key())
	require.True(t, ok, "a's key %s is not in etcd after StartMirror", a.mirror.Key())
	assert.Equal(t, "/pir-test/web/a", a.mirror.Key())
	assert.Equal(t, a.mirror.Stats().Lease, lease, "the key is not on the member's lease")
	assert.NotZero(t, lease)
	assert.Equal(t, "a", v["id"])
	assert.Equal(t, "web", v["group"])
	assert.Equal(t, a.hc.URI().String(), v["health_uri"])
	assert.Equal(t, map[string]any{"role": "test"}, v["meta"])
	assert.Equal(t, 1.0, v["health"])

	j := rec.waitFor(t, discovery.Joined, "a", 1)
	assert.Equal(t, a.hc.URI().String(), j.Member.HealthURI.String())
	assert.Equal(t, a.hc.URI().String(), j.Member.CommsURI.String(), "no comms URI means the health URI, as in pir")
	assert.Equal(t, "test", j.Member.Meta["role"])
	assert.Equal(t, score.Healthy, j.Member.Verdict)

	b := e.join("b")
	rec.waitFor(t, discovery.Joined, "b", 1)
	assert.Equal(t, []string{"a", "b"}, ids(w.Members()))
	m, ok := w.Member("b")
	require.True(t, ok)
	assert.Equal(t, b.hc.URI().String(), m.HealthURI.String())

	// A late watcher reads the same members, and its listener gets a
	// Joined for each first, as a Group's does.
	w2, rec2 := e.watch("")
	assert.Equal(t, []string{"a", "b"}, ids(w2.Members()))
	rec2.waitFor(t, discovery.Joined, "a", 1)
	rec2.waitFor(t, discovery.Joined, "b", 1)

	// The pir side agrees: a and b see each other.
	require.Eventually(t, func() bool { return len(a.g.Members()) == 1 && len(b.g.Members()) == 1 }, wait, 10*time.Millisecond)
	st := w.Stats()
	assert.Equal(t, 2, st.Members)
	assert.Zero(t, st.Bad)
	assert.Zero(t, st.Resyncs)
}

// Leave deletes the key at once, long before its 30 s lease would end, and
// watchers see a Left with reason Goodbye. The peer sees the goodbye on the
// LAN too.
func TestLeaveDeletesAtOnce(t *testing.T) {
	e := newEnv(t)
	_, rec := e.watch("")
	a := e.join("a")
	b := e.join("b")
	rec.waitFor(t, discovery.Joined, "b", 1)
	require.Eventually(t, func() bool { _, ok := a.g.Member("b"); return ok }, wait, 10*time.Millisecond)
	pirLeft := make(chan discovery.Event, 1)
	a.g.AddListener(func(ev discovery.Event) bool {
		if ev.Type == discovery.Left && ev.Member.ID == "b" {
			pirLeft <- ev
			return false
		}
		return true
	})

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.mirror.Leave(ctx))
	assert.False(t, e.present(b.mirror.Key()), "b's key is still in etcd after Leave returned")
	left := rec.waitFor(t, discovery.Left, "b", 1)
	assert.Equal(t, discovery.Goodbye, left.Reason)
	assert.Less(t, time.Since(start), 15*time.Second, "the key went no sooner than a 30 s lease would have ended")
	t.Logf("Leave to watcher's Left: %v", left.At.Sub(start))

	ev := <-pirLeft
	assert.Equal(t, discovery.Goodbye, ev.Reason, "Mirror.Leave also leaves the pir group")
	assert.True(t, e.present(a.mirror.Key()), "a's key went too")
	require.ErrorIs(t, b.mirror.Leave(ctx), pireetcd.ErrClosed)
}

// A member that stops without a goodbye, alone in its group so that no peer
// deletes its key, disappears from etcd when its lease ends: after Close
// (the Mirror stops keeping the lease alive), and after its etcd client
// dies with the process (the keepalive is killed).
func TestCrashEndsWithLease(t *testing.T) {
	const ttl = 3 * time.Second
	for _, tc := range []struct {
		name  string
		crash func(*member)
	}{
		{"close without leave", func(m *member) {
			require.NoError(t, m.mirror.Close())
			require.NoError(t, m.g.Close())
		}},
		{"keepalive killed", func(m *member) {
			require.NoError(t, m.cli.Close())
			require.NoError(t, m.g.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			_, rec := e.watch("")
			a := e.join("a", func(c *pireetcd.MirrorConfig) { c.TTL = ttl })
			rec.waitFor(t, discovery.Joined, "a", 1)

			start := time.Now()
			tc.crash(a)
			assert.True(t, e.present(a.mirror.Key()), "the key went at once: a crash must wait for the lease")
			require.Eventually(t, func() bool { return !e.present(a.mirror.Key()) }, wait, 50*time.Millisecond,
				"the key outlived its %v lease", ttl)
			gone := time.Since(start)
			// The last keepalive came at most ttl/3 before the crash.
			assert.Greater(t, gone, ttl/2, "the key went before its lease could have ended")
			left := rec.waitFor(t, discovery.Left, "a", 1)
			assert.Equal(t, discovery.Expired, left.Reason)
			t.Logf("crash to key gone: %v (TTL %v)", gone, ttl)
		})
	}
}

// A peer whose health probes fail is removed by the pir policy, and the
// member that saw it fail deletes its key at once, long before its lease
// (30 s) ends: watchers see Left with reason Failed.
func TestPeerDetectedDeathDeletesKey(t *testing.T) {
	e := newEnv(t)
	_, rec := e.watch("")
	a := e.join("a")
	b := e.join("b")
	require.Eventually(t, func() bool { _, ok := a.g.Member("b"); return ok }, wait, 10*time.Millisecond)
	rec.waitFor(t, discovery.Joined, "b", 1)

	// b's process dies: its etcd connection, its health server and its
	// group stop at once; nobody revokes its lease.
	start := time.Now()
	require.NoError(t, b.cli.Close())
	require.NoError(t, b.hc.Close())
	require.NoError(t, b.g.Close())

	left := rec.waitFor(t, discovery.Left, "b", 1)
	assert.Equal(t, discovery.Failed, left.Reason, "a saw b's probes fail and said so in the departure note")
	// The watcher reports Left on the departure note; a's Mirror deletes
	// the key and counts the eviction after that write returns.
	require.Eventually(t, func() bool { return !e.present(b.mirror.Key()) && a.mirror.Stats().Evictions == 1 }, wait, 10*time.Millisecond,
		"b's key deleted and counted by a's Mirror")
	assert.Less(t, time.Since(start), 15*time.Second, "the key went no sooner than its 30 s lease would have ended")
	assert.Equal(t, uint64(1), a.mirror.Stats().Evictions)
	assert.True(t, e.present(a.mirror.Key()))
	t.Logf("crash to watcher's Left (pir detection + eviction): %v", left.At.Sub(start))
}

// A member that its peers find unhealthy is deleted by them; while its own
// health check fails it does not put itself back, and once it passes again it
// does, and watchers see it join again.
func TestUnhealthyMemberStaysOutUntilHealthy(t *testing.T) {
	e := newEnv(t)
	_, rec := e.watch("")
	a := e.join("a")
	b := e.join("b")
	require.Eventually(t, func() bool { _, ok := a.g.Member("b"); return ok }, wait, 10*time.Millisecond)

	b.hc.SetHealthy(false)
	left := rec.waitFor(t, discovery.Left, "b", 1)
	assert.Equal(t, discovery.Failed, left.Reason)
	// b notices and probes itself, which fails: it stays out.
	require.Eventually(t, func() bool { return b.mirror.Stats().SelfProbeFailures >= 2 }, wait, 10*time.Millisecond)
	assert.False(t, e.present(b.mirror.Key()), "b wrote its key back while its health check fails")
	assert.False(t, b.mirror.Stats().Registered)

	b.hc.SetHealthy(true)
	rec.waitFor(t, discovery.Joined, "b", 2)
	_, lease, ok := e.get(b.mirror.Key())
	require.True(t, ok)
	assert.Equal(t, b.mirror.Stats().Lease, lease, "b wrote itself back on its own lease")
	// The watcher can see the write before the Put has returned to b.
	require.Eventually(t, func() bool { return b.mirror.Stats().Registered }, wait, 10*time.Millisecond)
	assert.Equal(t, uint64(1), b.mirror.Stats().Leases, "b's lease was never lost")
}

// A key deleted by hand (or by a peer that wrongly thought the member gone)
// comes back at once while the member is healthy.
func TestDeletedKeyIsWrittenBack(t *testing.T) {
	e := newEnv(t)
	_, rec := e.watch("")
	a := e.join("a")
	rec.waitFor(t, discovery.Joined, "a", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.admin.Delete(ctx, a.mirror.Key())
	require.NoError(t, err)
	rec.waitFor(t, discovery.Left, "a", 1)
	rec.waitFor(t, discovery.Joined, "a", 2)
	assert.True(t, e.present(a.mirror.Key()))
	// The watcher can see the write before the Put has returned to a,
	// which counts it then.
	require.Eventually(t, func() bool { return a.mirror.Stats().Writes >= 2 }, wait, 10*time.Millisecond)
	assert.Equal(t, uint64(2), a.mirror.Stats().Writes)
}

// A lease revoked behind the Mirror's back (as when etcd was unreachable for
// longer than the TTL) is replaced by a new one and the key written again.
func TestLostLeaseIsReplaced(t *testing.T) {
	e := newEnv(t)
	_, rec := e.watch("")
	a := e.join("a")
	rec.waitFor(t, discovery.Joined, "a", 1)
	old := a.mirror.Stats().Lease
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.admin.Revoke(ctx, clientv3.LeaseID(old))
	require.NoError(t, err)
	rec.waitFor(t, discovery.Joined, "a", 2)
	require.Eventually(t, func() bool { return a.mirror.Stats().Leases == 2 }, wait, 10*time.Millisecond)
	_, lease, ok := e.get(a.mirror.Key())
	require.True(t, ok)
	assert.NotEqual(t, old, lease)
	assert.Equal(t, a.mirror.Stats().Lease, lease)
}

// Bad configs are refused with every problem named.
func TestMirrorConfigValidate(t *testing.T) {
	err := pireetcd.MirrorConfig{TTL: -1, RequestTimeout: -1, RetryInterval: -1}.Validate()
	require.ErrorIs(t, err, pireetcd.ErrInvalidConfig)
	for _, want := range []string{"Group is required", "TTL", "RequestTimeout", "RetryInterval"} {
		assert.ErrorContains(t, err, want)
	}
	require.NoError(t, pireetcd.DefaultMirrorConfig("web").Validate())
	require.NoError(t, pireetcd.MirrorConfig{Group: "web"}.Validate())

	err = pireetcd.WatchConfig{Group: "\xff", RequestTimeout: -1, MaxListenerQueue: -1}.Validate()
	require.ErrorIs(t, err, pireetcd.ErrInvalidConfig)
	assert.ErrorContains(t, err, "UTF-8")
	assert.ErrorContains(t, err, "RequestTimeout")
	assert.ErrorContains(t, err, "MaxListenerQueue")
	require.NoError(t, pireetcd.DefaultWatchConfig("web").Validate())
}
