package auth

import (
	"bufio"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// MinKeyLen is the shortest key a Keyring accepts, in bytes. A key must be
// random: 32 bytes from a cryptographic generator (NewKey), not a
// passphrase.
const MinKeyLen = 32

// HKDF labels: one secret yields a MAC key and a public key ID that reveal
// nothing of each other or of the secret.
const (
	infoMACKey = "pir auth v1 mac key"
	infoKeyID  = "pir auth v1 key id"
)

// KeyID names a key on the wire. It is derived from the key itself (the
// first 4 bytes of HKDF-SHA256 with a fixed label), so every member holding
// the same key computes the same ID and operators never assign IDs by hand.
// It reveals nothing useful about the key.
type KeyID uint32

// String formats the ID as 8 lower-case hex digits, as logs and errors
// show it.
func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// KeyIDOf returns the ID a Keyring gives key. It reports ErrShortKey for a
// key shorter than MinKeyLen.
func KeyIDOf(key []byte) (KeyID, error) {
	if len(key) < MinKeyLen {
		return 0, fmt.Errorf("%w: %d bytes", ErrShortKey, len(key))
	}
	b, err := hkdf.Key(sha256.New, key, nil, infoKeyID, 4)
	if err != nil {
		return 0, fmt.Errorf("auth: deriving key ID: %w", err)
	}
	return KeyID(binary.BigEndian.Uint32(b)), nil
}

// NewKey returns a new random key of MinKeyLen bytes.
func NewKey() []byte {
	k := make([]byte, MinKeyLen)
	_, _ = rand.Read(k) // crypto/rand.Read never fails; it crashes the program first
	return k
}

// key is one key of a ring: its ID and its derived MAC key, with a pool of
// keyed HMAC states so that tagging a message does not allocate. The secret
// itself is not kept.
type key struct {
	id     KeyID
	macKey []byte
	macs   sync.Pool // of hash.Hash, keyed with macKey
}

func newKey(secret []byte) (*key, error) {
	id, err := KeyIDOf(secret)
	if err != nil {
		return nil, err
	}
	mk, err := hkdf.Key(sha256.New, secret, nil, infoMACKey, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("auth: deriving MAC key: %w", err)
	}
	k := &key{id: id, macKey: mk}
	k.macs.New = func() any { return hmac.New(sha256.New, mk) }
	return k, nil
}

// appendMAC appends the full HMAC-SHA256 of Prefix || b to dst.
func (k *key) appendMAC(dst, b []byte) []byte {
	h := k.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(prefix)
	h.Write(b)
	dst = h.Sum(dst)
	k.macs.Put(h)
	return dst
}

// prefix is Prefix as bytes, made once: converting at each call would
// allocate.
var prefix = []byte(Prefix)

// ring is an immutable snapshot of a Keyring. A ring holds a handful of
// keys, so a slice scan beats a map.
type ring struct {
	current *key
	keys    []*key
}

func (r *ring) lookup(id KeyID) *key {
	if r == nil {
		return nil
	}
	for _, k := range r.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

// Keyring holds a group's keys: every key it holds is accepted on receipt,
// and the current one signs what is sent. Rotating keys while the group
// runs takes three steps, each applied on every member before the next:
// Add the new key (members accept both, still send with the old one);
// SetCurrent to the new key; Remove the old one.
//
// A Keyring is safe for concurrent use: Codecs read it on every message
// without locking, and changes take effect for the next message. The zero
// value is an empty Keyring; the first key added becomes current.
type Keyring struct {
	mu    sync.Mutex // serialises changes
	state atomic.Pointer[ring]
}

// NewKeyring returns a Keyring holding keys, the first of them current.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: NewKeyring: no keys")
	}
	r := new(Keyring)
	for i, k := range keys {
		if _, err := r.Add(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return r, nil
}

// Add adds key, accepted on receipt from now on, and returns its ID. The
// first key added becomes current; later ones wait for SetCurrent. Adding a
// key the ring holds already does nothing. Add keeps only what it derives
// from the key, not the key itself, so the caller may wipe it afterwards.
func (r *Keyring) Add(secret []byte) (KeyID, error) {
	k, err := newKey(secret)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	if have := old.lookup(k.id); have != nil {
		if !hmac.Equal(have.macKey, k.macKey) {
			return 0, fmt.Errorf("auth: key ID %s is already taken by another key; generate a new key", k.id)
		}
		return k.id, nil
	}
	next := &ring{keys: []*key{k}, current: k}
	if old != nil {
		next.keys = append(slices.Clip(old.keys), k)
		next.current = old.current
	}
	r.state.Store(next)
	return k.id, nil
}

// Remove stops accepting the key id. It refuses to remove the current key
// (SetCurrent another first) and reports ErrUnknownKey for a key the ring
// does not hold.
func (r *Keyring) Remove(id KeyID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	if old.lookup(id) == nil {
		return &UnknownKeyError{ID: id}
	}
	if old.current.id == id {
		return fmt.Errorf("auth: key %s is current; make another key current before removing it", id)
	}
	next := &ring{current: old.current}
	for _, k := range old.keys {
		if k.id != id {
			next.keys = append(next.keys, k)
		}
	}
	r.state.Store(next)
	return nil
}

// SetCurrent makes the key id the one that signs what is sent. It reports
// ErrUnknownKey for a key the ring does not hold.
func (r *Keyring) SetCurrent(id KeyID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	k := old.lookup(id)
	if k == nil {
		return &UnknownKeyError{ID: id}
	}
	r.state.Store(&ring{current: k, keys: old.keys})
	return nil
}

// Current returns the ID of the current key; false when the ring is empty.
func (r *Keyring) Current() (KeyID, bool) {
	s := r.state.Load()
	if s == nil {
		return 0, false
	}
	return s.current.id, true
}

// IDs returns the IDs of the keys the ring holds, in the order they were
// added.
func (r *Keyring) IDs() []KeyID {
	s := r.state.Load()
	if s == nil {
		return nil
	}
	ids := make([]KeyID, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.id
	}
	return ids
}

// ParseKey decodes a key written as text: hex (only hex digits, an even
// number of them), else base64 in the standard or URL alphabet, with or
// without padding. Surrounding white space is ignored. A key shorter than
// MinKeyLen bytes is refused with ErrShortKey.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("auth: empty key")
	}
	var k []byte
	var err error
	if len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == "" {
		k, err = hex.DecodeString(s)
	} else {
		r := strings.NewReplacer("-", "+", "_", "/")
		k, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(r.Replace(s), "="))
	}
	if err != nil {
		return nil, fmt.Errorf("auth: key is neither hex nor base64: %w", err)
	}
	if len(k) < MinKeyLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrShortKey, len(k))
	}
	return k, nil
}

// ParseKeyring reads a key file: one key per line as ParseKey takes it,
// the first one current and the others accepted too (keys being rotated).
// Blank lines and text after '#' are ignored. A file with no key is an
// error.
func ParseKeyring(r io.Reader) (*Keyring, error) {
	var keys [][]byte
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(text) == "" {
			continue
		}
		k, err := ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no key found")
	}
	return NewKeyring(keys...)
}
