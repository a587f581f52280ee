package auth_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	keyA = []byte(strings.Repeat("A", 32))
	keyB = []byte(strings.Repeat("B", 32))
)

func ring(t testing.TB, keys ...[]byte) *auth.Keyring {
	t.Helper()
	r, err := auth.NewKeyring(keys...)
	require.NoError(t, err)
	return r
}

func newCodec(t testing.TB, cfg auth.Config) *auth.Codec {
	t.Helper()
	c, err := auth.New(pipe.Codec{}, cfg)
	require.NoError(t, err)
	return c
}

func announce(id string) *codec.Message {
	return &codec.Message{Kind: codec.Announce, Group: "web", ID: id,
		Health: "tcp://198.18.0.2:37821", Comms: "tcp://10.1.1.1:80"}
}

func encode(t testing.TB, c *auth.Codec, m *codec.Message) []byte {
	t.Helper()
	b, err := c.Encode(nil, m)
	require.NoError(t, err)
	return b
}

func decode(c *auth.Codec, b []byte) error {
	var m codec.Message
	return c.Decode(b, &m)
}

func TestConformance(t *testing.T) {
	codectest.Run(t, newCodec(t, auth.Config{Keys: ring(t, keyA)}))
}

// The envelope carries the kinds and arguments of the ping protocol and
// the state transfer unchanged.
func TestConformanceFrugal(t *testing.T) {
	codectest.RunFrugal(t, newCodec(t, auth.Config{Keys: ring(t, keyA)}))
}

func TestSharedKeyRoundTrip(t *testing.T) {
	clk := newClock()
	tx := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	for _, m := range codectest.Messages() {
		b := encode(t, tx, &m)
		var got codec.Message
		require.NoError(t, rx.Decode(b, &got))
		assert.Equal(t, m.ID, got.ID)
		assert.Equal(t, m.Kind, got.Kind)
		assert.True(t, got.Extended, "no original pir peer signs: every sender speaks the extensions")
	}
	n := uint64(len(codectest.Messages()))
	assert.Equal(t, n, tx.Stats().Encoded)
	assert.Equal(t, n, rx.Stats().Decoded)
	assert.Equal(t, 1, rx.Stats().Senders)
}

// An original pir peer splits a datagram on '|' and drops it unless there
// are exactly four fields; an envelope has no '|' at all, so it is always
// one field, whatever the key, sequence number, time or message.
func TestEnvelopeNeverSplitsIntoPipeFields(t *testing.T) {
	clk := newClock()
	c := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := codectest.Messages()
	for i := range 5000 {
		m := msgs[i%len(msgs)]
		m.Meta = map[string]string{"r": strings.Repeat("|", rng.IntN(8)) + fmt.Sprint(rng.Uint64())}
		clk.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		b := encode(t, c, &m)
		require.Len(t, strings.Split(string(b), "|"), 1, "%q", b)
		require.True(t, strings.HasPrefix(string(b), auth.Prefix))
		var pm codec.Message
		require.ErrorIs(t, pipe.Codec{}.Decode(b, &pm), codec.ErrMalformed, "a pipe peer must drop %q", b)
	}
}

// tamperings returns every way of changing one character of the envelope
// to another character: one base64url character replaced by another
// (which changes the decoded bytes), every byte xored with 0x01 and 0x80
// (which mostly yields characters outside the alphabet).
func tamperings(b []byte) [][]byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out [][]byte
	for i := range b {
		for _, change := range []func(byte) byte{
			func(c byte) byte { return alphabet[(strings.IndexByte(alphabet, c)+1+i%63)%64] },
			func(c byte) byte { return c ^ 0x01 },
			func(c byte) byte { return c ^ 0x80 },
		} {
			t := append([]byte(nil), b...)
			t[i] = change(t[i])
			if t[i] != b[i] {
				out = append(out, t)
			}
		}
	}
	return out
}

// wantTamperError says which error a tampered envelope must give: no
// prefix, a key ID that changed, or else a bad tag.
func wantTamperError(orig, tampered []byte) error {
	if !strings.HasPrefix(string(tampered), auth.Prefix) {
		return auth.ErrUnauthenticated
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(string(tampered[len(auth.Prefix):]))
	if err != nil {
		return auth.ErrBadTag
	}
	want, _ := base64.RawURLEncoding.DecodeString(string(orig[len(auth.Prefix):]))
	if string(raw[:4]) != string(want[:4]) {
		return auth.ErrUnknownKey
	}
	return auth.ErrBadTag
}

func TestTamperedEnvelopeRejected(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	m := codectest.Messages()[1] // metadata, IPv6: a long one
	b := encode(t, tx, &m)
	cases := tamperings(b)
	require.Greater(t, len(cases), 2*len(b))
	for _, tb := range cases {
		want := wantTamperError(b, tb)
		require.ErrorIs(t, decode(rx, tb), want, "%q", tb)
	}
	// Nothing was remembered of them: the genuine datagram still passes,
	// once.
	require.NoError(t, decode(rx, b))
	require.ErrorIs(t, decode(rx, b), auth.ErrDuplicate)
	st := rx.Stats()
	assert.Equal(t, uint64(len(cases)), st.Unauthenticated+st.BadTag+st.UnknownKey)
	assert.NotZero(t, st.Unauthenticated)
	assert.NotZero(t, st.UnknownKey)
	assert.NotZero(t, st.BadTag)
}

// Every bit of the binary form flipped, re-encoded as valid base64: only
// the tag can catch these.
func TestFlippedBitsRejected(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	b := encode(t, tx, announce("p1"))
	raw, err := base64.RawURLEncoding.DecodeString(string(b[len(auth.Prefix):]))
	require.NoError(t, err)
	for i := range raw {
		for bit := range 8 {
			f := append([]byte(nil), raw...)
			f[i] ^= 1 << bit
			tb := []byte(auth.Prefix + base64.RawURLEncoding.EncodeToString(f))
			want := auth.ErrBadTag
			if i < 4 {
				want = auth.ErrUnknownKey
			}
			require.ErrorIs(t, decode(rx, tb), want, "byte %d bit %d", i, bit)
		}
	}
	require.NoError(t, decode(rx, b))
}

// The last base64 character carries 2 or 4 bits that encode nothing when
// the binary form's length is not a multiple of 3. A lax decoder ignores
// them, which would let one envelope be written several ways.
func TestOneEncodingPerEnvelope(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	residues := map[int]bool{}
	for _, id := range []string{"p", "pp", "ppp"} {
		b := encode(t, tx, announce(id))
		residues[base64.RawURLEncoding.DecodedLen(len(b)-len(auth.Prefix))%3] = true
		rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
		for _, c := range []byte(alphabet) {
			if c == b[len(b)-1] {
				continue
			}
			tb := append([]byte(nil), b...)
			tb[len(tb)-1] = c
			require.ErrorIs(t, decode(rx, tb), auth.ErrBadTag, "%q", tb)
		}
		require.NoError(t, decode(rx, b))
	}
	assert.Len(t, residues, 3, "every length modulo 3 was tried")
}

func TestTruncatedAndExtendedRejected(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	b := encode(t, tx, announce("p1"))
	for n := len(auth.Prefix); n < len(b); n++ {
		assert.ErrorIs(t, decode(rx, b[:n]), auth.ErrBadTag, "cut to %d bytes", n)
	}
	for _, extra := range []string{"A", "AA", "AAAA", "\n", "\r\n", "=", "|"} {
		assert.ErrorIs(t, decode(rx, append(append([]byte(nil), b...), extra...)), auth.ErrBadTag, "%q appended", extra)
	}
	// A newline inside the text, which Go's base64 decoder would skip.
	nl := append(append(append([]byte(nil), b[:20]...), '\n'), b[20:]...)
	assert.ErrorIs(t, decode(rx, nl), auth.ErrBadTag)
	require.NoError(t, decode(rx, b))
}

func TestUnauthenticatedRejected(t *testing.T) {
	rx := newCodec(t, auth.Config{Keys: ring(t, keyA)})
	for _, m := range codectest.Messages() {
		plain, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		err = decode(rx, plain)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "%q", plain)
		assert.NotErrorIs(t, err, codec.ErrMalformed)
	}
	assert.Equal(t, uint64(len(codectest.Messages())), rx.Stats().Unauthenticated)
}

func TestWrongKeyRejected(t *testing.T) {
	clk := newClock()
	tx := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: ring(t, keyB), Now: clk.Now})
	err := decode(rx, encode(t, tx, announce("p1")))
	require.ErrorIs(t, err, auth.ErrUnknownKey)
	idA, _ := auth.KeyIDOf(keyA)
	assert.Contains(t, err.Error(), idA.String(), "the error names the key, for operators")
	var uk *auth.UnknownKeyError
	require.ErrorAs(t, err, &uk)
	assert.Equal(t, idA, uk.ID)
	assert.Equal(t, uint64(1), rx.Stats().UnknownKey)
}

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{auth.ErrUnauthenticated, auth.ErrBadTag, auth.ErrUnknownKey, auth.ErrReplay, auth.ErrStale,
		auth.ErrDuplicate, codec.ErrMalformed, codec.ErrTooLarge}
	for i, a := range all {
		for j, b := range all {
			assert.Equal(t, i == j, errors.Is(a, b), "%v vs %v", a, b)
		}
	}
}

func TestRotation(t *testing.T) {
	clk := newClock()
	idA, _ := auth.KeyIDOf(keyA)
	idB, _ := auth.KeyIDOf(keyB)
	txKeys, rxKeys := ring(t, keyA), ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: txKeys, Now: clk.Now})
	old := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now}) // a member that never rotates
	rx := newCodec(t, auth.Config{Keys: rxKeys, Now: clk.Now})

	require.NoError(t, decode(rx, encode(t, tx, announce("p1"))))

	// Step 1, everywhere: add the new key; senders keep the old one.
	_, err := rxKeys.Add(keyB)
	require.NoError(t, err)
	_, err = txKeys.Add(keyB)
	require.NoError(t, err)
	cur, _ := txKeys.Current()
	assert.Equal(t, idA, cur, "adding a key does not make it current")
	require.NoError(t, decode(rx, encode(t, tx, announce("p1"))))

	// Step 2: the sender switches; the receiver takes old and new alike.
	require.NoError(t, txKeys.SetCurrent(idB))
	require.NoError(t, rxKeys.SetCurrent(idB))
	require.NoError(t, decode(rx, encode(t, tx, announce("p1"))), "new key")
	require.NoError(t, decode(rx, encode(t, old, announce("p2"))), "old key, still accepted")

	// Step 3: the old key goes; a member still on it is refused.
	require.NoError(t, rxKeys.Remove(idA))
	require.ErrorIs(t, decode(rx, encode(t, old, announce("p2"))), auth.ErrUnknownKey)
	require.NoError(t, decode(rx, encode(t, tx, announce("p1"))))
	assert.Equal(t, []auth.KeyID{idB}, rxKeys.IDs())
}

func TestReplayRejected(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	b := encode(t, tx, announce("p1"))
	require.NoError(t, decode(rx, b))
	clk.Add(1001 * time.Millisecond)
	err := decode(rx, b)
	require.ErrorIs(t, err, auth.ErrReplay)
	assert.NotErrorIs(t, err, auth.ErrDuplicate)
	assert.NotErrorIs(t, err, codec.ErrMalformed)
	// Still refused later in the window.
	clk.Add(28 * time.Second)
	require.ErrorIs(t, decode(rx, b), auth.ErrReplay)
	assert.Equal(t, uint64(2), rx.Stats().Replayed)
	assert.Equal(t, uint64(1), rx.Stats().Decoded)
	assert.Zero(t, rx.Stats().Duplicates)
}

// A second copy of a datagram within a second of its sender's latest is
// one heard by another path (IPv4 and IPv6): refused, and counted apart
// from replays. Later, the same copy is a replay.
func TestCopyByAnotherPathIsDuplicate(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	first := encode(t, tx, announce("p1"))
	second := encode(t, tx, announce("p1"))
	require.NoError(t, decode(rx, first))
	clk.Add(3 * time.Millisecond)
	require.ErrorIs(t, decode(rx, first), auth.ErrDuplicate, "the IPv6 copy, 3 ms later")
	clk.Add(997 * time.Millisecond)
	require.NoError(t, decode(rx, second), "a second after the first")
	clk.Add(time.Second)
	require.ErrorIs(t, decode(rx, second), auth.ErrDuplicate, "a second after the latest accepted")
	clk.Add(time.Millisecond)
	err := decode(rx, second)
	require.ErrorIs(t, err, auth.ErrReplay, "more than a second after the latest accepted")
	assert.NotErrorIs(t, err, auth.ErrDuplicate)
	st := rx.Stats()
	assert.Equal(t, uint64(2), st.Duplicates)
	assert.Equal(t, uint64(1), st.Replayed)
	assert.Equal(t, uint64(2), st.Decoded)
}

func TestReorderingWithinWindowAccepted(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	const window = 64
	var sent [][]byte
	for range 2 * window {
		sent = append(sent, encode(t, tx, announce("p1")))
	}
	// The first window's worth, newest first: all accepted, once.
	for i := window - 1; i >= 0; i-- {
		require.NoError(t, decode(rx, sent[i]), "datagram %d", i)
	}
	clk.Add(2 * time.Second) // past the copy window: replays, not duplicates
	for i := range window {
		require.ErrorIs(t, decode(rx, sent[i]), auth.ErrReplay, "datagram %d again", i)
	}
	// The second window shuffled: all accepted.
	second := append([][]byte(nil), sent[window:2*window]...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(second), func(i, j int) { second[i], second[j] = second[j], second[i] })
	for i, b := range second {
		require.NoError(t, decode(rx, b), "shuffled %d", i)
	}
	// 65 more, newest first: the newest moves the window past the oldest,
	// 64 behind it, which can no longer be told from a replay.
	var more [][]byte
	for range window + 1 {
		more = append(more, encode(t, tx, announce("p1")))
	}
	require.NoError(t, decode(rx, more[window]))
	require.NoError(t, decode(rx, more[1]), "63 behind: in the window")
	require.ErrorIs(t, decode(rx, more[0]), auth.ErrReplay, "64 behind: out of the window")
}

func TestStaleRejected(t *testing.T) {
	rxClock := newClock()
	keys := ring(t, keyA)
	rx := newCodec(t, auth.Config{Keys: keys, Now: rxClock.Now, Window: 30 * time.Second})
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{
		{0, true},
		{30 * time.Second, true},
		{-30 * time.Second, true},
		{30*time.Second + time.Millisecond, false},
		{-30*time.Second - time.Millisecond, false},
		{time.Hour, false},
		{-24 * time.Hour, false},
	} {
		t.Run(tc.skew.String(), func(t *testing.T) {
			txClock := newClock()
			txClock.Add(tc.skew)
			tx := newCodec(t, auth.Config{Keys: keys, Now: txClock.Now})
			err := decode(rx, encode(t, tx, announce("p1")))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, auth.ErrStale)
				assert.NotErrorIs(t, err, codec.ErrMalformed)
			}
		})
	}
	assert.Equal(t, uint64(4), rx.Stats().Stale)
	assert.Equal(t, 3, rx.Stats().Senders, "a stale sender is not remembered")
}

// A datagram held back and replayed after the window is stale, even to a
// receiver that never saw it.
func TestDelayedReplayIsStale(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	tx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	b := encode(t, tx, announce("p1"))
	clk.Add(31 * time.Second)
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	require.ErrorIs(t, decode(rx, b), auth.ErrStale)
}

// A restarted member is a new Codec with the same key: the receiver that
// heard the old one accepts it at once, and still refuses the old one's
// datagrams again.
func TestRestartedSenderAccepted(t *testing.T) {
	clk := newClock()
	rx := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	before := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	var old []byte
	for range 100 {
		old = encode(t, before, announce("p1"))
		require.NoError(t, decode(rx, old))
	}
	after := newCodec(t, auth.Config{Keys: ring(t, keyA), Now: clk.Now})
	require.NoError(t, decode(rx, encode(t, after, announce("p1"))))
	require.NoError(t, decode(rx, encode(t, after, announce("p1"))))
	clk.Add(2 * time.Second) // past the copy window: a replay, not a duplicate
	require.ErrorIs(t, decode(rx, old), auth.ErrReplay)
	assert.Equal(t, 2, rx.Stats().Senders)
}

func TestSenderTableBounded(t *testing.T) {
	clk := newClock()
	keys := ring(t, keyA)
	const max = 16
	rx := newCodec(t, auth.Config{Keys: keys, Now: clk.Now, MaxSenders: max})
	legit := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
	require.NoError(t, decode(rx, encode(t, legit, announce("legit"))))

	// A key holder making up senders, interleaved with a member that keeps
	// talking: the table never grows past max, and the member that keeps
	// talking is never the least recently heard, so never forgotten.
	var first []byte
	for i := range 10 * max {
		flood := newCodec(t, auth.Config{Keys: keys, Now: clk.Now})
		b := encode(t, flood, announce(fmt.Sprint("flood-", i)))
		if i == 0 {
			first = b
		}
		require.NoError(t, decode(rx, b))
		require.NoError(t, decode(rx, encode(t, legit, announce("legit"))))
		require.LessOrEqual(t, rx.Stats().Senders, max)
	}
	st := rx.Stats()
	assert.Equal(t, max, st.Senders)
	assert.Equal(t, uint64(10*max-(max-1)), st.Evicted, "every sender forgotten within the window counts")
	// What eviction costs: the first flooder was forgotten, so its datagram
	// can be replayed once more within the window.
	require.NoError(t, decode(rx, first))
	require.ErrorIs(t, decode(rx, first), auth.ErrDuplicate)

	// Senders quiet for more than twice the window are forgotten without
	// counting: their datagrams are stale by then.
	clk.Add(61 * time.Second)
	evicted := rx.Stats().Evicted
	for range max {
		require.NoError(t, decode(rx, encode(t, newCodec(t, auth.Config{Keys: keys, Now: clk.Now}), announce("new"))))
	}
	assert.Equal(t, evicted, rx.Stats().Evicted)
	assert.Equal(t, max, rx.Stats().Senders)
}

// Encode and Decode from several goroutines at once, with keys rotating
// under them; the race detector checks the sharing.
func TestConcurrentUse(t *testing.T) {
	idA, _ := auth.KeyIDOf(keyA)
	idB, _ := auth.KeyIDOf(keyB)
	keys := ring(t, keyA, keyB)
	c := newCodec(t, auth.Config{Keys: keys})
	peer := newCodec(t, auth.Config{Keys: keys})
	const n = 500
	datagrams := make(chan []byte, n)
	var wg sync.WaitGroup
	wg.Go(func() { // sender
		defer close(datagrams)
		for i := range n {
			b, err := peer.Encode(nil, announce(fmt.Sprint("p", i%7)))
			assert.NoError(t, err)
			datagrams <- b
		}
	})
	wg.Go(func() { // receiver
		for b := range datagrams {
			assert.NoError(t, decode(c, b))
		}
	})
	wg.Go(func() { // c also sends, and decodes its own loopback
		for range n {
			b, err := c.Encode(nil, announce("self"))
			assert.NoError(t, err)
			assert.NoError(t, decode(c, b))
		}
	})
	wg.Go(func() { // rotation back and forth
		for i := range n {
			assert.NoError(t, keys.SetCurrent([]auth.KeyID{idA, idB}[i%2]))
			_ = c.Stats()
		}
	})
	wg.Wait()
	st := c.Stats()
	assert.Equal(t, uint64(2*n), st.Decoded)
	assert.Equal(t, uint64(n), st.Encoded)
}

func TestEncodeTooLarge(t *testing.T) {
	c := newCodec(t, auth.Config{Keys: ring(t, keyA), MaxSize: 200})
	m := announce("p1")
	b := encode(t, c, m)
	assert.LessOrEqual(t, len(b), 200)
	m.Meta = map[string]string{"k": strings.Repeat("v", 100)}
	out, err := c.Encode([]byte("keep"), m)
	require.ErrorIs(t, err, codec.ErrTooLarge)
	assert.Equal(t, "keep", string(out), "a refused message leaves dst as it was")
	require.ErrorIs(t, decode(c, append(b, make([]byte, 200)...)), codec.ErrTooLarge)
	assert.Equal(t, uint64(1), c.Stats().EncodeErrors)
	assert.Equal(t, uint64(1), c.Stats().TooLarge)
}

// The default limit leaves the inner message 1042 bytes, as Config says.
func TestDefaultCapacity(t *testing.T) {
	c := newCodec(t, auth.Config{Keys: ring(t, keyA)})
	m := announce("p1")
	plain, err := pipe.Codec{}.Encode(nil, m)
	require.NoError(t, err)
	const innerMax = 1042
	m.Meta = map[string]string{"k": ""}
	base, err := pipe.Codec{}.Encode(nil, m)
	require.NoError(t, err)
	require.Greater(t, len(base), len(plain))
	m.Meta["k"] = strings.Repeat("v", innerMax-len(base))
	b, err := c.Encode(nil, m)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(b), 1452)
	m.Meta["k"] += "v"
	_, err = c.Encode(nil, m)
	require.ErrorIs(t, err, codec.ErrTooLarge)
}

func TestNewValidates(t *testing.T) {
	_, err := auth.New(nil, auth.Config{Keys: ring(t, keyA)})
	require.Error(t, err)
	_, err = auth.New(pipe.Codec{}, auth.Config{})
	require.ErrorIs(t, err, auth.ErrInvalidConfig)
	require.ErrorContains(t, err, "Keys is required")
	_, err = auth.New(pipe.Codec{}, auth.Config{Keys: new(auth.Keyring)})
	require.ErrorContains(t, err, "no key")
	_, err = auth.New(pipe.Codec{}, auth.Config{Keys: ring(t, keyA), MaxSize: 10, Window: -time.Second, MaxSenders: -1})
	require.Error(t, err)
	require.ErrorIs(t, err, auth.ErrInvalidConfig)
	for _, want := range []string{"MaxSize", "Window", "MaxSenders"} {
		assert.ErrorContains(t, err, want, "every problem is reported at once")
	}
}

func TestInnerErrorsPassThrough(t *testing.T) {
	c := newCodec(t, auth.Config{Keys: ring(t, keyA)})
	m := announce("a|b")
	out, err := c.Encode([]byte("keep"), m)
	require.ErrorIs(t, err, codec.ErrInvalid)
	assert.Equal(t, "keep", string(out))
}

// A page under the envelope holds fewer entries than pipe's 1452 bytes
// allow: 1042 bytes of inner message, 8 members as pirbench names them
// (12 without a key; codec/pipe's TestFrugalSizes).
func TestPageFitsEnvelope(t *testing.T) {
	c := newCodec(t, auth.Config{Keys: ring(t, keyA)})
	const id = "4972084b-10a3-4d9d-8523-7e25b7e50141"
	page := func(n int) codec.Message {
		m := codec.Message{Kind: codec.Page, Group: "pir", ID: id, Page: 1, Pages: 2}
		for i := range n {
			m.Entries = append(m.Entries, codec.Entry{ID: id, Addr: netip.MustParseAddrPort("198.18.0.2:41234"),
				Health: "tcp://198.18.0.2:41234", Comms: "tcp://198.18.0.2:41234", Version: uint32(i%9 + 1), Pings: true, Extended: true})
		}
		return m
	}
	m := page(8)
	b, err := c.Encode(nil, &m)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(b), codec.MaxDatagram)
	var got codec.Message
	require.NoError(t, c.Decode(b, &got))
	assert.Equal(t, m.Entries, got.Entries)
	m = page(9)
	_, err = c.Encode(nil, &m)
	require.ErrorIs(t, err, codec.ErrTooLarge)
}
