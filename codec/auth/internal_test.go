package auth

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
)

var (
	testKey   = []byte(strings.Repeat("K", 32))
	testTime  = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	fixedNow  = func() time.Time { return testTime }
	senderTx  = uint64(0x0123456789abcdef)
	otherKey  = []byte(strings.Repeat("O", 32))
	reasonErr = []error{ErrUnauthenticated, ErrBadTag, ErrUnknownKey, ErrReplay, ErrDuplicate, ErrStale, codec.ErrMalformed, codec.ErrTooLarge}
)

// seal makes an envelope around any payload, with any header.
func seal(t testing.TB, secret []byte, sender, seq uint64, ms int64, payload []byte) []byte {
	t.Helper()
	k, err := newKey(secret)
	require.NoError(t, err)
	b := appendHeader(nil, k.id, sender, seq, ms)
	b = appendTag(append(b, payload...), k)
	return enc.AppendEncode([]byte(Prefix), b)
}

func newTestCodec(t testing.TB, keys ...[]byte) *Codec {
	t.Helper()
	r, err := NewKeyring(keys...)
	require.NoError(t, err)
	return newTestCodecRing(t, r)
}

// newTestCodecRing is newTestCodec for a ring made once: deriving keys
// would dominate a fuzz iteration.
func newTestCodecRing(t testing.TB, r *Keyring) *Codec {
	t.Helper()
	c, err := New(pipe.Codec{}, Config{Keys: r, Now: fixedNow})
	require.NoError(t, err)
	return c
}

// reason checks that err is one of the reasons a datagram is refused.
func reason(t testing.TB, err error) {
	t.Helper()
	n := 0
	for _, r := range reasonErr {
		if errors.Is(err, r) {
			n++
		}
	}
	require.Equal(t, 1, n, "error %v matches %d reasons, want exactly one", err, n)
}

// The replay window against the obvious model: every number accepted ever,
// and the rule "new, and less than windowSize behind the highest".
func TestReplayWindowMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tab := newReplayTable(1 << 10)
	type model struct {
		max  uint64
		seen map[uint64]bool
	}
	models := map[uint64]*model{}
	for range 200000 {
		id := uint64(rng.IntN(4))
		m := models[id]
		var seq uint64
		switch {
		case m == nil:
			seq = 1000 + rng.Uint64N(1000)
		case rng.IntN(10) == 0:
			seq = m.max + uint64(rng.IntN(200)) // jumps ahead, sometimes past the window
		default:
			seq = m.max + 8 - uint64(rng.IntN(80)) // around the window's edge
		}
		want := m == nil || seq > m.max || m.max-seq < windowSize && !m.seen[seq]
		require.Equal(t, want, tab.fresh(id, seq, 0, 1), "sender %d seq %d", id, seq)
		if want {
			if m == nil {
				m = &model{max: seq, seen: map[uint64]bool{}}
				models[id] = m
			}
			m.seen[seq] = true
			m.max = max(m.max, seq)
		}
	}
}

func TestReplayWindowExtremes(t *testing.T) {
	tab := newReplayTable(4)
	assert.True(t, tab.fresh(1, 0, 0, 1))
	assert.False(t, tab.fresh(1, 0, 0, 1))
	assert.True(t, tab.fresh(1, math.MaxUint64, 0, 1))
	assert.False(t, tab.fresh(1, 0, 0, 1), "far behind")
	assert.True(t, tab.fresh(1, math.MaxUint64-63, 0, 1))
	assert.False(t, tab.fresh(1, math.MaxUint64-64, 0, 1))
	assert.False(t, tab.fresh(1, math.MaxUint64, 0, 1))
}

// The least recently heard sender is the one forgotten, whatever the order
// of arrivals.
func TestReplayTableEvictsLeastRecent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const size = 8
	tab := newReplayTable(size)
	var lru []uint64 // model: most recent last
	next := map[uint64]uint64{}
	for range 20000 {
		id := uint64(rng.IntN(3 * size))
		next[id]++
		require.True(t, tab.fresh(id, next[id], 0, 1))
		for i, x := range lru {
			if x == id {
				lru = append(lru[:i], lru[i+1:]...)
				break
			}
		}
		lru = append(lru, id)
		if len(lru) > size {
			forgotten := lru[0]
			lru = lru[1:]
			// Forgotten: its next number starts it afresh, so a number
			// before it is accepted again (the cost of forgetting).
			next[forgotten] = 0
		}
		n, _ := tab.stats()
		require.Equal(t, len(lru), n)
		for _, x := range lru {
			_, ok := tab.index[x]
			require.True(t, ok, "sender %d must be remembered", x)
		}
	}
}

// A key with the ID of ours but another secret: only the tag tells.
func TestSameKeyIDOtherSecret(t *testing.T) {
	rx := newTestCodec(t, testKey)
	good := seal(t, testKey, senderTx, 1, testTime.UnixMilli(), []byte("g|i|tcp://h:1|tcp://c:2"))
	require.NoError(t, rx.Decode(good, new(codec.Message)))

	k, err := newKey(otherKey)
	require.NoError(t, err)
	mine, _ := KeyIDOf(testKey)
	b := appendHeader(nil, mine, senderTx, 2, testTime.UnixMilli())
	b = appendTag(append(b, "g|i|tcp://h:1|tcp://c:2"...), k)
	forged := enc.AppendEncode([]byte(Prefix), b)
	require.ErrorIs(t, rx.Decode(forged, new(codec.Message)), ErrBadTag)
	// The forgery did not advance the sender's window.
	require.NoError(t, rx.Decode(seal(t, testKey, senderTx, 2, testTime.UnixMilli(), []byte("g|i|tcp://h:1|tcp://c:2")), new(codec.Message)))
}

// An authentic envelope around bytes the inner codec refuses: the inner
// error, counted as malformed, and the sequence number is used up.
func TestAuthenticButMalformed(t *testing.T) {
	rx := newTestCodec(t, testKey)
	b := seal(t, testKey, senderTx, 1, testTime.UnixMilli(), []byte("not|a|message"))
	err := rx.Decode(b, new(codec.Message))
	require.ErrorIs(t, err, codec.ErrMalformed)
	assert.Equal(t, uint64(1), rx.Stats().Malformed)
	require.ErrorIs(t, rx.Decode(b, new(codec.Message)), ErrDuplicate)
}

func TestTimestampExtremes(t *testing.T) {
	rx := newTestCodec(t, testKey)
	for _, ms := range []int64{math.MinInt64, -1, 0, math.MaxInt64, testTime.UnixMilli() - 30001, testTime.UnixMilli() + 30001} {
		b := seal(t, testKey, senderTx, 1, ms, []byte("g|i|tcp://h:1|tcp://c:2"))
		require.ErrorIs(t, rx.Decode(b, new(codec.Message)), ErrStale, "time %d", ms)
	}
}

// fuzzSeeds are genuine envelopes of a fixed sender, key and time, so that
// they are the same bytes on every run.
func fuzzSeeds(t testing.TB) [][]byte {
	r, err := NewKeyring(testKey)
	require.NoError(t, err)
	tx, err := New(pipe.Codec{}, Config{Keys: r, Now: fixedNow})
	require.NoError(t, err)
	tx.sender = senderTx
	var seeds [][]byte
	for _, m := range append(codectest.Messages(), codectest.FrugalMessages()...) {
		b, err := tx.Encode(nil, &m)
		require.NoError(t, err)
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecode feeds any bytes to a fresh receiver. It must never panic; a
// refusal must give exactly one reason; and only a genuine envelope may be
// accepted, which then holds to the codec contract (codectest.Check, with a
// receiver of its own so that the input is not a replay to it).
func FuzzDecode(f *testing.F) {
	seeds := fuzzSeeds(f)
	genuine := map[string]bool{}
	for _, b := range seeds {
		genuine[string(b)] = true
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, b := range codectest.Garbage() {
		f.Add(b)
		f.Add(append([]byte(Prefix), b...))
	}
	for _, m := range codectest.Messages() {
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(f, err)
		f.Add(b)
	}
	keys, err := NewKeyring(testKey, otherKey)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		rx := newTestCodecRing(t, keys)
		var m codec.Message
		err := rx.Decode(b, &m)
		if err != nil {
			reason(t, err)
			return
		}
		require.True(t, genuine[string(b)], "accepted a datagram nobody signed: %q", b)
		codectest.Check(t, newTestCodecRing(t, keys), b)
	})
}

// FuzzSealed reaches past the tag: any payload, sequence number and
// timestamp in a correctly signed envelope. The inner codec and the replay
// and time checks face the fuzzer here.
func FuzzSealed(f *testing.F) {
	for _, m := range append(codectest.Messages(), codectest.FrugalMessages()...) {
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(f, err)
		f.Add(b, uint64(1), int64(0))
	}
	for _, b := range codectest.Garbage() {
		f.Add(b, uint64(math.MaxUint64), int64(-30000))
	}
	f.Add([]byte("g|i|tcp://h:1|tcp://c:2"), uint64(0), int64(math.MaxInt64))
	keys, err := NewKeyring(testKey)
	require.NoError(f, err)
	k := keys.state.Load().current
	f.Fuzz(func(t *testing.T, payload []byte, seq uint64, skew int64) {
		b := appendHeader(nil, k.id, senderTx, seq, testTime.UnixMilli()+skew)
		b = enc.AppendEncode([]byte(Prefix), appendTag(append(b, payload...), k))
		rx := newTestCodecRing(t, keys)
		var m codec.Message
		err := rx.Decode(b, &m)
		if err != nil {
			reason(t, err)
			if skew >= -30000 && skew <= 30000 && len(b) <= rx.cfg.MaxSize {
				require.ErrorIs(t, err, codec.ErrMalformed, "fresh and signed: only the inner codec may refuse it")
			}
			return
		}
		require.ErrorIs(t, rx.Decode(b, &m), ErrDuplicate, "the same datagram again at once")
		codectest.Check(t, newTestCodecRing(t, keys), b)
	})
}

// fresh is accept, as a yes or no.
func (t *replayTable) fresh(id, seq uint64, now, forgetAfter int64) bool {
	return t.accept(id, seq, now, forgetAfter) == fresh
}
