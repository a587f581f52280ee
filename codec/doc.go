// Package codec defines the messages pir peers exchange and the Codec
// interface that turns them into datagrams.
//
// The default codec, subpackage pipe, speaks the original pir wire format.
// Wrappers (an authenticated envelope, say) implement Codec around another
// Codec. Package codectest is the conformance suite every Codec passes.
//
// Decoders face the network: they never panic, never keep the caller's
// buffer, and report bad input as an error wrapping ErrMalformed (or a
// sentinel of their own) that the receiver counts and drops.
package codec
