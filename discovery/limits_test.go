package discovery_test

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// forge sends announcements of n distinct peers from one endpoint, all
// pointing their probes at host:port.
func forge(t *testing.T, l *lab, from int, n int, host string) {
	t.Helper()
	ep := l.lan.Join()
	t.Cleanup(func() { ep.Close() })
	for i := from; i < from+n; i++ {
		d := fmt.Sprintf("web|forged-%06d|tcp://%s|tcp://%s", i, host, host)
		require.NoError(t, ep.Send([]byte(d)))
	}
}

func TestNewPeerRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		forge(t, l, 0, 100, "victim:22")
		synctest.Wait()
		s := a.Stats()
		assert.Equal(t, 32, s.Pending, "the burst")
		assert.Equal(t, uint64(68), s.Dropped[discovery.DropRateLimited])
		advance(time.Second)
		forge(t, l, 100, 100, "victim:22")
		synctest.Wait()
		// Another endpoint is another source: a burst of its own.
		assert.Equal(t, uint64(68+68), a.Stats().Dropped[discovery.DropRateLimited])
	})
}

// A flood of forged peers fills the pending pool, not the table: the real
// members stay, and are still probed.
func TestFloodIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		own := newFakeHealth()
		own.set("b:1", up)
		// The legacy engine: its joined members are probed by TCP, and
		// the flood must not starve those probes. (A pinging member's
		// liveness does not go through the Prober.)
		a, _ := l.join("a", legacy, func(c *discovery.Config) {
			c.Prober = own
			c.MaxPending = 8
			c.MaxProbes = 4
			c.MaxProbeRate = 5
			c.NewPeerRate = -1
		})
		l.join("b", legacy)
		synctest.Wait()
		require.Equal(t, []string{"b"}, ids(a.Members()))
		probesOfB := own.count("b:1")

		for round := range 10 { // 1,000 forged peers over 10 s
			forge(t, l, round*100, 100, "victim:22")
			advance(time.Second)
			s := a.Stats()
			require.LessOrEqual(t, s.Pending, 8, "round %d", round)
		}
		s := a.Stats()
		assert.Equal(t, []string{"b"}, ids(a.Members()), "the real member stays")
		assert.Positive(t, s.Dropped[discovery.DropPeerCap])
		victim := own.count("victim:22")
		assert.LessOrEqual(t, victim+own.count("b:1")-probesOfB, 4+5*10, "probes started stay under the rate cap (burst 4, 5/s)")
		assert.GreaterOrEqual(t, own.count("b:1")-probesOfB, 4, "the joined member is probed first")
		assert.Positive(t, victim)
	})
}

func TestProbeFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		var seenSrc netip.AddrPort
		a, _ := l.join("a", func(c *discovery.Config) {
			c.ProbeFilter = func(h *url.URL, src netip.AddrPort) error {
				seenSrc = src
				if h.Port() == "22" {
					return errors.New("no probes to ssh")
				}
				return nil
			}
		})
		ep := l.lan.Join()
		t.Cleanup(func() { ep.Close() })
		require.NoError(t, ep.Send([]byte("web|x|tcp://victim:22|tcp://victim:22")))
		synctest.Wait()
		assert.Equal(t, uint64(1), a.Stats().Dropped[discovery.DropNotAllowed])
		assert.Equal(t, ep.Addr(), seenSrc)
		assert.Zero(t, l.health.count("victim:22"))
	})
}

// A member that asks again and again for confirmations (each answered by
// unicast to its address) gets at most the burst, then AnswerRate answers
// a second; the rest are counted.
func TestAnswersRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, epB := l.join("b")
		var answers atomic.Int64 // evidence about b x receives from b (not b's vouch for x)
		x := l.listen(func(m *codec.Message) {
			if m.Kind == codec.Evidence && m.Target == "b" {
				answers.Add(1)
			}
		})
		l.health.set("x:1", up)
		hello, err := pipe.Codec{}.Encode(nil, announce("web", "x"))
		require.NoError(t, err)
		require.NoError(t, x.Send(hello))
		synctest.Wait()
		_, ok := b.Member("x")
		require.True(t, ok, "x is a member: its requests are answered")
		confirm, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Confirm, Group: "web", ID: "x", Target: "b"})
		require.NoError(t, err)
		for range 50 {
			require.NoError(t, x.SendTo(confirm, epB.Addr()))
		}
		synctest.Wait()
		assert.Equal(t, int64(32), answers.Load(), "the burst")
		assert.Equal(t, uint64(18), b.Stats().Dropped[discovery.DropAnswerLimited])

		advance(time.Second) // 10 more tokens
		base := answers.Load()
		for range 20 {
			require.NoError(t, x.SendTo(confirm, epB.Addr()))
		}
		synctest.Wait()
		assert.Equal(t, int64(10), answers.Load()-base, "then AnswerRate a second")
	})
}
