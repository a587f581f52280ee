// Package codec defines the messages pir peers exchange and the Codec
// interface that turns them into datagrams.
//
// Subpackage pipe speaks the original pir wire format: the default codec of
// the multicast and in-memory transports (transport.DefaultCodec).
// Wrappers (an authenticated envelope, say) implement Codec around another
// Codec. Package codectest is the conformance suite every Codec passes.
//
// Decoders face the network: they never panic, never keep the caller's
// buffer, and report bad input as an error wrapping ErrMalformed (or a
// sentinel of their own, made with NewDropError) that the receiver counts,
// by the reason the error names (DropReasoner), and drops. A codec that
// limits group names or IDs says so with NameChecker. Codecs import no
// transport: their default size limit is MaxDatagram.
package codec
