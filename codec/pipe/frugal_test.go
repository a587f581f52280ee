package pipe_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
)

// evd failed=1 with heard and probed: the arguments are joined by '&' and
// each decodes back.
func TestEvidenceFailedWire(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		m    codec.Message
		wire string
	}{
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: 120 * ms, Probed: 30 * ms},
			"web|c|b||evd|failed=1&heard=120&probed=30"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: 120 * ms, Probed: -1},
			"web|c|b||evd|failed=1&heard=120"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: -1, Probed: 30 * ms},
			"web|c|b||evd|failed=1&probed=30"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: -1, Probed: -1},
			"web|c|b||evd|failed=1"},
	}
	for _, tc := range cases {
		b, err := pipe.Codec{}.Encode(nil, &tc.m)
		require.NoError(t, err)
		assert.Equal(t, tc.wire, string(b))
		var got codec.Message
		require.NoError(t, pipe.Codec{}.Decode(b, &got))
		tc.m.Extended = true
		assert.Equal(t, tc.m, got, "%q", b)
	}
}

// pirbench's names: group "pir", 36-byte UUIDs, tcp:// URIs on 198.18.0.0/15.
const (
	benchID     = "4972084b-10a3-4d9d-8523-7e25b7e50141"
	benchTarget = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
	benchURI    = "tcp://198.18.0.2:41234"
)

var benchCookie = [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}

// benchEntry is a member as a page lists it in pirbench: IPv4 address,
// tcp:// URIs, answers pings, speaks the extensions.
func benchEntry(i int) codec.Entry {
	return codec.Entry{ID: benchID, Addr: netip.MustParseAddrPort("198.18.0.2:41234"),
		Health: benchURI, Comms: benchURI, Version: uint32(i%9 + 1), Pings: true, Extended: true}
}

// The new kinds and arguments byte for byte, as docs/wire.md gives them,
// and each decodes back to the message.
func TestFrugalWire(t *testing.T) {
	ms := time.Millisecond
	entries := []codec.Entry{
		{ID: "a", Health: "tcp://h:1", Comms: "tcp://c:2", Version: 7, Pings: true, Extended: true},
		{ID: "b", Addr: netip.MustParseAddrPort("[fd42::3]:41234"), Health: "http://[fd42::3]:8080/hz", Comms: "tcp://[fd42::3]:80",
			Meta: map[string]string{"zone": "eu|west", "a b": "é&="}, HealthFails: 1, Suspect: true, Pings: true, Extended: true, Version: 3},
		{ID: "o", Addr: netip.MustParseAddrPort("198.18.0.9:37821"), Health: "tcp://198.18.0.9:37821", Comms: "tcp://10.1.1.1:80"},
	}
	cases := []struct {
		name string
		m    codec.Message
		wire string
	}{
		{"ann with every argument",
			codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2",
				Pings: true, Version: 7, HealthFails: 2, Interval: 100 * time.Second},
			"g|i|tcp://h:1|tcp://c:2|ann||ai=100&h=2&p=1&v=7"},
		{"ann p=1", codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Pings: true},
			"g|i|tcp://h:1|tcp://c:2|ann||p=1"},
		{"ann v", codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Version: 1<<32 - 1},
			"g|i|tcp://h:1|tcp://c:2|ann||v=4294967295"},
		{"ann h", codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", HealthFails: 1<<31 - 1},
			"g|i|tcp://h:1|tcp://c:2|ann||h=2147483647"},
		{"ann ai", codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Interval: 20 * time.Second},
			"g|i|tcp://h:1|tcp://c:2|ann||ai=20"},
		{"ann with metadata and arguments",
			codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2",
				Meta: map[string]string{"role": "web"}, Pings: true, Version: 2},
			"g|i|tcp://h:1|tcp://c:2|ann|role=web|p=1&v=2"},
		{"qry", codec.Message{Kind: codec.Query, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Pings: true, Version: 1},
			"g|i|tcp://h:1|tcp://c:2|qry||p=1&v=1"},
		{"qry h and ai", codec.Message{Kind: codec.Query, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", HealthFails: 3, Interval: time.Second},
			"g|i|tcp://h:1|tcp://c:2|qry||ai=1&h=3"},
		{"passive qry", codec.Message{Kind: codec.Query, Group: "g", ID: "w", Pings: true}, "g|w|||qry||p=1"},
		{"obit since", codec.Message{Kind: codec.Obituary, Group: "g", ID: "c", Target: "b", Since: 1750 * ms, Heard: -1, Probed: -1},
			"g|c|b||obit|since=1750"},
		{"png", codec.Message{Kind: codec.Ping, Group: "g", ID: "i", Nonce: 0xdeadbeef, Version: 3}, "g|i|||png|n=deadbeef&v=3"},
		{"png zero", codec.Message{Kind: codec.Ping, Group: "g", ID: "i"}, "g|i|||png|n=00000000&v=0"},
		{"ack", codec.Message{Kind: codec.Ack, Group: "g", ID: "i", Nonce: 0xcafe, Version: 4}, "g|i|||ack|n=0000cafe&v=4"},
		{"ack who", codec.Message{Kind: codec.Ack, Group: "g", ID: "i", Nonce: 0xcafe, Version: 4, Who: true}, "g|i|||ack|n=0000cafe&v=4&who=1"},
		{"offer", codec.Message{Kind: codec.Offer, Group: "g", ID: "i", Cookie: benchCookie, Pages: 3}, "g|i|||offer|c=0123456789abcdef&pages=3"},
		{"pull", codec.Message{Kind: codec.Pull, Group: "g", ID: "i", Cookie: benchCookie, Page: 2}, "g|i|||pull|c=0123456789abcdef&page=2"},
		{"empty page", codec.Message{Kind: codec.Page, Group: "g", ID: "i", Cookie: benchCookie, Page: 0, Pages: 1},
			"g|i|||page|c=0123456789abcdef&page=0&pages=1"},
		{"page", codec.Message{Kind: codec.Page, Group: "g", ID: "i", Cookie: benchCookie, Page: 1, Pages: 2, Entries: entries},
			"g|i|||page|c=0123456789abcdef&page=1&pages=2" +
				"|a||tcp://h:1|tcp://c:2|p=1&v=7&x=1" +
				"|b|[fd42::3]:41234|http://[fd42::3]:8080/hz|tcp://[fd42::3]:80|h=1&m.a+b=%C3%A9%26%3D&m.zone=eu%7Cwest&p=1&s=1&v=3&x=1" +
				"|o|198.18.0.9:37821|tcp://198.18.0.9:37821|tcp://10.1.1.1:80|"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := pipe.Codec{}.Encode(nil, &tc.m)
			require.NoError(t, err)
			assert.Equal(t, tc.wire, string(b))
			var got codec.Message
			require.NoError(t, pipe.Codec{}.Decode(b, &got))
			tc.m.Extended = true
			assert.Equal(t, tc.m, got)
		})
	}
}

// An interval that is not whole seconds goes on the wire rounded up, so
// that a receiver never expires the sender early; zero or negative goes
// as no ai at all.
func TestIntervalRoundedUp(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		wire string
	}{
		{1500 * time.Millisecond, "g|i|tcp://h:1|tcp://c:2|ann||ai=2&p=1"},
		{time.Nanosecond, "g|i|tcp://h:1|tcp://c:2|ann||ai=1&p=1"},
		{-time.Second, "g|i|tcp://h:1|tcp://c:2|ann||p=1"},
		{1 << 62, "g|i|tcp://h:1|tcp://c:2|ann||ai=2147483647&p=1"},
	} {
		m := codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Pings: true, Interval: tc.in}
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		assert.Equal(t, tc.wire, string(b), "%v", tc.in)
	}
}

// A seven-field ann decodes with every field an older pir reads exactly
// as the six-field ann without ARGS gives them: META intact, Extended set.
// Keys it does not know, pairs without '=' and fields after the seventh
// are ignored.
func TestSevenFieldAnnKeepsOldFields(t *testing.T) {
	six := "pir|" + benchID + "|http://198.18.0.2:8080/healthz|tcp://198.18.0.2:80|ann|role=web&zone=eu+west"
	var old codec.Message
	require.NoError(t, pipe.Codec{}.Decode([]byte(six), &old))
	require.Equal(t, map[string]string{"role": "web", "zone": "eu west"}, old.Meta)
	require.True(t, old.Extended)

	for _, tc := range []struct {
		args string
		want codec.Message // the new fields only
	}{
		{"", codec.Message{}},
		{"p=1", codec.Message{Pings: true}},
		{"ai=100&h=2&p=1&v=7", codec.Message{Pings: true, Version: 7, HealthFails: 2, Interval: 100 * time.Second}},
		{"v=7&p=1", codec.Message{Pings: true, Version: 7}}, // order does not matter
		{"p=0&v=0", codec.Message{}},
		{"future=x&p=1&flag&m.k=v&v=3&pad=" + strings.Repeat("0", 40), codec.Message{Pings: true, Version: 3}},
		{"p=1|eighth|ninth", codec.Message{Pings: true}},
		{"zz|p=1", codec.Message{}}, // p=1 in field 8 is no argument
	} {
		var got codec.Message
		require.NoError(t, pipe.Codec{}.Decode([]byte(six+"|"+tc.args), &got), tc.args)
		want := old
		want.Pings, want.Version, want.HealthFails, want.Interval = tc.want.Pings, tc.want.Version, tc.want.HealthFails, tc.want.Interval
		assert.Equal(t, want, got, tc.args)
	}
}

// With no new field set, ann and qry (active and passive), bye, evd and
// obit are byte for byte what pir wrote before ARGS (the golden test
// covers the engine's messages; these name the ARGS cases). ARGS go only
// on ann and qry: a goodbye ignores them.
func TestNoArgsNoChange(t *testing.T) {
	uri := benchURI
	cases := []struct {
		m    codec.Message
		wire string
	}{
		{codec.Message{Kind: codec.Announce, Group: "pir", ID: benchID, Health: uri, Comms: uri},
			"pir|" + benchID + "|" + uri + "|" + uri},
		{codec.Message{Kind: codec.Announce, Group: "pir", ID: benchID, Health: uri, Comms: uri, Interval: -time.Second},
			"pir|" + benchID + "|" + uri + "|" + uri},
		{codec.Message{Kind: codec.Announce, Group: "pir", ID: benchID, Health: uri, Comms: uri, Extended: true},
			"pir|" + benchID + "|" + uri + "|" + uri + "|ann|"},
		{codec.Message{Kind: codec.Query, Group: "pir", ID: benchID, Health: uri, Comms: uri},
			"pir|" + benchID + "|" + uri + "|" + uri + "|qry|"},
		{codec.Message{Kind: codec.Query, Group: "pir", ID: benchID}, "pir|" + benchID + "|||qry|"},
		{codec.Message{Kind: codec.Goodbye, Group: "pir", ID: benchID, Pings: true, Version: 3}, "pir|" + benchID + "|||bye|"},
		{codec.Message{Kind: codec.Evidence, Group: "pir", ID: benchID, Target: benchTarget, Heard: 5 * time.Millisecond, Probed: -1},
			"pir|" + benchID + "|" + benchTarget + "||evd|heard=5"},
		{codec.Message{Kind: codec.Obituary, Group: "pir", ID: benchID, Target: benchTarget},
			"pir|" + benchID + "|" + benchTarget + "||obit|"},
		{codec.Message{Kind: codec.Obituary, Group: "pir", ID: benchID, Target: benchTarget, Since: 999 * time.Microsecond},
			"pir|" + benchID + "|" + benchTarget + "||obit|"},
	}
	for _, tc := range cases {
		b, err := pipe.Codec{}.Encode(nil, &tc.m)
		require.NoError(t, err)
		assert.Equal(t, tc.wire, string(b))
	}
}

// Sizes with pirbench's names, as docs/wire.md and docs/design/frugal.md
// give them.
func TestFrugalSizes(t *testing.T) {
	size := func(m codec.Message) int {
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		return len(b)
	}
	assert.Equal(t, 61, size(codec.Message{Kind: codec.Ping, Group: "pir", ID: benchID, Nonce: 0xdeadbeef, Version: 3}), "png")
	assert.Equal(t, 61, size(codec.Message{Kind: codec.Ack, Group: "pir", ID: benchID, Nonce: 0xdeadbeef, Version: 3}), "ack")
	assert.Equal(t, 67, size(codec.Message{Kind: codec.Ack, Group: "pir", ID: benchID, Nonce: 0xdeadbeef, Version: 3, Who: true}), "ack who=1")
	assert.Equal(t, 75, size(codec.Message{Kind: codec.Offer, Group: "pir", ID: benchID, Cookie: benchCookie, Pages: 2}), "offer")
	assert.Equal(t, 73, size(codec.Message{Kind: codec.Pull, Group: "pir", ID: benchID, Cookie: benchCookie, Page: 1}), "pull")
	assert.Equal(t, 81, size(codec.Message{Kind: codec.Page, Group: "pir", ID: benchID, Cookie: benchCookie, Page: 1, Pages: 2}), "page without entries")
	assert.Equal(t, 47, size(codec.Message{Kind: codec.Query, Group: "pir", ID: benchID}), "passive qry")
	assert.Equal(t, 51, size(codec.Message{Kind: codec.Query, Group: "pir", ID: benchID, Pings: true}), "passive qry p=1")
	assert.Equal(t, 99, size(codec.Message{Kind: codec.Query, Group: "pir", ID: benchID, Health: benchURI, Comms: benchURI, Pings: true, Version: 1}), "qry p=1&v=1")
	assert.Equal(t, 106, size(codec.Message{Kind: codec.Announce, Group: "pir", ID: benchID, Health: benchURI, Comms: benchURI,
		Pings: true, Version: 1, Interval: 100 * time.Second}), "ann ai=100&p=1&v=1")
	e := benchEntry(0)
	one := size(codec.Message{Kind: codec.Page, Group: "pir", ID: benchID, Cookie: benchCookie, Page: 1, Pages: 2, Entries: []codec.Entry{e}})
	assert.Equal(t, 112, one-81, "one entry")

	// How many such entries a page holds: in pipe's 1452 bytes, and in
	// the 1042 bytes of inner message that codec/auth leaves.
	for _, tc := range []struct {
		limit, want int
	}{{codec.MaxDatagram, 12}, {1042, 8}} {
		c := pipe.Codec{MaxSize: tc.limit}
		n := 0
		for ; ; n++ {
			es := make([]codec.Entry, n+1)
			for i := range es {
				es[i] = benchEntry(i)
			}
			m := codec.Message{Kind: codec.Page, Group: "pir", ID: benchID, Cookie: benchCookie, Page: 1, Pages: 2, Entries: es}
			if _, err := c.Encode(nil, &m); err != nil {
				require.ErrorIs(t, err, codec.ErrTooLarge)
				break
			}
		}
		assert.Equal(t, tc.want, n, "entries in %d bytes", tc.limit)
	}
}

// A page of exactly codec.MaxDatagram bytes encodes and decodes; one entry
// more is ErrTooLarge and leaves dst as it was.
func TestPageAtTheLimit(t *testing.T) {
	page := codec.Message{Kind: codec.Page, Group: "pir", ID: benchID, Cookie: benchCookie, Page: 0, Pages: 1}
	enc := func(m codec.Message) ([]byte, error) { return pipe.Codec{}.Encode(nil, &m) }
	// As many entries as leave room for some metadata in the last.
	for {
		m := page
		m.Entries = append(m.Entries[:len(m.Entries):len(m.Entries)], benchEntry(len(m.Entries)))
		b, err := enc(m)
		if err != nil || len(b) > codec.MaxDatagram-len("m.k=&") {
			break
		}
		page = m
	}
	b, err := enc(page)
	require.NoError(t, err)
	pad := codec.MaxDatagram - len(b) - len("m.k=&")
	require.GreaterOrEqual(t, pad, 0)
	page.Entries[len(page.Entries)-1].Meta = map[string]string{"k": strings.Repeat("x", pad)}
	b, err = enc(page)
	require.NoError(t, err)
	require.Len(t, b, codec.MaxDatagram)
	var got codec.Message
	require.NoError(t, pipe.Codec{}.Decode(b, &got))
	page.Extended = true
	assert.Equal(t, page, got)

	more := page
	more.Entries = append(page.Entries[:len(page.Entries):len(page.Entries)], codec.Entry{ID: "z", Health: "a:", Comms: "b:"})
	dst := []byte("prefix")
	out, err := pipe.Codec{}.Encode(dst, &more)
	require.ErrorIs(t, err, codec.ErrTooLarge)
	assert.Equal(t, "prefix", string(out))
	require.ErrorIs(t, pipe.Codec{}.Decode(append(b, "|z||a:|b:|"...), &got), codec.ErrTooLarge)
}

// A page says how many entries it holds only by its length; the decoder
// counts them before it allocates, and refuses more than codec.MaxEntries
// as malformed, whatever the codec's MaxSize.
func TestPageEntriesBounded(t *testing.T) {
	head := "g|i|||page|c=0123456789abcdef&page=0&pages=1"
	page := func(n int) []byte {
		var b strings.Builder
		b.WriteString(head)
		for i := range n {
			fmt.Fprintf(&b, "|m%d||a:|b:|", i)
		}
		return []byte(b.String())
	}
	big := pipe.Codec{MaxSize: 1 << 16}
	var m codec.Message
	require.NoError(t, big.Decode(page(codec.MaxEntries), &m))
	assert.Len(t, m.Entries, codec.MaxEntries)
	err := big.Decode(page(codec.MaxEntries+1), &m)
	require.ErrorIs(t, err, codec.ErrMalformed)
	assert.NotErrorIs(t, err, codec.ErrTooLarge)

	// Within the default size: 257 entries of empty fields.
	b := []byte(head + strings.Repeat("|", entryFieldsPerEntry*(codec.MaxEntries+1)))
	require.LessOrEqual(t, len(b), codec.MaxDatagram)
	require.ErrorIs(t, pipe.Codec{}.Decode(b, &m), codec.ErrMalformed)
	// The entries would take MaxEntries+1 Entry values, over 30 kB; the
	// refusal allocates the datagram's string and its error (the count of
	// allocations varies under the race detector, their size hardly).
	entries := int(unsafe.Sizeof(codec.Entry{})) * (codec.MaxEntries + 1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		_ = pipe.Codec{}.Decode(b, &m)
	}
	runtime.ReadMemStats(&after)
	perRun := int(after.TotalAlloc-before.TotalAlloc) / runs
	assert.Less(t, perRun, entries/4, "bytes allocated per refusal: refused before any entry is allocated (entries: %d bytes)", entries)
}

const entryFieldsPerEntry = 5

// Inputs of the new kinds that are malformed. Each is also a seed of
// FuzzDecode.
var badFrugal = []string{
	// ARGS of ann and qry: a known key with a value pir never writes
	"g|i|tcp://h:1|tcp://c:2|ann||v=x",
	"g|i|tcp://h:1|tcp://c:2|ann||v=-1",
	"g|i|tcp://h:1|tcp://c:2|ann||v=4294967296",
	"g|i|tcp://h:1|tcp://c:2|ann||h=2147483648",
	"g|i|tcp://h:1|tcp://c:2|qry||h=",
	"g|i|tcp://h:1|tcp://c:2|ann||ai=1.5",
	"g|i|tcp://h:1|tcp://c:2|ann||ai=-1",
	"g|i|||qry||ai=+1",
	// evd, obit
	"g|c|b||evd|failed=1&heard=x",
	"g|c|b||obit|since=-1",
	"g|c|b||obit|since=2147483648",
	// png, ack: the nonce is 8 lower-case hex digits, required
	"g|i|||png|",
	"g|i|||png|v=1",
	"g|i|||png|n=1234567&v=1",
	"g|i|||png|n=123456789",
	"g|i|||png|n=DEADBEEF",
	"g|i|||png|n=deadbeeg",
	"g|i|||png|n=-eadbeef",
	"g|i|||png|n=deadbeef&v=-1",
	"g|i|||ack|n=deadbeef&v=4294967296",
	"g|i|h:1||png|n=deadbeef",
	"g|i||c:2|ack|n=deadbeef",
	"g|i|t||ack|n=deadbeef",
	// offer, pull, page: the cookie is 16 lower-case hex digits, required
	"g|i|||offer|pages=1",
	"g|i|||offer|c=0123456789abcdef",
	"g|i|||offer|c=0123456789ABCDEF&pages=1",
	"g|i|||offer|c=0123456789abcde&pages=1",
	"g|i|||offer|c=0123456789abcdef0&pages=1",
	"g|i|||offer|c=0123456789abcdef&pages=65537",
	"g|i|||offer|c=0123456789abcdef&pages=-1",
	"g|i|||pull|c=0123456789abcdef",
	"g|i|||pull|page=0",
	"g|i|||pull|c=0123456789abcdef&page=65536",
	"g|i|||pull|c=0123456789abcdef&page=0x1",
	"g|i|||page|page=0&pages=1",
	"g|i|||page|c=0123456789abcdef&pages=1",
	"g|i|||page|c=0123456789abcdef&page=0",
	"g|i|||page|c=0123456789abcdef&page=0&pages=0",
	"g|i|||page|c=0123456789abcdef&page=3&pages=3",
	"g|i|||page|c=0123456789abcdef&page=0&pages=65537",
	"g|i|x||page|c=0123456789abcdef&page=0&pages=1",
	// page entries: 5 fields each, every field by the rules
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|1.2.3.4:5|tcp://h:1|tcp://c:2",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|1.2.3.4:5|tcp://h:1|tcp://c:2||x",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1||1.2.3.4:5|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m n|1.2.3.4:5|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|1.2.3.4|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|host:1|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|1.2.3.4:65536|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|[fe80::1%a b]:1|tcp://h:1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m|||tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h 1|tcp://c:2|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2%|",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|h=-1",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|h=x",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|v=4294967296",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|m.%zz=1",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|m.k=%zz",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|m.=1",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|m.k=%ff",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|m||tcp://h:1|tcp://c:2|m.%ff=1",
	"g|i|||page|c=0123456789abcdef&page=0&pages=1|a||a:|b:||m||tcp://h:1|tcp://c:2|h=x",
}

func TestFrugalMalformed(t *testing.T) {
	for _, b := range badFrugal {
		var m codec.Message
		err := pipe.Codec{}.Decode([]byte(b), &m)
		assert.ErrorIs(t, err, codec.ErrMalformed, "%q decoded as %+v", b, m)
	}
}

// Arguments a receiver does not know are ignored in every new kind, as
// are fields after the sixth of png, ack, offer and pull, so that later
// versions can add some. Who belongs to an ack only.
func TestFrugalUnknownArgsIgnored(t *testing.T) {
	c := benchCookie
	for _, tc := range []struct {
		in   string
		want codec.Message
	}{
		{"g|i|||png|n=deadbeef&v=1&who=1&zz=9&flag", codec.Message{Kind: codec.Ping, Nonce: 0xdeadbeef, Version: 1}},
		{"g|i|||png|n=deadbeef|later|fields", codec.Message{Kind: codec.Ping, Nonce: 0xdeadbeef}},
		{"g|i|||ack|later=x&n=00000001&who=1|more", codec.Message{Kind: codec.Ack, Nonce: 1, Who: true}},
		{"g|i|||ack|n=00000001&who=2", codec.Message{Kind: codec.Ack, Nonce: 1}},
		{"g|i|||offer|c=0123456789abcdef&n=zz&page=9&pages=2", codec.Message{Kind: codec.Offer, Cookie: c, Pages: 2}},
		{"g|i|||pull|c=0123456789abcdef&page=1&pages=x|x", codec.Message{Kind: codec.Pull, Cookie: c, Page: 1}},
		{"g|i|||page|c=0123456789abcdef&page=0&pages=1&v=x|m||a:|b:|q=5&p=1&mx=1&s=0&m.k",
			codec.Message{Kind: codec.Page, Cookie: c, Pages: 1, Entries: []codec.Entry{
				{ID: "m", Health: "a:", Comms: "b:", Pings: true, Meta: map[string]string{"k": ""}}}}},
		{"g|c|b||evd|failed=1&later=2&probed=3", codec.Message{Kind: codec.Evidence, Target: "b", Failed: true, Heard: -1, Probed: 3 * time.Millisecond}},
		{"g|c|b||obit|reason=x&since=4", codec.Message{Kind: codec.Obituary, Target: "b", Since: 4 * time.Millisecond, Heard: -1, Probed: -1}},
	} {
		var got codec.Message
		require.NoError(t, pipe.Codec{}.Decode([]byte(tc.in), &got), tc.in)
		want := tc.want
		want.Group, want.Extended = "g", true
		want.ID = "i"
		if want.Kind.HasTarget() {
			want.ID = "c"
		}
		assert.Equal(t, want, got, tc.in)
	}
}

// The message a page decodes into is reset: nothing of a previous page
// or ping survives in the fields of another kind.
func TestDecodeResetsNewFields(t *testing.T) {
	msgs := codectest.FrugalMessages()
	var m codec.Message
	for _, prev := range msgs {
		for _, next := range append(codectest.Messages(), msgs...) {
			b, err := pipe.Codec{}.Encode(nil, &prev)
			require.NoError(t, err)
			require.NoError(t, pipe.Codec{}.Decode(b, &m))
			b, err = pipe.Codec{}.Encode(nil, &next)
			require.NoError(t, err)
			require.NoError(t, pipe.Codec{}.Decode(b, &m))
			var fresh codec.Message
			require.NoError(t, pipe.Codec{}.Decode(b, &fresh))
			require.Equal(t, fresh, m, "%q after %v", b, prev.Kind)
		}
	}
}

// Every example message in docs/wire.md decodes, and re-encodes to the
// same bytes: the spec shows what the codec writes.
func TestWireDocExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "wire.md"))
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		ex, ok := strings.CutPrefix(line, "    ")
		if !ok || !strings.Contains(ex, "|") {
			continue
		}
		ex = strings.Fields(ex)[0]
		if strings.HasPrefix(ex, "GROUP|") || strings.HasPrefix(ex, "MID|") {
			continue // a form, not a message
		}
		n++
		var m codec.Message
		require.NoError(t, pipe.Codec{}.Decode([]byte(ex), &m), "%q", ex)
		m.Extended = strings.Count(ex, "|") != 3
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		assert.Equal(t, ex, string(b))
	}
	assert.GreaterOrEqual(t, n, 16, "examples found")
}
