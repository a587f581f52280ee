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
	return m
}
