// Package codectest is the conformance suite every codec.Codec must pass.
//
// A codec under test calls Run from its own tests:
//
//	func TestConformance(t *testing.T) { codectest.Run(t, pipe.Codec{}) }
//
// and reuses Check in its fuzz test, so that every input the fuzzer finds
// is held to the same contract.
package codectest

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
)

// Messages returns one valid message of every kind and shape the suite
// encodes: plain and extended announcements, queries (active and passive),
// goodbyes, metadata with awkward characters, IPv6 and zoned URIs.
func Messages() []codec.Message {
	return []codec.Message{
		{Kind: codec.Announce, Group: "web", ID: "4972084b-10a3-4d9d-8523-7e25b7e50141",
			Health: "tcp://198.18.0.2:37821", Comms: "tcp://10.1.1.1:80"},
		{Kind: codec.Announce, Group: "web", ID: "a", Health: "http://[fd42::2]:8080/healthz",
			Comms: "grpc://[fe80::1%25eth0]:9000", Meta: map[string]string{"zone": "eu|west", "v": "1.2 & up=yes"}},
		{Kind: codec.Announce, Group: "grüppe", ID: "peer-1", Health: "udp://127.0.0.1:5000",
			Comms: "tcp://127.0.0.1:80/a%7Cb?q=1"},
		{Kind: codec.Query, Group: "web", ID: "b", Health: "tcp://[::1]:1", Comms: "tcp://[::1]:2"},
		{Kind: codec.Query, Group: "web", ID: "watcher"},
		{Kind: codec.Goodbye, Group: "web", ID: "c"},
		{Kind: codec.Goodbye, Group: "web", ID: "c", Meta: map[string]string{"reason": "shutdown"}},
		{Kind: codec.Confirm, Group: "web", ID: "d", Target: "4972084b-10a3-4d9d-8523-7e25b7e50141",
			Since: 2750 * time.Millisecond, Probe: true, Heard: -1, Probed: -1},
		{Kind: codec.Confirm, Group: "web", ID: "d", Target: "e", Heard: -1, Probed: -1},
		{Kind: codec.Evidence, Group: "web", ID: "e", Target: "f", Heard: 120 * time.Millisecond, Probed: 0},
		{Kind: codec.Evidence, Group: "web", ID: "e", Target: "f", Heard: -1, Probed: 1830 * time.Millisecond},
		{Kind: codec.Evidence, Group: "web", ID: "e", Target: "unknown", Heard: -1, Probed: -1},
		{Kind: codec.Obituary, Group: "web", ID: "g", Target: "h", Heard: -1, Probed: -1},
	}
}

// FrugalMessages returns one valid message of every kind and field that
// the ping protocol and the state transfer of docs/design/frugal.md add:
// announcements and queries with the arguments Pings, Version,
// HealthFails and Interval (whole seconds), an Evidence with Failed, an
// Obituary with Since, and the kinds Ping, Ack, Offer, Pull and Page (with
// entries of every shape). A codec that carries them passes RunFrugal; one
// for a transport that never carries pings (transport/mdns) need not.
func FrugalMessages() []codec.Message {
	const id = "4972084b-10a3-4d9d-8523-7e25b7e50141"
	cookie := [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	return []codec.Message{
		{Kind: codec.Announce, Group: "web", ID: id, Health: "tcp://198.18.0.2:37821", Comms: "tcp://10.1.1.1:80",
			Pings: true, Version: 7, HealthFails: 2, Interval: 100 * time.Second},
		{Kind: codec.Announce, Group: "web", ID: "a", Health: "http://[fd42::2]:8080/healthz", Comms: "tcp://[fd42::2]:80",
			Meta: map[string]string{"zone": "eu|west", "v": "1.2 & up=yes"}, Pings: true, Version: 1<<32 - 1},
		{Kind: codec.Query, Group: "web", ID: "b", Health: "tcp://[::1]:1", Comms: "tcp://[::1]:2", Pings: true, Version: 1},
		{Kind: codec.Query, Group: "web", ID: "watcher", Pings: true},
		{Kind: codec.Evidence, Group: "web", ID: "e", Target: "f", Failed: true, Heard: 120 * time.Millisecond, Probed: -1},
		{Kind: codec.Evidence, Group: "web", ID: "e", Target: "f", Failed: true, Heard: -1, Probed: -1},
		{Kind: codec.Obituary, Group: "web", ID: "g", Target: "h", Since: 1750 * time.Millisecond, Heard: -1, Probed: -1},
		{Kind: codec.Ping, Group: "web", ID: id, Nonce: 0xdeadbeef, Version: 3},
		{Kind: codec.Ping, Group: "web", ID: "p"},
		{Kind: codec.Ack, Group: "web", ID: id, Nonce: 0x0000cafe, Version: 4},
		{Kind: codec.Ack, Group: "web", ID: "q", Nonce: 1<<32 - 1, Who: true},
		{Kind: codec.Offer, Group: "web", ID: id, Cookie: cookie, Pages: 3},
		{Kind: codec.Pull, Group: "web", ID: "x", Cookie: cookie, Page: 2},
		{Kind: codec.Page, Group: "web", ID: id, Cookie: cookie, Page: 0, Pages: 1},
		{Kind: codec.Page, Group: "web", ID: id, Cookie: cookie, Page: 2, Pages: 3, Entries: []codec.Entry{
			{ID: id, Health: "tcp://198.18.0.2:37821", Comms: "tcp://10.1.1.1:80", Version: 7, Pings: true, Extended: true},
			{ID: "a", Addr: netip.MustParseAddrPort("198.18.0.3:41234"), Health: "http://198.18.0.3:8080/healthz",
				Comms: "grpc://[fe80::1%25eth0]:9000", Meta: map[string]string{"zone": "eu|west", "a b": "é&=", "m.x": "1"},
				Version: 12, HealthFails: 1, Pings: true, Extended: true, Suspect: true},
			{ID: "original", Addr: netip.MustParseAddrPort("[fe80::1%eth0]:37821"), Health: "tcp://[fe80::1%25eth0]:37821",
				Comms: "tcp://10.1.1.1:80"},
			{ID: "mapped", Addr: netip.MustParseAddrPort("[::ffff:198.18.0.4]:1"), Health: "udp://198.18.0.4:5000",
				Comms: "tcp://127.0.0.1:80/a%7Cb?q=1", Extended: true},
		}},
	}
}

// Run checks c against the codec contract.
func Run(t *testing.T, c codec.Codec) {
	t.Run("RoundTrip", func(t *testing.T) {
		for _, m := range Messages() {
			b, err := c.Encode(nil, &m)
			require.NoError(t, err, "encode %+v", m)
			var got codec.Message
			require.NoError(t, c.Decode(b, &got), "decode %q", b)
			assert.Equal(t, normal(m), normal(got), "round trip of %q", b)
		}
	})
	t.Run("EncodeAppends", func(t *testing.T) {
		m := Messages()[0]
		prefix := []byte("keep")
		b, err := c.Encode(prefix, &m)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(b), "keep"))
		var got codec.Message
		require.NoError(t, c.Decode(b[len(prefix):], &got))
		assert.Equal(t, m.ID, got.ID)
	})
	t.Run("DecodeDoesNotKeepBuffer", func(t *testing.T) {
		m := Messages()[1]
		b, err := c.Encode(nil, &m)
		require.NoError(t, err)
		var got codec.Message
		require.NoError(t, c.Decode(b, &got))
		for i := range b {
			b[i] = 'X'
		}
		assert.Equal(t, normal(m), normal(got))
	})
	t.Run("InvalidRefused", func(t *testing.T) {
		base := Messages()[0]
		bad := map[string]func(m *codec.Message){
			"empty group":   func(m *codec.Message) { m.Group = "" },
			"empty id":      func(m *codec.Message) { m.ID = "" },
			"pipe in id":    func(m *codec.Message) { m.ID = "a|b" },
			"pipe group":    func(m *codec.Message) { m.Group = "a|b" },
			"no health":     func(m *codec.Message) { m.Health = "" },
			"no kind":       func(m *codec.Message) { m.Kind = 0 },
			"empty metakey": func(m *codec.Message) { m.Meta = map[string]string{"": "x"} },
		}
		for name, mutate := range bad {
			m := base
			mutate(&m)
			b, err := c.Encode(nil, &m)
			assert.ErrorIs(t, err, codec.ErrInvalid, "%s: encoded as %q", name, b)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		m := Messages()[0]
		m.Meta = map[string]string{"blob": strings.Repeat("x", 70000)}
		_, err := c.Encode(nil, &m)
		assert.ErrorIs(t, err, codec.ErrTooLarge)
		var got codec.Message
		assert.Error(t, c.Decode([]byte(strings.Repeat("y", 70000)), &got))
	})
	t.Run("Garbage", func(t *testing.T) {
		for _, b := range Garbage() {
			var got codec.Message
			err := c.Decode(b, &got)
			assert.Error(t, err, "decoded %q as %+v", b, got)
		}
	})
}

// RunFrugal checks c against the contract for FrugalMessages: each round
// trips; the limits on pages (codec.MaxPages, Page < Pages,
// codec.MaxEntries) and on counts are refused with codec.ErrInvalid or
// codec.ErrTooLarge; a decoded page keeps nothing of the buffer.
func RunFrugal(t *testing.T, c codec.Codec) {
	t.Run("RoundTrip", func(t *testing.T) {
		for _, m := range FrugalMessages() {
			b, err := c.Encode(nil, &m)
			require.NoError(t, err, "encode %+v", m)
			var got codec.Message
			require.NoError(t, c.Decode(b, &got), "decode %q", b)
			assert.Equal(t, normal(m), normal(got), "round trip of %q", b)
		}
	})
	t.Run("DecodeDoesNotKeepBuffer", func(t *testing.T) {
		msgs := FrugalMessages()
		m := msgs[len(msgs)-1]
		b, err := c.Encode(nil, &m)
		require.NoError(t, err)
		var got codec.Message
		require.NoError(t, c.Decode(b, &got))
		for i := range b {
			b[i] = 'X'
		}
		assert.Equal(t, normal(m), normal(got))
	})
	t.Run("InvalidRefused", func(t *testing.T) {
		msgs := FrugalMessages()
		page := msgs[len(msgs)-1]
		entries := func(n int) []codec.Entry {
			es := make([]codec.Entry, n)
			for i := range es {
				es[i] = codec.Entry{ID: fmt.Sprint("m", i), Health: "tcp://h:1", Comms: "tcp://c:2"}
			}
			return es
		}
		bad := map[string]struct {
			m    codec.Message
			want error
		}{
			"page of none":          {codec.Message{Kind: codec.Page, Group: "g", ID: "i", Page: 0, Pages: 0}, codec.ErrInvalid},
			"page past the end":     {codec.Message{Kind: codec.Page, Group: "g", ID: "i", Page: 3, Pages: 3}, codec.ErrInvalid},
			"negative page":         {codec.Message{Kind: codec.Page, Group: "g", ID: "i", Page: -1, Pages: 3}, codec.ErrInvalid},
			"too many pages":        {codec.Message{Kind: codec.Page, Group: "g", ID: "i", Page: 0, Pages: codec.MaxPages + 1}, codec.ErrInvalid},
			"offer too many pages":  {codec.Message{Kind: codec.Offer, Group: "g", ID: "i", Pages: codec.MaxPages + 1}, codec.ErrInvalid},
			"offer negative pages":  {codec.Message{Kind: codec.Offer, Group: "g", ID: "i", Pages: -1}, codec.ErrInvalid},
			"pull past the last":    {codec.Message{Kind: codec.Pull, Group: "g", ID: "i", Page: codec.MaxPages}, codec.ErrInvalid},
			"pull negative":         {codec.Message{Kind: codec.Pull, Group: "g", ID: "i", Page: -1}, codec.ErrInvalid},
			"too many entries":      {codec.Message{Kind: codec.Page, Group: "g", ID: "i", Pages: 1, Entries: entries(codec.MaxEntries + 1)}, codec.ErrTooLarge},
			"entry without id":      {withEntry(page, func(e *codec.Entry) { e.ID = "" }), codec.ErrInvalid},
			"entry pipe in id":      {withEntry(page, func(e *codec.Entry) { e.ID = "a|b" }), codec.ErrInvalid},
			"entry without health":  {withEntry(page, func(e *codec.Entry) { e.Health = "" }), codec.ErrInvalid},
			"entry bad comms":       {withEntry(page, func(e *codec.Entry) { e.Comms = "no scheme" }), codec.ErrInvalid},
			"entry negative h":      {withEntry(page, func(e *codec.Entry) { e.HealthFails = -1 }), codec.ErrInvalid},
			"entry empty metakey":   {withEntry(page, func(e *codec.Entry) { e.Meta = map[string]string{"": "x"} }), codec.ErrInvalid},
			"negative HealthFails":  {withArgs(msgs[0], func(m *codec.Message) { m.HealthFails = -1 }), codec.ErrInvalid},
			"HealthFails past 2^31": {withArgs(msgs[0], func(m *codec.Message) { m.HealthFails = 1 << 31 }), codec.ErrInvalid},
		}
		for name, tc := range bad {
			b, err := c.Encode(nil, &tc.m)
			assert.ErrorIs(t, err, tc.want, "%s: encoded as %q", name, b)
		}
	})
}

// withEntry returns a copy of the page m whose first entry mutate changed.
func withEntry(m codec.Message, mutate func(e *codec.Entry)) codec.Message {
	m.Entries = append([]codec.Entry(nil), m.Entries...)
	mutate(&m.Entries[0])
	return m
}

func withArgs(m codec.Message, mutate func(m *codec.Message)) codec.Message {
	mutate(&m)
	return m
}

// Garbage returns inputs that no codec may accept as a message.
func Garbage() [][]byte {
	return [][]byte{
		nil,
		{},
		[]byte("|||"),
		[]byte("abc|x|%zz|y"), // crashes the original pir
		[]byte("web|id|tcp://a:1"),
		[]byte("web|id|tcp://a:1|tcp://b:2|ann"),
		[]byte("web||tcp://a:1|tcp://b:2"),
		[]byte("|id|tcp://a:1|tcp://b:2"),
		[]byte("web|id|tcp://a:1|tcp://b:2|zzz|"),
		[]byte("web|id|tcp://a:1|tcp://b:2|ann|k"),
		[]byte("web|id|tcp://a:1|tcp://b:2|ann|=v"),
		[]byte("web|i\x00d|tcp://a:1|tcp://b:2"),
		[]byte("w\xffb|id|tcp://a:1|tcp://b:2"),
		[]byte("web|id|tcp://a b:1|tcp://b:2"),
		[]byte("web|id|://a:1|tcp://b:2"),
		[]byte("web|id|1tcp://a:1|tcp://b:2"),
		[]byte("web|id|tcp://a:1%|tcp://b:2"),
		[]byte("web|id||"),
	}
}

// Check holds one decoded input to the contract, for fuzz tests: if b
// decodes, the message re-encodes, and the re-encoding decodes to the same
// message (round trips are stable). Decode must not panic, which the fuzzer
// sees for itself.
func Check(t *testing.T, c codec.Codec, b []byte) {
	var m codec.Message
	if err := c.Decode(b, &m); err != nil {
		if !errors.Is(err, codec.ErrMalformed) && !errors.Is(err, codec.ErrTooLarge) {
			// Codecs may add their own reasons; they must still be errors
			// that say what failed.
			require.NotEmpty(t, err.Error())
		}
		return
	}
	enc, err := c.Encode(nil, &m)
	require.NoError(t, err, "decoded %q to %+v, which does not encode", b, m)
	var again codec.Message
	require.NoError(t, c.Decode(enc, &again), "re-encoding %q does not decode", enc)
	require.Equal(t, normal(m), normal(again), "%q -> %q", b, enc)
}

// normal makes an empty metadata map and a nil one compare equal, and
// ignores Extended, which says how a message was written, not what it says.
func normal(m codec.Message) codec.Message {
	if len(m.Meta) == 0 {
		m.Meta = nil
	}
	m.Extended = false
	if len(m.Entries) == 0 {
		m.Entries = nil
	} else {
		m.Entries = append([]codec.Entry(nil), m.Entries...)
		for i := range m.Entries {
			if len(m.Entries[i].Meta) == 0 {
				m.Entries[i].Meta = nil
			}
		}
	}
	return m
}
