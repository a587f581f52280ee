// Package discovery is pir's engine: a Group that a process joins to find
// the other members of a named group on its LAN, keep track of their
// health, and hear when they join, change or leave.
//
// # Lifecycle
//
// Join checks the Config, sends a Query (an announcement that asks every
// member to answer at once, so the new member learns the group in one round
// trip) and starts announcing every AnnounceInterval, with jitter. Leave
// sends a goodbye, which other members act on at once, then closes. Close
// stops without a goodbye: it closes the transport, stops every goroutine
// the Group started and waits for them. Both are idempotent.
//
// # What a member sees of its peers
//
// A peer heard for the first time is tracked and probed at once. It joins
// (the Joined event) on its first successful probe, so that an unreachable
// peer never flaps joined/left; Config.JoinBeforeProbe reports it on its
// first announcement instead. The HealthPolicy turns probe results and
// announcements into a Health between 0 and 1 and a Verdict; each change
// is a HealthChanged event, and a Dead verdict removes the member (Left,
// reason Failed). A member that stops announcing for ExpireAfter is removed
// even if its probe still answers (Left, reason Expired). A later
// announcement with new URIs or metadata, such as a restart on a new
// address, is an Updated event.
//
// # Concurrency
//
// One goroutine owns the membership; another receives and decodes
// datagrams; each probe in flight runs in one more, at most MaxProbes at
// once. Every method of Group is safe for concurrent use. Listeners run in
// goroutines of their own, outside every lock, and may call the Group (but
// not Close or Leave, which wait for them). A slow listener delays only
// itself.
//
// # Pluggable parts
//
// The Group is written against four interfaces: transport.Transport (how
// datagrams move), codec.Codec (what they look like), healthcheck.Prober
// (how health is probed) and score.HealthPolicy (how health is judged). The
// defaults are byte-compatible with the original pir: the pipe codec, the
// tcp probe, and a threshold policy that removes a member after three net
// probe failures.
//
// Bad datagrams are never errors of ours: they are counted by reason (see
// Stats) and dropped.
package discovery
