package etcd_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	pireetcd "github.com/pirlan/pir/plugins/etcd"
	"github.com/pirlan/pir/plugins/etcd/internal/etcdtest"
	"github.com/pirlan/pir/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every Eventually: generous, since a slow machine only makes
// things later, never wrong.
const wait = 20 * time.Second

// env is one test's world: a real etcd server, an in-memory LAN for the pir
// side, and a prefix of its own.
type env struct {
	t      testing.TB
	etcd   *etcdtest.Server
	lan    *mem.LAN
	prefix string
	group  string
	admin  *clientv3.Client // the test's own view of etcd
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := etcdtest.Start(t)
	lan, err := mem.NewLAN(mem.Config{Loopback: true})
	require.NoError(t, err)
	return &env{t: t, etcd: srv, lan: lan, prefix: "/pir-test", group: "web", admin: etcdtest.Client(t, srv.Endpoint)}
}

// member is one process of the group: a health server, a Group, an etcd
// client of its own (as a separate process would have) and a Mirror.
type member struct {
	hc     *healthcheck.TCPServer
	g      *discovery.Group
	cli    *clientv3.Client
	mirror *pireetcd.Mirror
}

// join starts member id with a Mirror whose config mutate may change.
func (e *env) join(id string, mutate ...func(*pireetcd.MirrorConfig)) *member {
	e.t.Helper()
	hc := healthcheck.NewTCPServer(healthcheck.ServerConfig{})
	require.NoError(e.t, hc.Start("127.0.0.1:0"))
	e.t.Cleanup(func() { hc.Close() })
	g, err := discovery.Join(context.Background(), discovery.Config{
		Name:                 e.group,
		Self:                 discovery.Peer{ID: id, HealthURI: hc.URI(), Meta: map[string]string{"role": "test"}},
		Transport:            e.lan.Join(),
		AnnounceInterval:     100 * time.Millisecond,
		ProbeInterval:        200 * time.Millisecond,
		SuspectProbeInterval: 100 * time.Millisecond,
		ProbeTimeout:         500 * time.Millisecond,
	})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { g.Close() })
	cli := etcdtest.Client(e.t, e.etcd.Endpoint)
	cfg := pireetcd.MirrorConfig{
		Prefix:        e.prefix,
		Group:         e.group,
		TTL:           30 * time.Second,
		RetryInterval: 100 * time.Millisecond,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := pireetcd.StartMirror(ctx, g, cli, cfg)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { m.Close() })
	return &member{hc: hc, g: g, cli: cli, mirror: m}
}

// watch starts a Watcher of the group through endpoint ("" means the
// server's own).
func (e *env) watch(endpoint string) (*pireetcd.Watcher, *recorder) {
	e.t.Helper()
	if endpoint == "" {
		endpoint = e.etcd.Endpoint
	}
	cli := etcdtest.Client(e.t, endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := pireetcd.Watch(ctx, cli, pireetcd.WatchConfig{Prefix: e.prefix, Group: e.group, RetryInterval: 100 * time.Millisecond})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { w.Close() })
	r := &recorder{}
	w.AddListener(r.listen)
	return w, r
}

// get returns the value and lease of key, or ok false if it is absent.
func (e *env) get(key string) (value map[string]any, lease int64, ok bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.admin.Get(ctx, key)
	require.NoError(e.t, err)
	if len(resp.Kvs) == 0 {
		return nil, 0, false
	}
	require.NoError(e.t, json.Unmarshal(resp.Kvs[0].Value, &value))
	return value, resp.Kvs[0].Lease, true
}

func (e *env) present(key string) bool {
	_, _, ok := e.get(key)
	return ok
}

// recorder collects the events one listener receives.
type recorder struct {
	mu     sync.Mutex
	events []discovery.Event
}

func (r *recorder) listen(e discovery.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return true
}

// of returns the events of one type about one member, in order.
func (r *recorder) of(typ discovery.EventType, id string) []discovery.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []discovery.Event
	for _, e := range r.events {
		if e.Type == typ && e.Member.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until the recorder holds n events of typ about id and
// returns the last.
func (r *recorder) waitFor(t testing.TB, typ discovery.EventType, id string, n int) discovery.Event {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.of(typ, id)) >= n }, wait, 10*time.Millisecond,
		"no %d× %v event for %s", n, typ, id)
	evs := r.of(typ, id)
	return evs[len(evs)-1]
}

func ids(ms []discovery.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
