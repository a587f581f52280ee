package stress

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

// TestPingReflection plays a forger who aims a pinging member's acks at a
// victim: it sends pings by unicast to a member from the victim's address,
// half naming a real member (m2, known here by another address: spoofed,
// never acked) and half naming an ID nobody knows (acked with who=1, within
// AnswerRate per source), 20 at a time as the target reads them. The victim receives at most 1.1x the bytes sent.
func TestPingReflection(t *testing.T) {
	setupSources(t)
	const p, n, pings = 9540, 3, 1000
	gs := transferGroup(t, n, p) // one at a time: a start beside another is repaired only by pings, here an hour apart
	v := victim(t)
	target, ok := gs[1].Member("m1")
	require.True(t, ok)
	acted := func() uint64 {
		return gs[0].Stats().Sent + dropped(gs[0])
	}
	before, received := acted(), gs[0].Stats().Received
	sent := 0
	for i := range pings {
		id := "m2"
		if i%2 == 1 {
			id = "forged"
		}
		m := codec.Message{Kind: codec.Ping, Group: "web", ID: id, Nonce: rand.Uint32(), Version: 1}
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		_, err = v.WriteToUDPAddrPort(b, target.Addr)
		require.NoError(t, err)
		sent += len(b)
		if (i+1)%20 == 0 { // a batch at a time, so that the socket's buffer never overflows
			require.Eventually(t, func() bool { return gs[0].Stats().Received-received >= uint64(i+1) },
				10*time.Second, time.Millisecond, "the target read the batch")
		}
	}
	require.Eventually(t, func() bool { return acted()-before >= pings }, 10*time.Second, 5*time.Millisecond,
		"the target acted on every forged ping: %+v", gs[0].Stats())
	got, bytes := drain(t, v, 300*time.Millisecond)
	s := gs[0].Stats()
	t.Logf("figures: %d forged pings (%d bytes) to %s; victim received %d datagrams, %d bytes (%.3fx); spoofed %d, answer_limited %d",
		pings, sent, target.Addr, got, bytes, float64(bytes)/float64(sent),
		s.Dropped[discovery.DropSpoofed], s.Dropped[discovery.DropAnswerLimited])
	assert.LessOrEqual(t, float64(bytes), 1.1*float64(sent), "bytes to the victim, at most 1.1x those sent")
	assert.Less(t, got, pings/10, "acks to the victim: AnswerRate's few, not one per ping")
}
