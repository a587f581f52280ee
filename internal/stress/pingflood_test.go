package stress

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// pingFloodN is how many forged pings TestPingFlood sends.
const pingFloodN = 30000

// TestPingFlood is TestFlood's twin for the ping protocol: 30,000 forged
// pings by unicast to a member's group socket from 50 addresses, as fast
// as it reads them, half under IDs nobody knows (acked with who=1, each
// remembered for the repair) and half under a real member's ID from an
// address that is not that member's (acked as a stranger's). Bounds: the
// acks back to the 50 sources stay within AnswerRate per source (10 a
// second, burst 32), its memory grows by less than 8 MiB, nobody is
// removed anywhere while the flood lasts (the target's own pings and the
// others' pings of it get through), and Close under the flood leaves
// nothing open.
func TestPingFlood(t *testing.T) {
	setupSources(t)
	// Checked once every cleanup (the members' health servers, the
	// sockets) has run: cleanups run last registered first.
	running, fdsBefore := goleak.IgnoreCurrent(), openFDs(t)
	t.Cleanup(func() {
		goleak.VerifyNone(t, running)
		assert.Equal(t, fdsBefore, openFDs(t), "no socket left open")
	})
	const p = 9597
	gs := lanGroup(t, 4, p)
	target := gs[0]
	known, ok := gs[1].Member("m1")
	require.True(t, ok)
	var left atomic.Int64
	for _, g := range gs {
		me := g.Self().ID
		g.AddListener(func(e discovery.Event) bool {
			if e.Type == discovery.Left {
				left.Add(1)
				t.Logf("%s: %v", me, e)
			}
			return true
		})
	}
	base := heap()

	var conns []*net.UDPConn
	for i := range sources {
		conns = append(conns, udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}), 0))
	}
	// The sources count the acks they get, until they are closed.
	var acks atomic.Int64
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Go(func() {
			buf := make([]byte, 1500)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				var m codec.Message
				if err := (pipe.Codec{}).Decode(buf[:n], &m); err == nil && m.Kind == codec.Ack {
					acks.Add(1)
				}
			}
		})
	}
	received := func() uint64 { return target.Stats().Received }
	s0 := target.Stats()
	start := time.Now()
	sent := 0
	for i := range pingFloodN {
		id := fmt.Sprintf("forged-%08d", i)
		if i%2 == 1 {
			id = "m2" // a member's ID, not from its address
		}
		m := codec.Message{Kind: codec.Ping, Group: "web", ID: id, Nonce: rand.Uint32(), Version: 1}
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		if _, err := conns[i%sources].WriteToUDPAddrPort(b, known.Addr); err == nil {
			sent++
		}
		if i%50 == 49 {
			// At most 100 ahead of what the target read: the pings reach
			// pir rather than the socket's overflow (a few may not).
			require.Eventually(t, func() bool { return received()+100 >= uint64(sent) }, 10*time.Second, time.Millisecond,
				"the target keeps reading (%d of %d)", received(), sent)
		}
	}
	before := s0.Received
	require.Eventually(t, func() bool { return received()-before >= uint64(sent)*95/100 }, 10*time.Second, time.Millisecond,
		"the flood reached pir (the socket's buffer may drop a little)")
	elapsed := time.Since(start)
	assert.Zero(t, left.Load(), "nobody removed during the flood")
	grown := int64(heap()) - int64(base)
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	s := target.Stats()
	bound := float64(sources) * (10*elapsed.Seconds() + 32)
	t.Logf("figures: %d forged pings in %v; %d acks back to the %d sources (bound %.0f); answer_limited %d, spoofed %d; heap grew %d KiB; members %v",
		sent, elapsed.Round(time.Millisecond), acks.Load(), sources, bound,
		s.Dropped[discovery.DropAnswerLimited], s.Dropped[discovery.DropSpoofed], grown/1024, ids(target.Members()))
	assert.Equal(t, pingFloodN, sent)
	assert.LessOrEqual(t, float64(acks.Load()), bound, "acks within AnswerRate per source")
	assert.Positive(t, s.Dropped[discovery.DropAnswerLimited], "the limit was hit")
	assert.Less(t, grown, int64(8<<20), "memory stays bounded")
	assert.Equal(t, []string{"m2", "m3", "m4"}, ids(target.Members()))

	// Close under the flood: everything it opened is closed.
	stop := make(chan struct{})
	flooding := make(chan struct{})
	c := udpFrom(t, netip.AddrFrom4([4]byte{198, 18, 1, 1}), 0)
	go func() {
		defer close(flooding)
		spray(stop, func() int {
			m := codec.Message{Kind: codec.Ping, Group: "web", ID: "forged", Nonce: rand.Uint32(), Version: 1}
			b, _ := pipe.Codec{}.Encode(nil, &m)
			_, _ = c.WriteToUDPAddrPort(b, known.Addr)
			return 1
		})
	}()
	require.Eventually(t, func() bool { return received()-s.Received >= 100 }, 10*time.Second, time.Millisecond, "the flood is under way")
	for _, g := range gs {
		require.NoError(t, g.Close())
	}
	close(stop)
	<-flooding
}
