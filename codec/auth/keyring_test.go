package auth_test

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec/auth"
)

func TestKeyIDOf(t *testing.T) {
	a, err := auth.KeyIDOf(keyA)
	require.NoError(t, err)
	b, err := auth.KeyIDOf(keyB)
	require.NoError(t, err)
	again, _ := auth.KeyIDOf(append([]byte(nil), keyA...))
	assert.Equal(t, a, again, "the ID depends on the key alone")
	assert.NotEqual(t, a, b)
	assert.Len(t, a.String(), 8)
	_, err = auth.KeyIDOf(keyA[:31])
	require.ErrorIs(t, err, auth.ErrShortKey)
}

func TestNewKey(t *testing.T) {
	k1, k2 := auth.NewKey(), auth.NewKey()
	assert.Len(t, k1, auth.MinKeyLen)
	assert.NotEqual(t, k1, k2)
	_, err := auth.NewKeyring(k1)
	require.NoError(t, err)
}

func TestKeyring(t *testing.T) {
	idA, _ := auth.KeyIDOf(keyA)
	idB, _ := auth.KeyIDOf(keyB)

	var r auth.Keyring // the zero value is an empty ring
	_, ok := r.Current()
	assert.False(t, ok)
	assert.Empty(t, r.IDs())

	_, err := r.Add(keyA[:31])
	require.ErrorIs(t, err, auth.ErrShortKey)

	id, err := r.Add(keyA)
	require.NoError(t, err)
	assert.Equal(t, idA, id)
	cur, ok := r.Current()
	require.True(t, ok)
	assert.Equal(t, idA, cur, "the first key becomes current")

	id, err = r.Add(keyA)
	require.NoError(t, err, "adding a key again does nothing")
	assert.Equal(t, idA, id)
	_, err = r.Add(keyB)
	require.NoError(t, err)
	assert.Equal(t, []auth.KeyID{idA, idB}, r.IDs())

	require.ErrorContains(t, r.Remove(idA), "current")
	require.ErrorIs(t, r.Remove(idA+1), auth.ErrUnknownKey)
	require.ErrorIs(t, r.SetCurrent(idA+1), auth.ErrUnknownKey)

	require.NoError(t, r.SetCurrent(idB))
	require.NoError(t, r.Remove(idA))
	assert.Equal(t, []auth.KeyID{idB}, r.IDs())
	cur, _ = r.Current()
	assert.Equal(t, idB, cur)

	_, err = auth.NewKeyring()
	require.Error(t, err)
	_, err = auth.NewKeyring(keyA, keyA[:8])
	require.ErrorIs(t, err, auth.ErrShortKey)
}

// Changes while another goroutine sends: every message is signed by a key
// the ring held, whole, at that moment. Current and IDs are two separate
// reads, so the test checks what one Encode sees instead: a receiver
// holding A and B accepts every message sent during the rotation, and
// the Keyring ends as it started.
func TestKeyringConcurrentChanges(t *testing.T) {
	r := ring(t, keyA)
	idA, _ := auth.KeyIDOf(keyA)
	clk := newClock()
	tx := newCodec(t, auth.Config{Keys: r, Now: clk.Now})
	rx := newCodec(t, auth.Config{Keys: ring(t, keyA, keyB), Now: clk.Now})
	msgs := make(chan []byte, 200)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 200 {
			id, err := r.Add(keyB)
			assert.NoError(t, err)
			assert.NoError(t, r.SetCurrent(id))
			assert.NoError(t, r.SetCurrent(idA))
			assert.NoError(t, r.Remove(id))
		}
	})
	wg.Go(func() {
		defer close(msgs)
		for range 200 {
			b, err := tx.Encode(nil, announce("4972084b-10a3-4d9d-8523-7e25b7e50141"))
			if assert.NoError(t, err) {
				msgs <- b
			}
		}
	})
	wg.Wait()
	n := 0
	for b := range msgs {
		require.NoError(t, decode(rx, b), "message %d", n)
		n++
	}
	assert.Equal(t, 200, n)
	assert.Equal(t, []auth.KeyID{idA}, r.IDs())
	cur, _ := r.Current()
	assert.Equal(t, idA, cur)
}

func TestParseKey(t *testing.T) {
	key := auth.NewKey()
	for name, text := range map[string]string{
		"hex":                hex.EncodeToString(key),
		"HEX":                strings.ToUpper(hex.EncodeToString(key)),
		"base64":             base64.StdEncoding.EncodeToString(key),
		"base64 raw":         base64.RawStdEncoding.EncodeToString(key),
		"base64url":          base64.URLEncoding.EncodeToString(key),
		"base64url raw":      base64.RawURLEncoding.EncodeToString(key),
		"surrounding spaces": "  " + hex.EncodeToString(key) + "\t\n",
	} {
		got, err := auth.ParseKey(text)
		require.NoError(t, err, name)
		assert.Equal(t, key, got, name)
	}
	for name, text := range map[string]string{
		"empty":      "  ",
		"not base64": "this is not a key!",
		"odd hex":    hex.EncodeToString(key) + "a",
	} {
		_, err := auth.ParseKey(text)
		assert.Error(t, err, name)
	}
	_, err := auth.ParseKey(hex.EncodeToString(key[:31]))
	require.ErrorIs(t, err, auth.ErrShortKey)
	_, err = auth.ParseKey(base64.StdEncoding.EncodeToString(key[:31]))
	require.ErrorIs(t, err, auth.ErrShortKey)
}

func TestParseKeyring(t *testing.T) {
	idA, _ := auth.KeyIDOf(keyA)
	idB, _ := auth.KeyIDOf(keyB)
	file := "# pir group keys: the first signs, all are accepted\n\n" +
		hex.EncodeToString(keyB) + "   # new, current\n" +
		base64.StdEncoding.EncodeToString(keyA) + "\n"
	r, err := auth.ParseKeyring(strings.NewReader(file))
	require.NoError(t, err)
	cur, _ := r.Current()
	assert.Equal(t, idB, cur)
	assert.Equal(t, []auth.KeyID{idB, idA}, r.IDs())

	_, err = auth.ParseKeyring(strings.NewReader("# nothing\n\n"))
	require.ErrorContains(t, err, "no key")
	_, err = auth.ParseKeyring(strings.NewReader(hex.EncodeToString(keyA) + "\nshort\n"))
	require.ErrorContains(t, err, "line 2")
}
