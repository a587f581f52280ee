package etcd

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
)

const gp = "/pir/web/"

func TestKeys(t *testing.T) {
	assert.Equal(t, "/pir/web/a", memberKey("/pir", "web", "a"))
	assert.Equal(t, "/pir/a%2Fb/c%2Fd", memberKey("/pir", "a/b", "c/d"), "a group or id with '/' stays one segment")
	assert.Equal(t, "/web/", groupPrefix(normPrefix("/"), "web"), "prefix / is the root")
	assert.Equal(t, "/x/web/", groupPrefix(normPrefix("/x///"), "web"))
	assert.Equal(t, DefaultPrefix+"/web/", groupPrefix(normPrefix(""), "web"))
	id, err := idFromKey(gp, memberKey("/pir", "web", "c/d é"))
	require.NoError(t, err)
	assert.Equal(t, "c/d é", id)
	for _, k := range []string{"/pir/web/", "/pir/web/a/b", "/pir/webx/a", "/pir/web/%zz"} {
		_, err := idFromKey(gp, k)
		assert.ErrorIs(t, err, errBadRecord, k)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	p := discovery.Peer{
		ID:        "a",
		HealthURI: &url.URL{Scheme: "tcp", Host: "198.18.0.1:7"},
		CommsURI:  &url.URL{Scheme: "http", Host: "198.18.0.1:80", Path: "/api"},
		Meta:      map[string]string{"zone": "b"},
	}
	b, err := recordOf("web", p, netip.MustParseAddrPort("198.18.0.1:7946"), 1).encode()
	require.NoError(t, err)
	r, err := decodeRecord(gp, "web", "/pir/web/a", b)
	require.NoError(t, err)
	got := r.peer()
	assert.Equal(t, p.HealthURI.String(), got.HealthURI.String())
	assert.Equal(t, p.CommsURI.String(), got.CommsURI.String())
	assert.Equal(t, p.Meta, got.Meta)
	assert.Equal(t, "198.18.0.1:7946", r.addr().String())
	assert.Equal(t, 1.0, r.health())
	assert.Empty(t, r.Left)
}

func TestDecodeRecordRefuses(t *testing.T) {
	good := `{"id":"a","group":"web","health_uri":"tcp://127.0.0.1:1"`
	for name, tc := range map[string]struct{ key, value string }{
		"not json":        {"/pir/web/a", "nope"},
		"not an object":   {"/pir/web/a", `["a"]`},
		"trailing data":   {"/pir/web/a", good + `}{}`},
		"no id":           {"/pir/web/a", `{"group":"web","health_uri":"tcp://127.0.0.1:1"}`},
		"id not key's":    {"/pir/web/b", good + `}`},
		"other group":     {"/pir/web/a", `{"id":"a","group":"db","health_uri":"tcp://127.0.0.1:1"}`},
		"no health uri":   {"/pir/web/a", `{"id":"a","group":"web"}`},
		"relative uri":    {"/pir/web/a", `{"id":"a","group":"web","health_uri":"127.0.0.1:1"}`},
		"bad comms":       {"/pir/web/a", good + `,"comms_uri":"::"}`},
		"empty meta key":  {"/pir/web/a", good + `,"meta":{"":"x"}}`},
		"bad addr":        {"/pir/web/a", good + `,"addr":"host:1"}`},
		"health > 1":      {"/pir/web/a", good + `,"health":1.5}`},
		"health < 0":      {"/pir/web/a", good + `,"health":-0.1}`},
		"unknown left":    {"/pir/web/a", good + `,"left":"maybe"}`},
		"wrong types":     {"/pir/web/a", `{"id":1,"group":"web","health_uri":"tcp://127.0.0.1:1"}`},
		"too big":         {"/pir/web/a", good + `,"meta":{"k":"` + strings.Repeat("x", MaxValueSize) + `"}}`},
		"key not members": {"/pir/web/a/b", good + `}`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeRecord(gp, "web", tc.key, []byte(tc.value))
			require.ErrorIs(t, err, errBadRecord)
		})
	}
	r, err := decodeRecord(gp, "web", "/pir/web/a", []byte(good+`,"left":"failed","future":{"field":1}}`))
	require.NoError(t, err, "unknown fields are for later versions, not errors")
	assert.Equal(t, discovery.Failed, r.reason())
}

// FuzzDecodeRecord: values under a group's prefix come from whoever can
// write to etcd. Decoding never panics, and what decodes encodes back to a
// value that decodes to the same member.
func FuzzDecodeRecord(f *testing.F) {
	p := discovery.Peer{ID: "a", HealthURI: &url.URL{Scheme: "tcp", Host: "127.0.0.1:1"}, Meta: map[string]string{"k": "v"}}
	good, _ := recordOf("web", p, netip.MustParseAddrPort("[fe80::1%eth0]:7946"), 1).encode()
	note := recordOf("web", p, netip.AddrPort{}, 0)
	note.Left = leftGoodbye
	noteB, _ := note.encode()
	for _, seed := range []struct{ id, value string }{
		{"a", string(good)},
		{"a", string(noteB)},
		{"a", `{"id":"a","group":"web","health_uri":"http://[::1]:80/healthz","comms_uri":"tcp://x:1","health":0.5}`},
		{"a", `{"id":"a","group":"web","health_uri":"tcp://127.0.0.1:1","health":1e309}`},
		{"a%2Fb", `{"id":"a/b","group":"web","health_uri":"tcp://127.0.0.1:1"}`},
		{"a", `{"id":"a","id":"b"}`},
		{"a", "\xff\xfe"},
		{"a", `{"id":"a","group":"web","health_uri":"tcp://127.0.0.1:1","meta":{"\u0000":"\ud800"}}`},
		{"", ""},
		{"a/b", "{}"},
	} {
		f.Add(seed.id, []byte(seed.value))
	}
	f.Fuzz(func(t *testing.T, keyID string, value []byte) {
		key := gp + keyID
		r, err := decodeRecord(gp, "web", key, value)
		if err != nil {
			require.ErrorIs(t, err, errBadRecord)
			return
		}
		m := r.peer()
		require.NotNil(t, m.HealthURI)
		require.NotNil(t, m.CommsURI)
		h := r.health()
		require.True(t, h >= 0 && h <= 1)
		again, err := r.encode()
		require.NoError(t, err)
		r2, err := decodeRecord(gp, "web", key, again)
		if len(again) > MaxValueSize {
			return // re-encoding may escape more (e.g. '<' as \u003c)
		}
		require.NoError(t, err, "%s re-encoded as %s", value, again)
		assert.Equal(t, r.ID, r2.ID)
		assert.Equal(t, r.HealthURI, r2.HealthURI)
		assert.Equal(t, r.Meta, r2.Meta)
		assert.Equal(t, r.Left, r2.Left)
		assert.Equal(t, h, r2.health())
	})
}

func TestWithHost(t *testing.T) {
	p := discovery.Peer{ID: "a", HealthURI: &url.URL{Scheme: "tcp", Host: "0.0.0.0:7"}, CommsURI: &url.URL{Scheme: "tcp", Host: "10.0.0.1:80"}}
	got := withHost(p, netip.MustParseAddrPort("198.18.0.4:9999"))
	assert.Equal(t, "tcp://198.18.0.4:7", got.HealthURI.String())
	assert.Equal(t, "tcp://10.0.0.1:80", got.CommsURI.String(), "a concrete host is kept")
	assert.Equal(t, "tcp://0.0.0.0:7", p.HealthURI.String(), "the caller's Peer is not changed")
	assert.Equal(t, p, withHost(p, netip.AddrPort{}))
	assert.Equal(t, "tcp://127.0.0.1:7", selfTarget(p.HealthURI).String())
	assert.Equal(t, "tcp://[::1]:7", selfTarget(&url.URL{Scheme: "tcp", Host: "[::]:7"}).String())
}
