// Package pipe is pir's default codec: the pipe-separated text format of the
// original pir, byte-compatible with it, plus extension messages that an
// original peer ignores.
//
// A plain announcement is four fields and no terminator:
//
//	web|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80
//
// Everything else (queries, goodbyes, metadata, a health URI that is not
// tcp://) is six fields, GROUP|ID|HEALTH|COMMS|KIND|META, because an original
// peer drops any message that does not split into exactly four fields but
// crashes on a four-field message it cannot parse. An ann or qry that carries
// the arguments of the ping protocol (Message.Pings, Version, HealthFails,
// Interval) adds them as a seventh field, ARGS, which older pir ignores; a
// page adds its entries after the sixth field, five fields each.
// docs/wire.md specifies every form byte by byte.
//
// Decode allocates one string per datagram (plus a map when metadata is
// present, and for a page its entries, at most codec.MaxEntries, counted
// before they are allocated) and checks URIs for shape only; receivers
// parse a URI fully when it is new to them.
package pipe
