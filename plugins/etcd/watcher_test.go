package etcd_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pirlan/pir/discovery"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/plugins/etcd/internal/etcdtest"
)

// A watcher cut off from etcd while the group changes and the history is
// compacted cannot resume its watch: it re-reads the group and reports the
// difference — a member that left, one that joined, one that changed.
func TestWatcherResyncsAfterCompaction(t *testing.T) {
	e := newEnv(t)
	proxy := etcdtest.NewProxy(t, e.etcd.Endpoint)
	w, rec := e.watch(proxy.Endpoint)
	a := e.join("a")
	b := e.join("b")
	rec.waitFor(t, discovery.Joined, "a", 1)
	rec.waitFor(t, discovery.Joined, "b", 1)

	proxy.SetDown(true)
	require.NotZero(t, proxy.Cuts(), "the watcher had no connection to cut")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.mirror.Leave(ctx))
	e.join("c")
	// a's value changes behind its Mirror's back (a new comms URI), on
	// the same lease.
	v, _, ok := e.get(a.mirror.Key())
	require.True(t, ok)
	v["comms_uri"] = "tcp://198.18.0.1:8080"
	_, err := e.admin.Put(ctx, a.mirror.Key(), mustJSON(t, v), clientv3.WithIgnoreLease())
	require.NoError(t, err)
	_, err = etcdtest.Compact(ctx, e.admin)
	require.NoError(t, err)
	proxy.SetDown(false)

	rec.waitFor(t, discovery.Joined, "c", 1)
	left := rec.waitFor(t, discovery.Left, "b", 1)
	assert.Equal(t, discovery.Expired, left.Reason, "a departure the watcher missed has no known reason")
	up := rec.waitFor(t, discovery.Updated, "a", 1)
	assert.Equal(t, "tcp://198.18.0.1:8080", up.Member.CommsURI.String())
	assert.Equal(t, a.hc.URI().String(), up.Prev.CommsURI.String())
	assert.Equal(t, []string{"a", "c"}, ids(w.Members()))
	assert.GreaterOrEqual(t, w.Stats().Resyncs, uint64(1))
}

// A watcher whose connection drops, with no compaction, resumes where it
// was and misses nothing.
func TestWatcherResumesAfterReconnect(t *testing.T) {
	e := newEnv(t)
	proxy := etcdtest.NewProxy(t, e.etcd.Endpoint)
	w, rec := e.watch(proxy.Endpoint)
	e.join("a")
	rec.waitFor(t, discovery.Joined, "a", 1)
	proxy.SetDown(true)
	require.NotZero(t, proxy.Cuts(), "the watcher had no connection to cut")
	b := e.join("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.mirror.Leave(ctx))
	proxy.SetDown(false)
	left := rec.waitFor(t, discovery.Left, "b", 1)
	assert.Equal(t, discovery.Goodbye, left.Reason, "the resumed watch saw b's departure note")
	assert.Len(t, rec.of(discovery.Joined, "b"), 1)
	assert.Equal(t, []string{"a"}, ids(w.Members()))
	assert.Zero(t, w.Stats().Resyncs, "the watch resumed: no need to re-read")
}

// Values that do not decode are skipped and counted, in the first read and
// in the watch; they never make members or events, and never crash.
func TestWatcherSkipsBadValues(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(key, value string) {
		t.Helper()
		_, err := e.admin.Put(ctx, key, value)
		require.NoError(t, err)
	}
	bad := map[string]string{
		"/pir-test/web/x":     "not json",
		"/pir-test/web/y":     `{"id":"z","group":"web","health_uri":"tcp://127.0.0.1:1"}`, // id is not the key's
		"/pir-test/web/n/e/s": `{"id":"n/e/s","group":"web","health_uri":"tcp://127.0.0.1:1"}`,
		"/pir-test/web/big":   `{"id":"big","group":"web","health_uri":"tcp://127.0.0.1:1","meta":{"k":"` + strings.Repeat("x", pireetcd.MaxValueSize) + `"}}`,
		"/pir-test/web/h":     `{"id":"h","group":"web","health_uri":"tcp://127.0.0.1:1","health":2}`,
	}
	for k, v := range bad {
		put(k, v)
	}
	w, rec := e.watch("")
	assert.Equal(t, uint64(len(bad)), w.Stats().Bad)
	for k, v := range bad {
		put(k, v)
	}
	// A good value written by hand is a member like any other, and a
	// value of another group's prefix is not seen at all.
	put("/pir-test/web/good", `{"id":"good","group":"web","health_uri":"tcp://127.0.0.1:1"}`)
	put("/pir-test/web2/good", `{"id":"good","group":"web2","health_uri":"tcp://127.0.0.1:1"}`)
	rec.waitFor(t, discovery.Joined, "good", 1)
	assert.Equal(t, uint64(2*len(bad)), w.Stats().Bad)
	assert.Equal(t, []string{"good"}, ids(w.Members()))
	for _, id := range []string{"x", "y", "z", "big", "h", "n/e/s"} {
		assert.Empty(t, rec.of(discovery.Joined, id), id)
	}
}

// Listeners behave as a Group's: one that returns false stops, remove
// stops another, and Close lets each finish what is queued and waits.
func TestWatcherListeners(t *testing.T) {
	e := newEnv(t)
	w, rec := e.watch("")
	var once, removed atomic.Int32
	w.AddListener(func(discovery.Event) bool { once.Add(1); return false })
	remove := w.AddListener(func(discovery.Event) bool { removed.Add(1); return true })
	remove()
	e.join("a")
	e.join("b")
	rec.waitFor(t, discovery.Joined, "b", 1)
	assert.Equal(t, int32(1), once.Load())
	assert.Zero(t, removed.Load())

	slow := make(chan struct{})
	var got atomic.Int32
	w.AddListener(func(discovery.Event) bool { <-slow; got.Add(1); return true })
	go func() { time.Sleep(50 * time.Millisecond); close(slow) }()
	require.NoError(t, w.Close())
	assert.Equal(t, int32(2), got.Load(), "Close returned before the listener had its queued events")
	w.AddListener(func(discovery.Event) bool { t.Error("listener after Close"); return true })
	require.NoError(t, w.Close())
}

// A listener that is stuck costs a bounded queue, however many values are
// written to etcd (by anyone with write access to the prefix): a member's
// updates merge, and events beyond WatchConfig.MaxListenerQueue are dropped
// and counted, as a Group's listeners' are.
func TestWatcherListenerQueueBounded(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(id, meta string) {
		t.Helper()
		_, err := e.admin.Put(ctx, "/pir-test/web/"+id,
			`{"id":"`+id+`","group":"web","health_uri":"tcp://127.0.0.1:1","meta":{"v":"`+meta+`"}}`)
		require.NoError(t, err)
	}
	cli := etcdtest.Client(t, e.etcd.Endpoint)
	const limit = 4
	w, err := pireetcd.Watch(ctx, cli, pireetcd.WatchConfig{Prefix: e.prefix, Group: e.group, MaxListenerQueue: limit})
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })

	started, release := make(chan struct{}), make(chan struct{})
	var got atomic.Int32
	w.AddListener(func(discovery.Event) bool {
		if got.Add(1) == 1 {
			close(started)
			<-release
		}
		return true
	})
	put("m0", "0")
	<-started // m0's Joined is being delivered: the queue is empty

	// Updates of one member merge into one pending event...
	put("m1", "0")
	for i := range 10 {
		put("m1", strconv.Itoa(i+1))
	}
	// ... and the Joined events beyond the bound are dropped.
	const more = 20
	for i := range more {
		put("n"+strconv.Itoa(i), "0")
	}
	require.Eventually(t, func() bool { return w.Stats().Members == 2+more }, wait, 10*time.Millisecond)
	s := w.Stats()
	assert.Equal(t, uint64(9), s.EventsMerged, "10 updates of m1, one pending")
	// Queued: m1's Joined, m1's Updated, n0, n1; dropped: n2 and after.
	assert.Equal(t, uint64(more-2), s.EventsDropped)

	close(release)
	require.Eventually(t, func() bool { return got.Load() == 1+limit }, wait, 10*time.Millisecond)
	require.NoError(t, w.Close())
	assert.Equal(t, int32(1+limit), got.Load())
}
