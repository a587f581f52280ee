// Package agent serves the membership of pir groups to programs in any
// language: over DNS (miekg/dns) and over an HTTP API with blocking
// queries and a Server-Sent Events stream, plus a live page.
//
// An Agent watches groups (Watch): it adds a listener to each and keeps
// its own copy of the members, a per-group index that grows on every
// membership event, and a bounded ring of recent events. DNS returns the
// handler for a dns.Server, HTTP the handler for an http.Server; the
// caller owns the servers and their listeners. Everything the agent
// serves came off the network: names and metadata are escaped in DNS and
// JSON, memory is bounded (the event ring, each stream's buffer, the
// number of streams), and a stream whose client reads too slowly is
// disconnected and counted.
//
// Close ends blocking queries and event streams, removes the agent's
// listeners and waits, within a bound, for the requests it ended. The
// groups themselves belong to the caller. See docs/agent.md for every
// endpoint and record.
package agent
