package sim_test

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// counted is a Transport that counts the bytes it sends and receives.
type counted struct {
	transport.Transport
	sent, received atomic.Uint64
}

// DefaultCodec is the counted transport's, or pipe's when it has none (the
// simulator's endpoints).
func (c *counted) DefaultCodec() codec.Codec {
	if d, ok := c.Transport.(transport.DefaultCodec); ok {
		return d.DefaultCodec()
	}
	return pipe.Codec{}
}

func (c *counted) Send(b []byte) error {
	c.sent.Add(uint64(len(b)))
	return c.Transport.Send(b)
}

func (c *counted) SendTo(b []byte, dst netip.AddrPort) error {
	c.sent.Add(uint64(len(b)))
	return c.Transport.SendTo(b, dst)
}

func (c *counted) Receive(buf []byte) (transport.Packet, error) {
	p, err := c.Transport.Receive(buf)
	if err == nil {
		c.received.Add(uint64(p.N))
	}
	return p, err
}

// TestScaleSimulation runs whole groups of real Groups, default settings,
// on the in-memory LAN under synctest's clock, and reports what each member
// costs and how fast a vanished member is removed by all. Its sizes come
// from PIR_SCALE (e.g. PIR_SCALE=100,1000; 1000 members take minutes):
// each member receives every announcement, so the work grows as N². Unset,
// it runs 40 members (bounded probing, a second with -race), so that the
// harness cannot fall behind the Group's rules unseen: it once did, and
// never formed a group after Config.ForeignHealthHosts came in.
//
//	PIR_SCALE=32,100,1000 go -C tools test -run ScaleSimulation -v -timeout 1h ./sim/
//
// PIR_SCALE_ALL=1 makes every member probe every other (ProbeAllUpTo -1),
// the baseline.
func TestScaleSimulation(t *testing.T) {
	spec := os.Getenv("PIR_SCALE")
	if spec == "" {
		spec = "40"
	}
	allUpTo := 0
	if os.Getenv("PIR_SCALE_ALL") != "" {
		allUpTo = -1
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(f)
		require.NoError(t, err, "PIR_SCALE")
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { simulate(t, n, allUpTo) })
		})
	}
}

func simulate(t *testing.T, n, allUpTo int) {
	lan, err := mem.NewLAN(mem.Config{QueueLen: 4 * n})
	require.NoError(t, err)
	health := newFakeHealth()
	name := func(i int) string { return fmt.Sprintf("m%05d", i) }
	groups := make([]*discovery.Group, n)
	eps := make([]*mem.Endpoint, n)
	wires := make([]*counted, n)
	for i := range n {
		eps[i] = lan.Join()
		wires[i] = &counted{Transport: eps[i]}
		health.set(name(i)+":1", up)
		g, err := discovery.Join(t.Context(), discovery.Config{
			Name: "web", Transport: wires[i], Prober: health, ProbeAllUpTo: allUpTo,
			Self: discovery.Peer{ID: name(i), HealthURI: healthURI(name(i))},
			// Health hosts are names here, as in the lab.
			ForeignHealthHosts: true,
		})
		require.NoError(t, err)
		groups[i] = g
		defer g.Close()
		if i%50 == 49 {
			advance(100 * time.Millisecond) // members arrive over time, as in life
		}
	}
	start := time.Now()
	for !everyoneSees(groups, n-1) {
		advance(time.Second)
		require.Less(t, time.Since(start), 5*time.Minute, "the group never formed")
	}
	t.Logf("N=%d: formed in %v", n, time.Since(start).Round(time.Second))
	advance(10 * time.Second) // settle: joins' first probes done

	probes := func() (sum int) {
		for i := range n {
			sum += health.count(name(i) + ":1")
		}
		return sum
	}
	bytes := func() (sent, received uint64) {
		for _, w := range wires {
			sent += w.sent.Load()
			received += w.received.Load()
		}
		return sent, received
	}
	const window = 20 * time.Second
	p0 := probes()
	s0, r0 := bytes()
	advance(window)
	p1 := probes()
	s1, r1 := bytes()
	per := float64(n) * window.Seconds()
	t.Logf("N=%d: %.2f probes per member per second; per member per second: %.0f bytes sent, %.0f bytes received",
		n, float64(p1-p0)/per, float64(s1-s0)/per, float64(r1-r0)/per)

	// Vanish a few members, one at a time, and time how long until every
	// other member has removed it.
	var times []time.Duration
	alive := slices.Clone(groups)
	for k := range 3 {
		v := k * (n / 3)
		others := make([]*mem.Endpoint, 0, n)
		for i, ep := range eps {
			if i != v {
				others = append(others, ep)
			}
		}
		lan.Partition([]*mem.Endpoint{eps[v]}, others)
		health.set(name(v)+":1", silent)
		at := time.Now()
		alive = slices.DeleteFunc(alive, func(g *discovery.Group) bool { return g == groups[v] })
		for {
			advance(50 * time.Millisecond)
			if noneSees(alive, name(v)) {
				break
			}
			require.Less(t, time.Since(at), time.Minute, "member %s never removed by all", name(v))
		}
		times = append(times, time.Since(at))
		lan.Heal()
		groups[v].Close()
	}
	var obits, confirms uint64
	for _, g := range alive {
		s := g.Stats()
		obits += s.Obituaries
		confirms += s.Confirmations
	}
	slices.Sort(times)
	t.Logf("N=%d: a vanished member removed by all after %v (median of %d; all: %v); %d confirmations, %d obituaries",
		n, times[len(times)/2], len(times), times, confirms, obits)
}

func everyoneSees(gs []*discovery.Group, want int) bool {
	for _, g := range gs {
		if g.Stats().Members != want {
			return false
		}
	}
	return true
}

func noneSees(gs []*discovery.Group, id string) bool {
	for _, g := range gs {
		if _, ok := g.Member(id); ok {
			return false
		}
	}
	return true
}
