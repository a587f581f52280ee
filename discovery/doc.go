// Package discovery is pir's engine: a Group that a process joins to find
// the other members of a named group on its LAN, keep track of their
// health, and hear when they join, change or leave.
//
// # Lifecycle
//
// Join checks the Config, fills in its defaults (those derived from other
// fields, such as LateAfter and ExpireAfter from AnnounceInterval, from the
// Config as given), sends a Query (an announcement that asks every member
// to answer at once, so the new member learns the group in one round trip)
// and starts announcing every AnnounceInterval, with jitter.
//
// Shutdown(ctx) stops without a goodbye: it closes the transport, stops
// every goroutine the Group started, lets each listener finish the events
// queued for it, and waits for all of that until ctx ends; then it
// abandons what still runs and returns a *ShutdownError naming it. Close
// is Shutdown bounded by Config.CloseTimeout (5 s by default). Leave sends
// a goodbye, which other members act on at once, then shuts down; its ctx
// bounds both. All three are idempotent: once the Group is stopping, Leave
// sends nothing, and each call waits as Shutdown does and returns nil when
// everything has stopped. Done is closed when nothing of the Group runs
// any more, listeners included.
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
// goroutines of their own, outside every lock, and may call any method of
// the Group, Close, Leave and Shutdown included: called from a listener,
// those do not wait for that listener (it cannot return before they do).
//
// A slow listener delays only itself, and costs bounded memory: its queue
// merges the Updated and HealthChanged events of each member (the newest
// wins, with Prev from the first one the listener missed), keeps Joined and
// Left in order, and holds at most Config.MaxListenerQueue events; beyond
// that it drops events and counts them (Stats.EventsDropped). A member's
// changes are reported by at most one Updated event per half announce
// interval; later ones are applied at once and reported together when that
// time is up (Stats.UpdatesHeld).
//
// # Pluggable parts
//
// The Group is written against four interfaces: transport.Transport (how
// datagrams move), codec.Codec (what they look like), healthcheck.Prober
// (how health is probed) and score.HealthPolicy (how health is judged). The
// default codec is the transport's (transport.DefaultCodec): on the
// multicast and in-memory transports it is the pipe codec, which with the
// default tcp probe is byte-compatible with the original pir. The engine
// imports no codec: a codec's errors name their drop reason
// (codec.DropReasoner) and a codec states its own name limits
// (codec.NameChecker). The default policy is [score.PhiAccrual],
// expecting an announcement every AnnounceInterval: a member is dead when
// its silence has grown unlikely and its probe fails, or after three
// failed probes in a row. [score.Threshold] gives the original pir's rule,
// removal after three net probe failures.
//
// Bad datagrams are never errors of ours: they are counted by reason (see
// Stats) and dropped.
package discovery
