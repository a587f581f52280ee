package discovery_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
)

func authCodec(t *testing.T, key []byte) *auth.Codec {
	t.Helper()
	ring, err := auth.NewKeyring(key)
	require.NoError(t, err)
	c, err := auth.New(pipe.Codec{}, auth.Config{Keys: ring})
	require.NoError(t, err)
	return c
}

// Members sharing a key see each other; one with another key, or none, is
// kept out, and each rejection is counted by its reason.
func TestAuthenticatedGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		key, other := auth.NewKey(), auth.NewKey()
		a, _ := l.join("a", func(c *discovery.Config) { c.Codec = authCodec(t, key) })
		b, _ := l.join("b", func(c *discovery.Config) { c.Codec = authCodec(t, key) })
		l.join("intruder", func(c *discovery.Config) { c.Codec = authCodec(t, other) })
		l.join("plain")
		synctest.Wait()
		assert.Equal(t, []string{"b"}, ids(a.Members()))
		assert.Equal(t, []string{"a"}, ids(b.Members()))

		raw := l.lan.Join()
		t.Cleanup(func() { raw.Close() })
		// A forged goodbye for b; a genuine datagram, a copy of it at once
		// (as by IPv6 after IPv4), and a replay of it two seconds later.
		require.NoError(t, raw.Send([]byte("pa1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")))
		genuine, err := authCodec(t, key).Encode(nil, announce("web", "ghost"))
		require.NoError(t, err)
		require.NoError(t, raw.Send(genuine))
		require.NoError(t, raw.Send(genuine))
		synctest.Wait()
		assert.Equal(t, uint64(1), a.Stats().Dropped[discovery.DropDuplicate], "the copy")
		advance(2 * time.Second)
		require.NoError(t, raw.Send(genuine))
		synctest.Wait()

		s := a.Stats()
		assert.Positive(t, s.Dropped[discovery.DropUnknownKey], "the intruder's key")
		assert.Positive(t, s.Dropped[discovery.DropUnauthenticated], "the plain member")
		assert.Positive(t, s.Dropped[discovery.DropBadTag]+s.Dropped[discovery.DropUnknownKey], "the forgery")
		assert.Equal(t, uint64(1), s.Dropped[discovery.DropReplay], "the replay")
		assert.Equal(t, uint64(1), s.Dropped[discovery.DropDuplicate], "the copy, not counted again")
		assert.Zero(t, s.Dropped[discovery.DropMalformed])
		_, ok := a.Member("b")
		assert.True(t, ok)
	})
}

// An authenticated group stays together: every announcement is encoded
// anew, so none is taken for a replay of the one before, and nobody
// expires.
func TestAuthenticatedGroupStaysTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		key := auth.NewKey()
		a, _ := l.join("a", func(c *discovery.Config) { c.Codec = authCodec(t, key) })
		b, _ := l.join("b", func(c *discovery.Config) { c.Codec = authCodec(t, key) })
		ra := record(a)
		advance(30 * time.Second) // three times ExpireAfter
		assert.Equal(t, []string{"b"}, ids(a.Members()))
		assert.Equal(t, []string{"a"}, ids(b.Members()))
		assert.Empty(t, ra.of(discovery.Left, "b"))
		s := a.Stats()
		assert.Zero(t, s.Dropped[discovery.DropReplay]+s.Dropped[discovery.DropDuplicate], "no announcement of b was a copy")
		assert.Greater(t, s.Decoded, uint64(25), "b's announcements kept coming")

		// b's goodbye goes twice, each encoded anew: a removes b, and
		// takes neither copy for a replay.
		require.NoError(t, b.Leave(t.Context()))
		synctest.Wait()
		left := ra.of(discovery.Left, "b")
		require.Len(t, left, 1)
		assert.Equal(t, discovery.Goodbye, left[0].Reason)
		assert.Zero(t, a.Stats().Dropped[discovery.DropReplay]+a.Stats().Dropped[discovery.DropDuplicate])
	})
}
