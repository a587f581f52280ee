package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

// The memberlist tests run plugins/memberlist's example program on the
// hosts of two LANs joined only by a router (internal/nslan's routed lab),
// which does not forward multicast: each member multicasts on its LAN and
// relays to the other through memberlist. They live here, in the core
// module, because they drive the lab (internal/nslan), which a plugin module
// must not import; they build the plugin's example with go build in its own
// module. They need root; without it they skip, saying why.

// mlMeetTimeout bounds the wait for the members to meet across the
// router: generous, because a test fails only when one passes.
const mlMeetTimeout = 30 * time.Second

// mlPort is the memberlist port of every lab host (each has its own
// network namespace, so they do not collide).
const mlPort = "7946"

// buildMemberlistExample builds plugins/memberlist's example program into
// dir, with the race detector if race.
func buildMemberlistExample(ctx context.Context, dir string, race bool) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the memberlist example: %w", err)
	}
	root, err := pircli.ModuleRoot(".")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "example")
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, "./example")...)
	cmd.Dir = filepath.Join(root, "plugins", "memberlist")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s ./example in plugins/memberlist: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
	}
	return out, nil
}

// memberlistExample builds the example for tb, in a directory removed at
// its end.
func memberlistExample(tb testing.TB, race bool) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := buildMemberlistExample(ctx, tb.TempDir(), race)
	require.NoError(tb, err)
	return p
}

// requireRoutedLab skips tb when no lab can be made here, unless CI is set and
// the machine is one where the lab must work (root), where it fails.
func requireRoutedLab(tb testing.TB) {
	tb.Helper()
	if ok, reason := nslan.Available(); !ok {
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			tb.Fatalf("CI as root, but no network lab: %s", reason)
		}
		tb.Skip("no network lab here: " + reason)
	}
}

func newRouted(tb testing.TB, lans ...int) *nslan.Routed {
	tb.Helper()
	requireRoutedLab(tb)
	r, err := nslan.NewRouted(nslan.RoutedConfig{LANs: lans, IPv4: true, Logf: tb.Logf})
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, r.Close()) })
	return r
}

// mlPeer is the example running on a lab host.
type mlPeer struct {
	*nslan.Proc
	id string
}

// startMLPeer starts the example on h as member id, seeding memberlist with
// seeds.
func startMLPeer(tb testing.TB, bin string, h *nslan.Host, id, site string, seeds []string) *mlPeer {
	tb.Helper()
	cmd := h.Command(context.Background(), bin, "-iface", "eth0", "-json", "-id", id,
		"-port", mlPort, "-seeds", strings.Join(seeds, ","), "-meta", "site="+site, "-meta", "host="+h.Name, "-log", "debug")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	p, err := h.StartCommand(cmd)
	require.NoError(tb, err)
	return &mlPeer{Proc: p, id: id}
}

// waitEvent waits for an event on a line at index from or later for which
// match is true.
func (p *mlPeer) waitEvent(ctx context.Context, from int, match func(pircli.Event) bool) (pircli.Event, error) {
	var parseErr error
	_, line, err := p.WaitLine(ctx, from, func(l nslan.Line) bool {
		e, err := pircli.Parse(l)
		if err != nil {
			parseErr = err
			return true
		}
		return match(e)
	})
	if err == nil && parseErr != nil {
		return pircli.Event{}, fmt.Errorf("%s: %w", p.id, parseErr)
	}
	if err != nil {
		return pircli.Event{}, fmt.Errorf("%s: %w", p.id, err)
	}
	e, _ := pircli.Parse(line)
	e.Line = line
	return e, nil
}

// checkStderr reports a data race or a panic the example wrote.
func (p *mlPeer) checkStderr() error {
	if s := p.Stderr(); strings.Contains(s, "WARNING: DATA RACE") || strings.Contains(s, "panic:") {
		return fmt.Errorf("%s: %s", p.id, s)
	}
	return nil
}

func mlSeeds(r *nslan.Routed) []string {
	var seeds []string
	for i := range r.LANs() {
		seeds = append(seeds, r.LAN(i)[0].IPv4.String()+":"+mlPort)
	}
	return seeds
}

// TestMemberlistTwoSites: two members on each of two LANs that only a router
// joins. Every member sees the three others, with their URIs and
// metadata; a member killed on LAN A is seen failing on LAN B, and a
// goodbye on LAN A is seen on LAN B.
func TestMemberlistTwoSites(t *testing.T) {
	r := newRouted(t, 2, 2)
	bin := memberlistExample(t, raceEnabled)
	seeds := mlSeeds(r)
	sites := []string{"A", "B"}
	var peers []*mlPeer
	for lan := range 2 {
		for j, h := range r.LAN(lan) {
			peers = append(peers, startMLPeer(t, bin, h, fmt.Sprintf("%s%d", sites[lan], j), sites[lan], seeds))
		}
	}
	a0, a1, b0, b1 := peers[0], peers[1], peers[2], peers[3]
	t.Cleanup(func() {
		for _, p := range peers {
			assert.NoError(t, p.checkStderr())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), mlMeetTimeout)
	defer cancel()
	seen := map[string]map[string]pircli.Event{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		for _, q := range peers {
			if p == q {
				continue
			}
			wg.Go(func() {
				e, err := p.waitEvent(ctx, 0, pircli.Is(pircli.Joined, q.id))
				if !assert.NoError(t, err, "%s does not see %s", p.id, q.id) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen[p.id] == nil {
					seen[p.id] = map[string]pircli.Event{}
				}
				seen[p.id][q.id] = e
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		for _, p := range peers {
			t.Logf("%s stderr:\n%s", p.id, p.Stderr())
		}
	}
	require.False(t, t.Failed(), "every member sees every other")

	hA0 := r.LAN(0)[0]
	for _, p := range []*mlPeer{b0, b1} {
		e := seen[p.id]["A0"]
		assert.True(t, strings.HasPrefix(e.HealthURI, "tcp://"+hA0.IPv4.String()+":"), "%s sees A0's health URI %s", p.id, e.HealthURI)
		assert.Equal(t, map[string]string{"site": "A", "host": hA0.Name}, e.Meta, "%s sees A0's metadata", p.id)
		assert.True(t, strings.HasPrefix(e.Addr, hA0.IPv4.String()+":"), "%s hears A0 from its own address: %s", p.id, e.Addr)
	}
	e := seen["A1"]["A0"]
	assert.NotEqual(t, seen["B0"]["A0"].Addr, e.Addr, "A1 hears A0 on the LAN, not through the relay")

	// A crash on LAN A: no goodbye; LAN B sees A0 fail its probes.
	from := map[*mlPeer]int{}
	for _, p := range peers {
		from[p] = p.Len()
	}
	killed := time.Now()
	require.NoError(t, a0.Kill())
	ctx, cancel = context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	for _, p := range []*mlPeer{a1, b0, b1} {
		e, err := p.waitEvent(ctx, from[p], pircli.Is(pircli.Left, "A0"))
		require.NoError(t, err, "%s sees A0 leave", p.id)
		assert.Equal(t, pircli.Failed, e.Reason, "%s", p.id)
		t.Logf("%s saw A0 fail %v after the kill", p.id, e.Line.At.Sub(killed))
	}

	// A goodbye on LAN A crosses to LAN B at once.
	require.NoError(t, a1.Interrupt())
	for _, p := range []*mlPeer{b0, b1} {
		e, err := p.waitEvent(ctx, from[p], pircli.Is(pircli.Left, "A1"))
		require.NoError(t, err, "%s sees A1 leave", p.id)
		assert.Equal(t, pircli.Goodbye, e.Reason, "%s", p.id)
	}
	require.NoError(t, a1.Wait(ctx))
}

// BenchmarkMemberlistCrossLANJoin measures how long a member started on LAN A
// takes to be seen (a Joined event) by a member on LAN B, through the
// memberlist relay and a health probe across the router; and, for
// comparison, by a member on LAN A itself, by multicast. It reports the
// medians and 90th percentiles in ms, from the start of the new member's
// process (so they include its start-up and its memberlist join):
//
//	go test -count=1 -run '^$' -bench MemberlistCrossLANJoin -benchtime 20x ./e2e/
func BenchmarkMemberlistCrossLANJoin(b *testing.B) {
	r := newRouted(b, 2, 1)
	bin := memberlistExample(b, false) // timings without the race detector
	seeds := mlSeeds(r)
	hNew, hA, hB := r.LAN(0)[0], r.LAN(0)[1], r.LAN(1)[0]
	// The new member seeds with a member of LAN B only: no seed of its own
	// LAN is needed.
	watchA := startMLPeer(b, bin, hA, "watchA", "A", seeds)
	watchB := startMLPeer(b, bin, hB, "watchB", "B", seeds)
	ctx, cancel := context.WithTimeout(context.Background(), mlMeetTimeout)
	defer cancel()
	_, err := watchB.waitEvent(ctx, 0, pircli.Is(pircli.Joined, "watchA"))
	require.NoError(b, err)

	var cross, local []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("new%d", i)
		fromA, fromB := watchA.Len(), watchB.Len()
		p := startMLPeer(b, bin, hNew, id, "A", []string{hB.IPv4.String() + ":" + mlPort})
		ctx, cancel := context.WithTimeout(context.Background(), mlMeetTimeout)
		eB, err := watchB.waitEvent(ctx, fromB, pircli.Is(pircli.Joined, id))
		require.NoError(b, err)
		eA, err := watchA.waitEvent(ctx, fromA, pircli.Is(pircli.Joined, id))
		require.NoError(b, err)
		cross = append(cross, eB.Line.At.Sub(p.Started()))
		local = append(local, eA.Line.At.Sub(p.Started()))
		require.NoError(b, p.Interrupt())
		_, err = watchB.waitEvent(ctx, fromB, pircli.Is(pircli.Left, id))
		require.NoError(b, err)
		require.NoError(b, p.Wait(ctx))
		cancel()
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(cross, 50)), "cross-median-ms")
	b.ReportMetric(ms(percentile(cross, 90)), "cross-p90-ms")
	b.ReportMetric(ms(percentile(local, 50)), "local-median-ms")
	b.ReportMetric(ms(percentile(local, 90)), "local-p90-ms")
	b.Logf("LAN A -> LAN B (n=%d): %v", len(cross), cross)
	b.Logf("LAN A -> LAN A (n=%d): %v", len(local), local)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}
