package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pirlan/pir/codec"
)

// Prefix starts every envelope. The digit is the envelope's version. It is
// covered by the tag.
const Prefix = "pa1:"

// Sizes of the envelope's binary form, before base64: a header, the inner
// codec's bytes, a tag. docs/security.md gives the layout byte by byte.
const (
	headerLen = 4 + 8 + 8 + 8 // key ID, sender, sequence number, time
	// TagLen is the length of the tag, in bytes: HMAC-SHA256 truncated to
	// 128 bits.
	TagLen = 16
	// Overhead is what the envelope adds to the inner message before
	// base64, in bytes.
	Overhead = headerLen + TagLen
)

var enc = base64.RawURLEncoding.Strict()

// maxPooled is the largest scratch buffer kept for reuse, in bytes.
const maxPooled = 64 << 10

// Errors Decode returns, one per reason a datagram is refused, so that a
// receiver can count drops by reason with errors.Is, or without knowing this
// package by the reason each names (codec.DropReasoner: "unauthenticated",
// "bad_tag", "unknown_key", "replay", "duplicate", "stale"). None of them is
// codec.ErrMalformed; an authentic datagram whose inner message does not
// decode reports the inner codec's error (codec.ErrMalformed for pipe).
var (
	// ErrUnauthenticated: the datagram is not an envelope at all (no
	// Prefix): a peer without authentication, or noise.
	ErrUnauthenticated = codec.NewDropError("unauthenticated", "auth: not an authenticated message")
	// ErrBadTag: an envelope whose tag does not match: forged, tampered
	// with or truncated, or signed by another key that has the same ID.
	ErrBadTag = codec.NewDropError("bad_tag", "auth: bad authentication tag")
	// ErrUnknownKey: an envelope signed with a key the Keyring does not
	// hold: a member with another key, or one rotated ahead or behind.
	ErrUnknownKey = codec.NewDropError("unknown_key", "auth: unknown key")
	// ErrReplay: an authentic envelope received before (or so far behind
	// its sender's latest that it cannot be told from one received
	// before).
	ErrReplay = codec.NewDropError("replay", "auth: replayed message")
	// ErrDuplicate: a second copy of an authentic envelope, arriving
	// within a second of its sender's latest: the same datagram heard by
	// another path (IPv4 and IPv6, two interfaces). It is normal on a
	// dual-stack or multi-homed LAN, and refused only because the first
	// copy has been taken.
	ErrDuplicate = codec.NewDropError("duplicate", "auth: duplicate message (a copy by another path)")
	// ErrStale: an authentic envelope whose timestamp is further from the
	// receiver's clock than Config.Window.
	ErrStale = codec.NewDropError("stale", "auth: timestamp outside the window")
	// ErrShortKey: a key shorter than MinKeyLen.
	ErrShortKey = errors.New("auth: key too short")

	// Made once: refusing a flood of forgeries should not allocate.
	errTruncated = fmt.Errorf("%w: envelope truncated", ErrBadTag)
	errNotBase64 = fmt.Errorf("%w: not base64url", ErrBadTag)
)

// UnknownKeyError reports a key ID that a Keyring does not hold: an
// envelope signed with it, or a Keyring method given it. It matches
// ErrUnknownKey with errors.Is. Its message is made only when asked for,
// so that refusing a flood of them stays cheap.
type UnknownKeyError struct {
	ID KeyID
}

func (e *UnknownKeyError) Error() string { return ErrUnknownKey.Error() + " " + e.ID.String() }

func (e *UnknownKeyError) Unwrap() error { return ErrUnknownKey }

// Config configures a Codec. DefaultConfig gives the defaults; New fills
// zero fields with them on its own copy.
type Config struct {
	// Keys holds the group's keys. Required, with at least one key. The
	// Codec reads it on every message, not a copy of it: changes to it
	// take effect for the next message.
	Keys *Keyring

	// MaxSize is the largest datagram Encode produces and Decode accepts,
	// envelope included, in bytes. Zero means codec.MaxDatagram
	// (1452). Base64 makes the envelope 4/3 the size of the inner message
	// plus Overhead, plus the Prefix: at 1452 bytes the inner message can
	// take at most 1042.
	MaxSize int

	// Window is how far a datagram's timestamp may be from the receiver's
	// clock, either way; beyond it the datagram is refused (ErrStale).
	// Members' clocks must agree to well within it. Zero means 30 s.
	Window time.Duration

	// MaxSenders caps the senders (Codec instances) whose sequence
	// numbers a receiver remembers for replay protection. When full, the
	// least recently heard sender is forgotten (Stats.Evicted counts those
	// forgotten within 2×Window of their last datagram). Each takes about
	// 60 bytes. Zero means 4096.
	MaxSenders int

	// Now is the clock, for timestamps and their check. Nil means
	// time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults; Keys is left nil.
func DefaultConfig() Config {
	return Config{
		MaxSize:    codec.MaxDatagram,
		Window:     30 * time.Second,
		MaxSenders: 4096,
		Now:        time.Now,
	}
}

// minSize is the smallest datagram that can hold an envelope with a
// one-byte inner message.
var minSize = len(Prefix) + enc.EncodedLen(Overhead+1)

// ErrInvalidConfig wraps every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("auth: invalid config")

// Validate reports every problem with the Config at once, each wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Keys == nil {
		bad("Keys is required")
	} else if _, ok := c.Keys.Current(); !ok {
		bad("Keys holds no key")
	}
	if c.MaxSize != 0 && c.MaxSize < minSize {
		bad("MaxSize %d is less than the smallest envelope, %d bytes", c.MaxSize, minSize)
	}
	if c.Window < 0 || c.Window != 0 && c.Window < time.Millisecond {
		bad("Window %v: want at least 1ms, or zero for the default", c.Window)
	}
	if c.MaxSenders < 0 {
		bad("MaxSenders %d is negative", c.MaxSenders)
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxSize == 0 {
		c.MaxSize = d.MaxSize
	}
	if c.Window == 0 {
		c.Window = d.Window
	}
	if c.MaxSenders == 0 {
		c.MaxSenders = d.MaxSenders
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// Codec wraps another Codec in an authenticated envelope: every datagram
// carries the current key's ID, this Codec's sender ID and sequence number,
// a timestamp and an HMAC-SHA256 tag. Decode refuses any datagram that is
// not an envelope, fails its tag, names a key not in the Keyring, is stale
// or replays one already accepted; it hands the rest to the inner Codec.
//
// A Codec is safe for concurrent use. Encode never blocks on Decode's
// replay state.
type Codec struct {
	inner  codec.Codec
	cfg    Config
	keys   *Keyring
	sender uint64        // random, drawn by New
	seq    atomic.Uint64 // last sequence number sent
	replay *replayTable
	bufs   sync.Pool // of *[]byte, scratch for the binary form
	stats  counters
}

var _ codec.Codec = (*Codec)(nil)

// New returns a Codec that wraps inner in envelopes signed with the keys of
// cfg.Keys. Each Codec is a sender of its own: it draws a random 64-bit
// sender ID and numbers its datagrams from 1, so a restarted process is a
// new sender that receivers accept at once.
func New(inner codec.Codec, cfg Config) (*Codec, error) {
	if inner == nil {
		return nil, errors.New("auth: New: nil inner codec")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Codec{inner: inner, cfg: cfg, keys: cfg.Keys, replay: newReplayTable(cfg.MaxSenders)}
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails; it crashes the program first
	c.sender = binary.BigEndian.Uint64(id[:])
	return c, nil
}

// buf returns a scratch buffer from the pool with room for n bytes plus a
// full HMAC.
var _ codec.NameChecker = (*Codec)(nil)

// CheckGroup reports what the inner codec's CheckGroup reports: the
// envelope carries the inner message whole.
func (c *Codec) CheckGroup(name string) error {
	if nc, ok := c.inner.(codec.NameChecker); ok {
		return nc.CheckGroup(name)
	}
	return nil
}

// CheckID reports what the inner codec's CheckID reports.
func (c *Codec) CheckID(id string) error {
	if nc, ok := c.inner.(codec.NameChecker); ok {
		return nc.CheckID(id)
	}
	return nil
}

func (c *Codec) buf(n int) *[]byte {
	p, _ := c.bufs.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	if cap(*p) < n+sha256.Size {
		*p = make([]byte, 0, n+sha256.Size)
	}
	return p
}

// Encode appends the envelope of m to dst: the inner codec's encoding of m,
// signed with the Keyring's current key. A refused message leaves dst as it
// was; the inner codec's errors are returned as they are.
func (c *Codec) Encode(dst []byte, m *codec.Message) ([]byte, error) {
	k := c.keys.state.Load().current // non-nil: New checked, and Remove keeps the current key
	p := c.buf(enc.DecodedLen(c.cfg.MaxSize))
	defer c.bufs.Put(p)
	b := appendHeader((*p)[:0], k.id, c.sender, c.seq.Add(1), c.cfg.Now().UnixMilli())
	b, err := c.inner.Encode(b, m)
	if err != nil {
		c.stats.encodeErrors.Add(1)
		return dst, err
	}
	b = appendTag(b, k)
	if cap(b) <= maxPooled {
		*p = b // the inner codec may have grown it
	}
	if n := len(Prefix) + enc.EncodedLen(len(b)); n > c.cfg.MaxSize {
		c.stats.encodeErrors.Add(1)
		return dst, fmt.Errorf("%w: envelope of %d bytes, limit %d", codec.ErrTooLarge, n, c.cfg.MaxSize)
	}
	dst = append(dst, prefix...)
	dst = enc.AppendEncode(dst, b)
	c.stats.encoded.Add(1)
	return dst, nil
}

func appendHeader(b []byte, id KeyID, sender, seq uint64, ms int64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(id))
	b = binary.BigEndian.AppendUint64(b, sender)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(ms))
}

// appendTag appends the tag of b: the first TagLen bytes of HMAC-SHA256
// over Prefix and b.
func appendTag(b []byte, k *key) []byte {
	return k.appendMAC(b, b)[:len(b)+TagLen]
}

// Decode checks the envelope in b and decodes the inner message into m.
// The checks run cheapest first, and nothing about a sender is remembered
// until its datagram has passed the tag and the time window: a datagram
// that fails is refused with one of ErrUnauthenticated, ErrBadTag,
// ErrUnknownKey, ErrStale, ErrReplay, ErrDuplicate or codec.ErrTooLarge, and an authentic
// one whose inner message does not decode with the inner codec's error.
func (c *Codec) Decode(b []byte, m *codec.Message) error {
	if len(b) > c.cfg.MaxSize {
		c.stats.tooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", codec.ErrTooLarge, len(b), c.cfg.MaxSize)
	}
	if !bytes.HasPrefix(b, prefix) {
		c.stats.unauthenticated.Add(1)
		return ErrUnauthenticated
	}
	text := b[len(Prefix):]
	n := enc.DecodedLen(len(text))
	if n < Overhead {
		c.stats.badTag.Add(1)
		return errTruncated
	}
	p := c.buf(n)
	defer c.bufs.Put(p)
	raw := (*p)[:n]
	n, err := enc.Decode(raw, text)
	// The decoder skips CR and LF; refusing them keeps one encoding per
	// envelope.
	if err != nil || enc.EncodedLen(n) != len(text) || n < Overhead {
		c.stats.badTag.Add(1)
		return errNotBase64
	}
	raw = raw[:n]
	signed, tag := raw[:n-TagLen], raw[n-TagLen:]
	id := KeyID(binary.BigEndian.Uint32(raw))
	k := c.keys.state.Load().lookup(id)
	if k == nil {
		c.stats.unknownKey.Add(1)
		return &UnknownKeyError{ID: id}
	}
	if !hmac.Equal(k.appendMAC(raw[n:], signed)[:TagLen], tag) {
		c.stats.badTag.Add(1)
		return ErrBadTag
	}
	sender := binary.BigEndian.Uint64(raw[4:])
	seq := binary.BigEndian.Uint64(raw[12:])
	ms := int64(binary.BigEndian.Uint64(raw[20:]))
	now := c.cfg.Now().UnixMilli()
	window := c.cfg.Window.Milliseconds()
	if ms < now-window || ms > now+window {
		c.stats.stale.Add(1)
		return fmt.Errorf("%w: sent %v from now", ErrStale, time.Duration(ms-now)*time.Millisecond)
	}
	switch c.replay.accept(sender, seq, now, 2*window) {
	case duplicate:
		c.stats.duplicates.Add(1)
		return fmt.Errorf("%w: sender %016x sequence %d", ErrDuplicate, sender, seq)
	case replayed:
		c.stats.replayed.Add(1)
		return fmt.Errorf("%w: sender %016x sequence %d", ErrReplay, sender, seq)
	}
	if err := c.inner.Decode(signed[headerLen:], m); err != nil {
		c.stats.malformed.Add(1)
		return err
	}
	m.Extended = true // no original pir peer signs its messages
	c.stats.decoded.Add(1)
	return nil
}

// Stats is a snapshot of a Codec's counters. Counters only grow; Senders
// is a gauge.
type Stats struct {
	// Encoded counts envelopes made; EncodeErrors messages refused.
	Encoded, EncodeErrors uint64
	// Decoded counts datagrams accepted and decoded.
	Decoded uint64
	// The datagrams refused, by reason (the error Decode returned).
	Unauthenticated, BadTag, UnknownKey, Stale, Replayed, TooLarge uint64
	// Duplicates counts second copies of a datagram heard by another
	// path (ErrDuplicate), apart from Replayed: they are not attacks.
	Duplicates uint64
	// Malformed counts authentic datagrams the inner codec refused.
	Malformed uint64
	// Senders is the number of senders remembered for replay protection,
	// at most Config.MaxSenders.
	Senders int
	// Evicted counts senders forgotten to make room for another while
	// their datagrams could still be fresh. Each lets that sender's recent
	// datagrams be replayed once more. Non-zero means MaxSenders is too
	// small for the group, or a key holder is making up senders.
	Evicted uint64
}

// Stats returns the Codec's counters.
func (c *Codec) Stats() Stats {
	s := Stats{
		Encoded:         c.stats.encoded.Load(),
		EncodeErrors:    c.stats.encodeErrors.Load(),
		Decoded:         c.stats.decoded.Load(),
		Unauthenticated: c.stats.unauthenticated.Load(),
		BadTag:          c.stats.badTag.Load(),
		UnknownKey:      c.stats.unknownKey.Load(),
		Stale:           c.stats.stale.Load(),
		Replayed:        c.stats.replayed.Load(),
		Duplicates:      c.stats.duplicates.Load(),
		TooLarge:        c.stats.tooLarge.Load(),
		Malformed:       c.stats.malformed.Load(),
	}
	s.Senders, s.Evicted = c.replay.stats()
	return s
}

type counters struct {
	encoded, encodeErrors, decoded                       atomic.Uint64
	unauthenticated, badTag, unknownKey, stale, replayed atomic.Uint64
	duplicates, tooLarge, malformed                      atomic.Uint64
}
