package pipe_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
)

const original = "abc|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80"

func TestConformance(t *testing.T) { codectest.Run(t, pipe.Codec{}) }

func TestConformanceFrugal(t *testing.T) { codectest.RunFrugal(t, pipe.Codec{}) }

func TestOriginalAnnouncementRoundTrips(t *testing.T) {
	var m codec.Message
	require.NoError(t, pipe.Codec{}.Decode([]byte(original), &m))
	assert.Equal(t, codec.Message{
		Kind:   codec.Announce,
		Group:  "abc",
		ID:     "4972084b-10a3-4d9d-8523-7e25b7e50141",
		Health: "tcp://198.18.0.2:37821",
		Comms:  "tcp://10.1.1.1:80",
	}, m)
	b, err := pipe.Codec{}.Encode(nil, &m)
	require.NoError(t, err)
	assert.Equal(t, original, string(b), "a plain announcement must be byte-identical to the original's")
}

func TestPlainAnnouncementUsesURLStringForm(t *testing.T) {
	health := &url.URL{Scheme: "tcp", Host: "[fe80::1%eth0]:37821"}
	comms := &url.URL{Scheme: "tcp", Host: "10.1.1.1:80", Path: "/a|b"}
	m := codec.Message{Kind: codec.Announce, Group: "abc", ID: "id", Health: health.String(), Comms: comms.String()}
	b, err := pipe.Codec{}.Encode(nil, &m)
	require.NoError(t, err)
	assert.Equal(t, "abc|id|tcp://[fe80::1%25eth0]:37821|tcp://10.1.1.1:80/a%7Cb", string(b))
	assert.Equal(t, 3, strings.Count(string(b), "|"))
}

// An original peer splits on '|' and accepts exactly four fields, then
// crashes if a URI does not parse or the health URI is not tcp://. Every
// message it cannot take must therefore not have four fields.
// Field 7 (ARGS) and a page's entries come after the sixth field.
func TestExtensionsNeverHaveFourFields(t *testing.T) {
	for _, m := range append(codectest.Messages(), codectest.FrugalMessages()...) {
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		fields := strings.Split(string(b), "|")
		if len(fields) != 4 {
			assert.GreaterOrEqual(t, len(fields), 6, "%q", b)
			continue
		}
		// What an original peer does with a four-field message.
		assert.Equal(t, codec.Announce, m.Kind, "%q", b)
		assert.Empty(t, m.Meta)
		h, err := url.Parse(fields[2])
		require.NoError(t, err, "%q", b)
		assert.Equal(t, "tcp", h.Scheme)
		_, err = url.Parse(fields[3])
		require.NoError(t, err, "%q", b)
	}
}

func TestWireForms(t *testing.T) {
	tests := []struct {
		name string
		m    codec.Message
		want string
	}{
		{"http health is an extension",
			codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "http://h:1/hz", Comms: "tcp://c:2"},
			"g|i|http://h:1/hz|tcp://c:2|ann|"},
		{"metadata sorted and escaped",
			codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2",
				Meta: map[string]string{"z": "1|2", "a b": "é&="}},
			"g|i|tcp://h:1|tcp://c:2|ann|a+b=%C3%A9%26%3D&z=1%7C2"},
		{"query", codec.Message{Kind: codec.Query, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2"},
			"g|i|tcp://h:1|tcp://c:2|qry|"},
		{"passive query", codec.Message{Kind: codec.Query, Group: "g", ID: "w"}, "g|w|||qry|"},
		{"goodbye drops URIs", codec.Message{Kind: codec.Goodbye, Group: "g", ID: "i", Health: "tcp://h:1"}, "g|i|||bye|"},
		{"extended asks for six fields", codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2", Extended: true},
			"g|i|tcp://h:1|tcp://c:2|ann|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := pipe.Codec{}.Encode(nil, &tt.m)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(b))
		})
	}
}

// Decode says whether the sender wrote a form only pir's extensions write:
// every six-field message, never the original's four fields.
func TestDecodeSaysExtended(t *testing.T) {
	var m codec.Message
	require.NoError(t, pipe.Codec{}.Decode([]byte(original), &m))
	assert.False(t, m.Extended, "the original's announcement")
	for _, b := range []string{
		"g|i|tcp://h:1|tcp://c:2|ann|",
		"g|i|tcp://h:1|tcp://c:2|qry|",
		"g|i|||bye|",
		"g|i|t||cfm|since=1",
		"g|i|t||evd|",
		"g|i|t||obit|",
	} {
		m = codec.Message{}
		require.NoError(t, pipe.Codec{}.Decode([]byte(b), &m), b)
		assert.True(t, m.Extended, b)
	}
	// A reused message is not left Extended by the one before.
	require.NoError(t, pipe.Codec{}.Decode([]byte(original), &m))
	assert.False(t, m.Extended)
}

func TestLaterFieldsIgnored(t *testing.T) {
	var m codec.Message
	require.NoError(t, pipe.Codec{}.Decode([]byte("g|i|tcp://h:1|tcp://c:2|ann|k=v|future|stuff"), &m))
	assert.Equal(t, map[string]string{"k": "v"}, m.Meta)
}

func TestMaxSize(t *testing.T) {
	c := pipe.Codec{MaxSize: 64}
	m := codec.Message{Kind: codec.Announce, Group: "g", ID: "i", Health: "tcp://h:1", Comms: "tcp://c:2",
		Meta: map[string]string{"k": strings.Repeat("v", 64)}}
	dst := []byte("prefix")
	out, err := c.Encode(dst, &m)
	require.ErrorIs(t, err, codec.ErrTooLarge)
	assert.Equal(t, "prefix", string(out), "a refused encoding leaves dst as it was")
	m.Meta = nil
	b, err := c.Encode(nil, &m)
	require.NoError(t, err)
	require.NoError(t, c.Decode(b, &m))
	require.ErrorIs(t, c.Decode(append(b, make([]byte, 64)...), &m), codec.ErrTooLarge)
}

func TestGarbageIsMalformed(t *testing.T) {
	for _, b := range codectest.Garbage() {
		var m codec.Message
		err := pipe.Codec{}.Decode(b, &m)
		assert.ErrorIs(t, err, codec.ErrMalformed, "%q", b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(original))
	for _, m := range codectest.Messages() {
		b, err := pipe.Codec{}.Encode(nil, &m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, m := range codectest.FrugalMessages() {
		b, err := pipe.Codec{}.Encode(nil, &m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	for _, b := range codectest.Garbage() {
		f.Add(b)
	}
	for _, b := range badFrugal {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		codectest.Check(t, pipe.Codec{}, b)
	})
}

func BenchmarkDecode(b *testing.B) {
	buf := []byte(original)
	var m codec.Message
	b.ReportAllocs()
	for b.Loop() {
		if err := (pipe.Codec{}).Decode(buf, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	m := codec.Message{Kind: codec.Announce, Group: "abc", ID: "4972084b-10a3-4d9d-8523-7e25b7e50141",
		Health: "tcp://198.18.0.2:37821", Comms: "tcp://10.1.1.1:80"}
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = (pipe.Codec{}).Encode(buf[:0], &m); err != nil {
			b.Fatal(err)
		}
	}
}

// The kinds about another member, byte for byte as docs/wire.md gives them.
func TestTargetedWire(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		m    codec.Message
		wire string
	}{
		{codec.Message{Kind: codec.Confirm, Group: "web", ID: "a", Target: "b", Since: 2750 * ms, Probe: true},
			"web|a|b||cfm|probe=1&since=2750"},
		{codec.Message{Kind: codec.Confirm, Group: "web", ID: "a", Target: "b", Since: -time.Second},
			"web|a|b||cfm|since=0"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Heard: 120 * ms, Probed: 30 * ms},
			"web|c|b||evd|heard=120&probed=30"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Heard: -1, Probed: 40 * 24 * time.Hour},
			"web|c|b||evd|probed=2147483647"},
		{codec.Message{Kind: codec.Obituary, Group: "web", ID: "c", Target: "b"},
			"web|c|b||obit|"},
	}
	for _, tc := range cases {
		b, err := pipe.Codec{}.Encode(nil, &tc.m)
		require.NoError(t, err)
		assert.Equal(t, tc.wire, string(b))
		var got codec.Message
		require.NoError(t, pipe.Codec{}.Decode(b, &got))
		assert.Equal(t, tc.m.Kind, got.Kind)
		assert.Equal(t, tc.m.Target, got.Target)
		assert.Empty(t, got.Health)
	}

	var m codec.Message
	require.NoError(t, pipe.Codec{}.Decode([]byte("web|c|b||evd|heard=5&future=x&probe=1"), &m))
	assert.Equal(t, codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Heard: 5 * ms, Probed: -1, Extended: true}, m,
		"unknown arguments are ignored, and Evidence has no probe flag")

	for _, bad := range []string{
		"web|c|b|x|evd|",                  // field 4 not empty
		"web|c||x|obit|",                  // no target
		"web|c|b c||cfm|since=1",          // target not an ID
		"web|c|b||cfm|since=-1",           // negative
		"web|c|b||evd|heard=2147483648",   // beyond 31 bits
		"web|c|b||evd|heard=1.5",          // not whole milliseconds
		"web|c|tcp://x:1|tcp://y:2|obit|", // a URI where the target goes
	} {
		require.ErrorIs(t, pipe.Codec{}.Decode([]byte(bad), &m), codec.ErrMalformed, "%q", bad)
	}
}
