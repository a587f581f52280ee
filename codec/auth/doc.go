// Package auth is a Codec wrapper that authenticates every message with a
// key the group's members share, so that only key holders can join, speak
// for a member or make one leave.
//
// Encode wraps the inner codec's bytes in an envelope, Decode checks the
// envelope and hands the inner bytes to the inner codec:
//
//	c, err := auth.New(pipe.Codec{}, auth.Config{Keys: keyring})
//
// The envelope is the text Prefix ("pa1:") followed by base64url (no
// padding) of
//
//	key ID (4) | sender (8) | sequence (8) | unix ms (8) | inner message | tag (16)
//
// where the tag is HMAC-SHA256 over the prefix and everything before the
// tag, truncated to 16 bytes. An envelope never contains a '|', so original
// pir peers and unauthenticated pir peers drop it as malformed, and an
// authenticated peer drops their messages (ErrUnauthenticated): the two
// kinds of group never mix. docs/security.md specifies the envelope byte by
// byte and states the threat model.
//
// Replay protection has two parts. A datagram's timestamp must be within
// Config.Window of the receiver's clock (ErrStale). Each Codec is a sender
// with a random 64-bit ID and numbers its datagrams from 1; a receiver
// remembers, per sender, the highest number accepted and which of the 64
// below it were, so a datagram accepted before is refused (ErrReplay, or
// ErrDuplicate for a second copy heard by another path within a second)
// while modest reordering is not. A restarted process is a new sender and is accepted
// at once. The receiver remembers at most Config.MaxSenders senders,
// forgetting the least recently heard when full.
//
// Keys live in a Keyring, shared by the Codecs that use it and safe to
// change while they run: every key in it is accepted, the current one
// signs. Rotation is Add, then SetCurrent, then Remove, each step applied
// to every member before the next. ParseKeyring reads a key file (hex or
// base64, one key per line, the current first).
//
// A Codec is safe for concurrent use and starts no goroutines. Its Stats
// count what it refused, by reason; every refusal is also an error that
// errors.Is matches to one of the sentinels, none of which is
// codec.ErrMalformed.
package auth
