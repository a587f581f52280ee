package discovery_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport/mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A new member learns the existing ones from their answers to its query, in
// one round trip, without waiting for an announcement interval.
func TestQueryOnJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		b, _ := l.join("b")
		advance(10 * time.Second) // long past the start; both announce steadily
		ra := record(a)
		start := time.Now()
		c, _ := l.join("c")
		synctest.Wait()
		assert.Zero(t, time.Since(start), "the fake clock has not moved")
		assert.Equal(t, []string{"a", "b"}, ids(c.Members()), "c knows everyone at once")
		assert.Len(t, ra.of(discovery.Joined, "c"), 1, "and everyone knows c")
		assert.Equal(t, []string{"a", "c"}, ids(b.Members()))
	})
}

// Announcements are spread over AnnounceInterval ± AnnounceJitter, so that
// members started together do not announce in step.
func TestAnnouncementsJittered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		ear := l.lan.Join()
		t.Cleanup(func() { ear.Close() })
		// Every AnnounceInterval: the legacy engine's pace (rtcp_test.go
		// has the frugal engine's).
		l.join("a", legacy)
		var gaps []time.Duration
		last := time.Now()
		buf := make([]byte, 2048)
		for len(gaps) < 30 {
			_, err := ear.Receive(buf) // durably blocks until the next announcement
			require.NoError(t, err)
			gaps = append(gaps, time.Since(last))
			last = time.Now()
		}
		gaps = gaps[1:] // the first is the query on join, at once
		distinct := map[time.Duration]bool{}
		for _, g := range gaps {
			assert.GreaterOrEqual(t, g, 900*time.Millisecond)
			assert.LessOrEqual(t, g, 1100*time.Millisecond)
			distinct[g] = true
		}
		assert.Greater(t, len(distinct), 20, "intervals vary: %v", gaps)
	})
}

// A newcomer's query heard twice, by IPv4 and by IPv6, is answered once,
// by one announcement multicast to the group, which both of the
// newcomer's sockets receive. A query again later is answered again.
func TestQueryCopyAnsweredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a", func(c *discovery.Config) { c.AnnounceJitter = -1 })
		// Two endpoints of one newcomer, as its IPv4 and IPv6 sockets.
		var v4, v6 atomic.Int64 // answers from a
		answers := func(n *atomic.Int64) func(*codec.Message) {
			return func(m *codec.Message) {
				if m.ID == "a" && m.Kind == codec.Announce { // not its vouch for n
					n.Add(1)
				}
			}
		}
		e4, e6 := l.listen(answers(&v4)), l.listen(answers(&v6))
		l.health.set("n:1", up)
		q, err := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Query, Group: "web", ID: "n", Health: "tcp://n:1", Comms: "tcp://n:1"})
		require.NoError(t, err)

		require.NoError(t, e4.Send(q))
		advance(time.Millisecond)
		require.NoError(t, e6.Send(q))
		advance(200 * time.Millisecond) // past any coalesced answer, before a's first announcement
		assert.Equal(t, int64(1), v4.Load(), "one answer, multicast")
		assert.Equal(t, int64(1), v6.Load(), "the same answer reached both sockets")

		require.NoError(t, e6.Send(q))
		synctest.Wait()
		assert.Equal(t, int64(2), v6.Load(), "a query later is a new one")
	})
}

// A query is answered by multicast, never by unicast to its source, and at
// most 10 times a second after a burst of 4: queries beyond get one more
// answer when the next token is due, so that none goes unanswered.
func TestQueriesAnsweredByMulticastCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		_, epA := l.join("a", func(c *discovery.Config) { c.AnnounceInterval = time.Hour })
		x := l.lan.Join()
		t.Cleanup(func() { x.Close() })
		var mu sync.Mutex
		var dsts []bool // per announcement of a that x received: sent to the group
		go func() {
			buf := make([]byte, 2048)
			for {
				p, err := x.Receive(buf)
				if err != nil {
					return
				}
				var m codec.Message
				if p.Src == epA.Addr() && (pipe.Codec{}).Decode(buf[:p.N], &m) == nil && m.Kind == codec.Announce {
					mu.Lock()
					dsts = append(dsts, p.Dst == mem.GroupAddr())
					mu.Unlock()
				}
			}
		}()
		got := func() []bool {
			mu.Lock()
			defer mu.Unlock()
			return append([]bool(nil), dsts...)
		}
		advance(time.Second) // a's first announcement
		base := len(got())

		for i := range 10 { // ten watchers' queries within 50 ms
			require.NoError(t, x.Send(encode(t, &codec.Message{Kind: codec.Query, ID: "w" + string(rune('0'+i))})))
			advance(5 * time.Millisecond)
		}
		assert.Len(t, got(), base+4, "the burst, at once")
		advance(60 * time.Millisecond)
		assert.Len(t, got(), base+5, "one more when the next token is due, for the six queries since")
		advance(time.Second)
		assert.Len(t, got(), base+5, "and no more")

		for i := range 100 { // a flood: 100 queries in one second
			require.NoError(t, x.Send(encode(t, &codec.Message{Kind: codec.Query, ID: "f" + string(rune('0'+i%10)) + string(rune('0'+i/10))})))
			advance(10 * time.Millisecond)
		}
		advance(200 * time.Millisecond)
		assert.LessOrEqual(t, len(got())-base-5, 4+12, "at most the burst and 10 a second")
		for _, multicast := range got() {
			assert.True(t, multicast, "every answer went to the group")
		}
		assert.Zero(t, x.Stats().Delivered-x.Stats().Received)
	})
}

// Two members started with one ID (a misconfiguration) each hear the
// other's announcements under their own ID: each answers with its own,
// at most 4 a second (a forged self-claim's limit), and says why in a
// warning, once.
func TestDuplicateIDsRefuteEachOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		var logs [2]*lockedBuffer
		var dups [2]*discovery.Group
		for i := range dups {
			logs[i] = &lockedBuffer{}
			dups[i], _ = l.join("dup", func(c *discovery.Config) {
				c.Self.HealthURI = healthURI(fmt.Sprintf("dup%d", i))
				c.Logger = hclog.New(&hclog.LoggerOptions{Output: logs[i], Level: hclog.Warn})
			})
		}
		const window = 10 * time.Second
		advance(window)
		for i, g := range dups {
			n := g.Stats().SelfClaimsRefuted
			assert.Positive(t, n, "dup%d answered the other", i)
			assert.LessOrEqual(t, float64(n), 4*window.Seconds()+1, "dup%d: at most 4 a second", i)
			assert.Equal(t, 1, strings.Count(logs[i].String(), "another member with our ID"), "dup%d: one warning", i)
		}
	})
}

// lockedBuffer is a bytes.Buffer that a logger may write from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
