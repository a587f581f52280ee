package discovery_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lab is a LAN of Groups whose probes are answered by a fake health table
// instead of sockets, so that synctest's clock drives the whole protocol.
type lab struct {
	t      *testing.T
	lan    *mem.LAN
	health *fakeHealth
}

func newLab(t *testing.T) *lab {
	lan, err := mem.NewLAN(mem.Config{})
	require.NoError(t, err)
	return &lab{t: t, lan: lan, health: newFakeHealth()}
}

// join starts a member called name, healthy unless the test says otherwise.
func (l *lab) join(name string, mutate ...func(*discovery.Config)) (*discovery.Group, *mem.Endpoint) {
	l.t.Helper()
	ep := l.lan.Join()
	cfg := discovery.Config{
		Name:      "web",
		Self:      discovery.Peer{ID: name, HealthURI: healthURI(name)},
		Transport: ep,
		Prober:    l.health,
		// The lab's health hosts are names (healthURI), not the
		// endpoints' addresses; guard_test.go checks the default.
		ForeignHealthHosts: true,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	if _, set := l.health.state(cfg.Self.HealthURI); !set && cfg.Self.HealthURI != nil {
		l.health.set(cfg.Self.HealthURI.Host, up)
	}
	g, err := discovery.Join(context.Background(), cfg)
	require.NoError(l.t, err)
	l.t.Cleanup(func() { g.Close() })
	return g, ep
}

// listen joins the LAN with an endpoint of the test's own, and calls f
// with every datagram that endpoint receives from others and that decodes,
// until the test ends. The test sends from the endpoint as it likes.
func (l *lab) listen(f func(m *codec.Message)) *mem.Endpoint {
	ep := l.lan.Join()
	l.t.Cleanup(func() { ep.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			p, err := ep.Receive(buf)
			if err != nil {
				return
			}
			var m codec.Message
			if p.Src != ep.Addr() && (pipe.Codec{}).Decode(buf[:p.N], &m) == nil {
				f(&m)
			}
		}
	}()
	return ep
}

// thresholdPolicy gives a member the original pir's rule.
// legacy turns the frugal engine off (PingInterval negative): the engine
// of original pir peers and of mDNS groups, in which every member probes
// every other's health URI and announces every AnnounceInterval. The tests
// of its own rules use it.
func legacy(c *discovery.Config) { c.PingInterval = -1 }

// engines are the two engines, for tests that hold for both: the frugal
// engine (the default) and the legacy one.
var engines = []struct {
	name string
	set  func(*discovery.Config)
}{{"frugal", func(*discovery.Config) {}}, {"legacy", legacy}}

func thresholdPolicy(c *discovery.Config) {
	c.Policy = score.NewThreshold(score.DefaultThresholdConfig())
}

func healthURI(name string) *url.URL { return &url.URL{Scheme: "tcp", Host: name + ":1"} }

type probeMode int

const (
	up     probeMode = iota + 1
	refuse           // fails at once, like a refused connection
	silent           // never answers: the probe times out
)

// fakeHealth is a Prober whose answers the test sets per health host.
type fakeHealth struct {
	mu     sync.Mutex
	modes  map[string]probeMode
	probes map[string]int
	// inflight and peak count probes running at once.
	inflight, peak int
}

func newFakeHealth() *fakeHealth {
	return &fakeHealth{modes: map[string]probeMode{}, probes: map[string]int{}}
}

var _ healthcheck.Prober = (*fakeHealth)(nil)

func (f *fakeHealth) set(host string, m probeMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.modes[host] = m
}

func (f *fakeHealth) state(u *url.URL) (probeMode, bool) {
	if u == nil {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.modes[u.Host]
	return m, ok
}

func (f *fakeHealth) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probes[host]
}

// Supports makes fakeHealth a tcp-only prober.
func (f *fakeHealth) Supports(scheme string) bool { return scheme == "tcp" }

func (f *fakeHealth) Probe(ctx context.Context, target *url.URL) error {
	f.mu.Lock()
	f.probes[target.Host]++
	m := f.modes[target.Host]
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	switch m {
	case up:
		return nil
	case silent:
		<-ctx.Done()
		return ctx.Err()
	default:
		return fmt.Errorf("connect %s: connection refused", target.Host)
	}
}

// recorder collects the events one listener receives.
type recorder struct {
	mu     sync.Mutex
	events []discovery.Event
}

func record(g *discovery.Group) *recorder {
	r := &recorder{}
	g.AddListener(func(e discovery.Event) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, e)
		return true
	})
	return r
}

func (r *recorder) all() []discovery.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]discovery.Event(nil), r.events...)
}

// of returns the events of one type about one member, in order.
func (r *recorder) of(typ discovery.EventType, id string) []discovery.Event {
	var out []discovery.Event
	for _, e := range r.all() {
		if e.Type == typ && e.Member.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// advance moves the bubble's fake clock on by d and lets every goroutine
// run until it blocks. It must be called inside synctest.Test.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func ids(ms []discovery.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// announce is a plain announcement of id in group, healthy in the lab.
func announce(group, id string) *codec.Message {
	return &codec.Message{Kind: codec.Announce, Group: group, ID: id, Health: "tcp://" + id + ":1", Comms: "tcp://" + id + ":1"}
}
