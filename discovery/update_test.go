package discovery_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/discovery"
)

// Update changes a member's comms URI and metadata: every other member
// emits Updated with them at once (the multicast), in both engines, and
// Self and Member say them.
func TestUpdateSelf(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t)
				x, _ := l.join("m0", eng.set)
				var recs []*recorder
				var others []*discovery.Group
				for _, name := range []string{"m1", "m2", "m3"} {
					g, _ := l.join(name, eng.set)
					others = append(others, g)
				}
				advance(3 * time.Second)
				for _, g := range others {
					require.Len(t, g.Members(), 3)
					recs = append(recs, record(g))
				}
				require.Len(t, x.Members(), 3)

				comms := &url.URL{Scheme: "tcp", Host: "m0:8080"}
				meta := map[string]string{"role": "leader"}
				require.NoError(t, x.Update(context.Background(), comms, meta))
				meta["role"] = "changed after the call" // Update kept a copy
				assert.Equal(t, "tcp://m0:8080", x.Self().CommsURI.String())
				assert.Equal(t, map[string]string{"role": "leader"}, x.Self().Meta)
				advance(10 * time.Millisecond)
				for i, r := range recs {
					up := r.of(discovery.Updated, "m0")
					require.Len(t, up, 1, "m%d: one Updated", i+1)
					assert.Equal(t, "tcp://m0:8080", up[0].Member.CommsURI.String())
					assert.Equal(t, map[string]string{"role": "leader"}, up[0].Member.Meta)
					m, ok := others[i].Member("m0")
					require.True(t, ok)
					assert.Equal(t, "tcp://m0:8080", m.CommsURI.String())
					assert.Empty(t, r.of(discovery.Left, "m0"))
				}

				// nil comms keeps the comms URI; nil meta: none.
				advance(3 * time.Second) // past the Updated rate limit
				require.NoError(t, x.Update(context.Background(), nil, nil))
				advance(10 * time.Millisecond)
				for i, r := range recs {
					up := r.of(discovery.Updated, "m0")
					require.Len(t, up, 2, "m%d", i+1)
					assert.Equal(t, "tcp://m0:8080", up[1].Member.CommsURI.String())
					assert.Empty(t, up[1].Member.Meta)
				}
				assert.Empty(t, x.Self().Meta)
			})
		})
	}
}

// A member that missed both copies of an update (its link from the
// updated member down for them) learns it from the record version the
// next ping or ack carries: it asks, by unicast, within a few seconds.
func TestUpdateRepairedThroughPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		x, xep := l.join("m0")
		a, _ := l.join("m1")
		b, bep := l.join("m2")
		advance(3 * time.Second)
		require.Len(t, a.Members(), 2)
		require.Len(t, b.Members(), 2)
		ra, rb := record(a), record(b)

		l.lan.SetLinkLoss(xep, bep, 1)
		require.NoError(t, x.Update(context.Background(), nil, map[string]string{"v": "2"}))
		advance(200 * time.Millisecond) // both copies gone
		l.lan.SetLinkLoss(xep, bep, 0)
		require.Len(t, ra.of(discovery.Updated, "m0"), 1, "m1 heard the update")
		require.Empty(t, rb.of(discovery.Updated, "m0"), "m2 missed both copies")

		start := time.Now()
		for len(rb.of(discovery.Updated, "m0")) == 0 && time.Since(start) < 10*time.Second {
			advance(10 * time.Millisecond)
		}
		up := rb.of(discovery.Updated, "m0")
		require.Len(t, up, 1, "m2 learned the update")
		assert.Equal(t, map[string]string{"v": "2"}, up[0].Member.Meta)
		t.Logf("m2 learned the update %v after its link came back (synctest time)", time.Since(start))
		assert.LessOrEqual(t, time.Since(start), 3*time.Second)
		assert.Empty(t, rb.of(discovery.Left, "m0"))
	})
}

// What Update refuses leaves the record as it was.
func TestUpdateRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		x, _ := l.join("m0", func(c *discovery.Config) { c.Self.Meta = map[string]string{"a": "1"} })
		w, _ := l.join("", func(c *discovery.Config) { c.Passive, c.Self = true, discovery.Peer{} })
		ctx := context.Background()

		assert.ErrorIs(t, x.Update(ctx, nil, map[string]string{"": "x"}), discovery.ErrInvalidConfig)
		assert.ErrorIs(t, w.Update(ctx, nil, nil), discovery.ErrInvalidConfig, "a watcher announces nothing")
		err := x.Update(ctx, nil, map[string]string{"big": strings.Repeat("x", 70000)})
		assert.Error(t, err, "a record no datagram holds")
		assert.Equal(t, map[string]string{"a": "1"}, x.Self().Meta, "the record is unchanged")
		assert.Equal(t, healthURI("m0").String(), x.Self().CommsURI.String())

		require.NoError(t, x.Close())
		assert.ErrorIs(t, x.Update(ctx, nil, nil), discovery.ErrClosed)
	})
}

// A program that updates its record in a loop does not flood the LAN:
// 100 Updates at once make at most updateRate (4) reports a second, each
// sent twice, and every member ends with the last record.
func TestUpdateBurstBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		var mu sync.Mutex
		reports := 0 // m0's extended announcements: its reports
		l.listen(func(m *codec.Message) {
			if m.ID == "m0" && m.Kind == codec.Announce && m.Extended {
				mu.Lock()
				reports++
				mu.Unlock()
			}
		})
		x, _ := l.join("m0")
		a, _ := l.join("m1")
		advance(3 * time.Second)
		require.Len(t, a.Members(), 1)
		mu.Lock()
		reports = 0
		mu.Unlock()

		for i := range 100 {
			require.NoError(t, x.Update(context.Background(), nil, map[string]string{"n": strconv.Itoa(i)}))
		}
		advance(2 * time.Second)
		mu.Lock()
		sent := reports
		mu.Unlock()
		t.Logf("100 Updates at once: %d reports multicast in 2 s", sent)
		assert.LessOrEqual(t, sent, 2*(4+1), "the burst of 4, then one report that carries the rest, each twice")
		assert.Positive(t, sent)
		m, ok := a.Member("m0")
		require.True(t, ok)
		assert.Equal(t, map[string]string{"n": "99"}, m.Meta, "the last record is what m1 holds")
		assert.Equal(t, map[string]string{"n": "99"}, x.Self().Meta)
	})
}
