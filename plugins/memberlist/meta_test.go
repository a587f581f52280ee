package memberlist

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []nodeMeta{
		{relayPort: 1},
		{relayPort: 7947, site: "site-a"},
		{relayPort: 65535, site: "198.18.0.0/24"},
		{relayPort: 40000, site: "Zürich ☃"},
		{relayPort: 2, site: strings.Repeat("x", MaxSite)},
	} {
		b := appendMeta(nil, m)
		got, err := parseMeta(b)
		require.NoError(t, err, "%+v", m)
		assert.Equal(t, m, got)
	}
	assert.Equal(t, []byte{1, 0x1f, 0x4b, 'a'}, appendMeta(nil, nodeMeta{relayPort: 8011, site: "a"}), "the layout docs/plugins/memberlist.md gives")
}

func TestMetaErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":         nil,
		"short":         {1, 0},
		"version 0":     {0, 0x1f, 0x4b},
		"version 2":     {2, 0x1f, 0x4b, 'a'},
		"port 0":        {1, 0, 0, 'a'},
		"bad UTF-8":     {1, 0x1f, 0x4b, 0xff},
		"control":       {1, 0x1f, 0x4b, 'a', 0},
		"newline":       {1, 0x1f, 0x4b, '\n'},
		"site too long": append([]byte{1, 0x1f, 0x4b}, bytes.Repeat([]byte{'x'}, MaxSite+1)...),
	} {
		_, err := parseMeta(b)
		assert.ErrorIs(t, err, errMeta, name)
	}
}

// FuzzParseMeta: node metadata comes from the network. Whatever parses
// encodes back to the same bytes; nothing panics.
func FuzzParseMeta(f *testing.F) {
	f.Add(appendMeta(nil, nodeMeta{relayPort: 7947, site: "site-a"}))
	f.Add(appendMeta(nil, nodeMeta{relayPort: 1}))
	f.Add(appendMeta(nil, nodeMeta{relayPort: 65535, site: "Zürich ☃"}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{2, 0x1f, 0x4b, 'a'})
	f.Add([]byte{1, 0x1f, 0x4b, 0xff, 0xfe})
	f.Add([]byte{1, 0x1f, 0x4b, 'a', 0, 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMeta(b)
		if err != nil {
			return
		}
		if m.relayPort == 0 || len(m.site) > MaxSite {
			t.Fatalf("parseMeta(%q) = %+v: out of range", b, m)
		}
		if again := appendMeta(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("parseMeta(%q) = %+v, which encodes as %q", b, m, again)
		}
	})
}
