package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/score"
	"github.com/pirlan/pir/transport"
)

// Config configures a Group. The zero value of every field but Name,
// Transport and Self.HealthURI means its default. Some defaults are fixed
// (DefaultConfig fills those in); others are derived from other fields
// (LateAfter and ExpireAfter from AnnounceInterval, say), and Join derives
// them from the Config it is given, so that changing AnnounceInterval in
// DefaultConfig's result changes them too. WithDefaults shows both.
// Join takes the Config by value and never changes the caller's copy.
type Config struct {
	// Name is the group's name: non-empty UTF-8, at most 255 bytes, no
	// '|' and no control characters. Required.
	Name string

	// Self is this member. Self.HealthURI is required unless Passive.
	// An empty Self.ID gets a new UUID.
	Self Peer

	// Passive makes a watcher: the Group tracks the members it hears but
	// never announces itself, answers no queries and sends no goodbye.
	// It still asks the group who is there when it starts.
	Passive bool

	// Transport carries the datagrams. Required. The Group owns it from
	// Join on and closes it on Close.
	Transport transport.Transport

	// Codec encodes messages. Nil means the transport's default codec
	// (transport.DefaultCodec): pipe.Codec{}, the original pir format,
	// for the multicast, mDNS and in-memory transports. A transport without a
	// default needs a Codec.
	Codec codec.Codec

	// Prober probes members' health URIs. Nil means
	// healthcheck.NewRegistry(): tcp (the pir protocol), udp and http,
	// plus the probers the Transport provides when it implements
	// healthcheck.SchemeProvider (transport/mdns: tcpconnect and mdns, for
	// the services of other software it finds, passing only those). https
	// needs the application's TLS config: register an HTTPProber with a
	// DialTLS in a Registry of your own, beside the Transport's. A
	// Prober of your own replaces all of this: over transport/mdns,
	// register the Conn's Probers() in it if foreign services should join.
	// Never register a prober that passes a target without asking it
	// (always healthy, any open port) for every peer: anyone who can send
	// an announcement would join with it.
	Prober healthcheck.Prober

	// Policy judges members' health. Nil means score.NewPhiAccrual with
	// score.DefaultPhiConfig, its ExpectedInterval set to AnnounceInterval
	// (derived at Join):
	// a member is dead when its silence is unlikely and its probe fails, or
	// after 3 failed probes in a row. score.NewThreshold gives the original
	// pir's rule (remove after 3 net failures); docs/policies.md compares
	// them.
	Policy score.HealthPolicy

	// AnnounceInterval is the time between announcements. Zero means 1 s,
	// the original's.
	AnnounceInterval time.Duration

	// AnnounceJitter spreads announcements: each interval is drawn
	// uniformly from AnnounceInterval × (1 ± AnnounceJitter), so members
	// started together do not announce in step. A fraction; zero means
	// 0.1, negative means none.
	AnnounceJitter float64

	// ProbeInterval is the time between the starts of two probes of one
	// member. Zero means 2 s, the original's.
	ProbeInterval time.Duration

	// ProbeTimeout bounds one probe. Zero means 2 s, the original's.
	ProbeTimeout time.Duration

	// SuspectProbeInterval replaces ProbeInterval while the policy holds a
	// member Suspect, so that a member that has failed a probe is confirmed
	// dead (or alive) sooner. Zero means ProbeInterval/4 (500 ms by
	// default; derived at Join); set it to ProbeInterval for the
	// original's steady pace.
	SuspectProbeInterval time.Duration

	// LateAfter is how long a member may stay silent before it is probed
	// at once, out of turn: a member that vanished (cable pulled, power
	// cut) is then found about one probe timeout after its announcements
	// stop, not whenever its next probe was due. Zero means AnnounceInterval
	// × (1 + 2 × AnnounceJitter) (derived at Join: 1.2 s with the default
	// interval and jitter, 6 s with a 5 s interval), just past the latest an
	// announcement on time can come; negative means never.
	LateAfter time.Duration

	// Confirmers is how many other members are asked to confirm a member's
	// death before it is removed, as SWIM's indirect probes do: each
	// answers at once with when it last heard the member and last probed
	// it successfully, and any of them that has seen it alive since the
	// probe that failed here keeps it. This shields members from a path
	// that fails between two hosts only (a lossy port, a neighbour
	// discovery failure). Zero means 3; negative means none: the policy's
	// verdict removes the member at once. Only healthy joined members
	// known to speak pir's extensions are asked, never an original pir
	// peer (docs/wire.md, "Who speaks the extensions"); with none, the
	// verdict stands.
	Confirmers int

	// ConfirmTimeout bounds a confirmation: members that have not answered
	// by then (the request is sent twice) are taken as having nothing to
	// say. Zero means 500 ms, or 700 ms with PingInterval on: then the
	// members asked ping the member themselves, which takes up to
	// PingTimeout.
	ConfirmTimeout time.Duration

	// ProbeAllUpTo is the largest group (joined members, this one not
	// counted) in which each member probes every other one every
	// ProbeInterval. Above it, each member probes only ProbeFanout members
	// per ProbeInterval, in a shuffled round as SWIM does, and relies on
	// announcements as heartbeats for the rest: its probe load then stays
	// constant as the group grows. A late member is then probed by a
	// ProbeFanout/N share of the members, deaths are confirmed by members
	// that probe on request, and the member that removes a dead one tells
	// the others (an Obituary). Zero means 32 (docs/performance.md says
	// why); negative means always all of them.
	ProbeAllUpTo int

	// ProbeFanout is how many members each member probes per
	// ProbeInterval in a group larger than ProbeAllUpTo. Zero means 4.
	ProbeFanout int

	// ExpireAfter removes a member that has not announced for this long,
	// even if its probes still answer. Zero means ten announce intervals
	// (derived at Join: 10 s by default); negative means never.
	ExpireAfter time.Duration

	// PingInterval is the pace of the liveness protocol of
	// docs/design/frugal.md (section 2.1): every PingInterval a member
	// pings one member, in a ring rotation that pings each member once an
	// interval (and each member that joins once more, soon after), by
	// unicast on the Group's own socket, and members that answer pings are no longer probed by
	// TCP after they joined. Zero means 1 s. Negative turns the protocol
	// off: every member probes every other's health URI, as original pir
	// peers do; it is off too on a transport whose unicast is not the
	// Group's own (transport.UniqueUnicast), such as mDNS's shared port
	// 5353. A member that pings announces with field 7 (ARGS), which
	// original pir peers drop; while one of them is heard, members
	// announce plainly every AnnounceInterval as before.
	PingInterval time.Duration
	// PingTimeout is how long a ping waits for its ack after its first
	// send. Zero means 500 ms.
	PingTimeout time.Duration
	// PingResends is how often a ping is sent again within PingTimeout
	// while no ack has come, evenly spread. Zero means 2; negative means
	// none.
	PingResends int
	// RefusedGrace is how long a ping that the target's host refused (ICMP
	// port unreachable, transport.Packet.Refused) still waits for an ack
	// before it fails. Zero means 20 ms.
	RefusedGrace time.Duration
	// ObituaryGrace is how long an obituary of a pinging member waits
	// before it removes the member, which can refute it meanwhile. Zero
	// means 200 ms.
	ObituaryGrace time.Duration
	// ReconnectInterval is how often a pinging member pings one member it
	// removed as Failed within the last ReconnectFor, so that the two
	// halves of a healed partition meet again. Zero means 5 s and 5 min.
	ReconnectInterval, ReconnectFor time.Duration

	// AnnounceRate, with PingInterval on, is how many periodic
	// announcements the whole group sends a second: each member announces
	// every N/AnnounceRate (N members), at least every AnnounceInterval,
	// spread over ±50 %, as RFC 3550 paces RTCP reports
	// (docs/design/frugal.md, section 2.3). While a peer that does not
	// ping is heard, members announce every AnnounceInterval as before.
	// Zero means 0.1; negative means every AnnounceInterval always.
	AnnounceRate float64

	// HealthInterval, with PingInterval on, is how often a member checks
	// its own health (Prober against Self.HealthURI, over loopback) and
	// multicasts the changes, instead of every member probing every
	// other (docs/design/frugal.md, section 2.2). Zero means 2 s (a
	// check is a TCP connection or an HTTP request: at 1 s it was a third
	// of a member's CPU, docs/performance.md); negative: off, and the
	// members probe each other's health URI.
	HealthInterval time.Duration

	// SelfCheck, when not nil, is the self-check HealthInterval runs
	// instead of Prober against Self.HealthURI: for a health server in
	// this process, a question asked in process (healthcheck's servers
	// have Check) is the same answer without a connection over loopback,
	// which cost pir join 14 to 15 % of its CPU (docs/performance.md,
	// session 16).
	// Each run is bounded by ProbeTimeout through ctx; a non-nil error is
	// a failed check.
	SelfCheck func(ctx context.Context) error

	// MaxTransfers caps the state transfers a member serves at once to
	// newcomers (docs/design/frugal.md, section 2.4), and StateRate the
	// pages per second it sends for all of them. Zero means 4 and 4,000.
	MaxTransfers int
	StateRate    float64

	// JoinBeforeProbe reports a member as Joined on its first
	// announcement. By default (false) Joined waits for its first
	// successful probe, so that a peer that cannot be reached never
	// flaps joined/left.
	JoinBeforeProbe bool

	// MaxPeers caps the peers tracked, joined or pending. Announcements
	// from new peers beyond it are dropped and counted (DropPeerCap) until
	// some leave; members already tracked are never evicted for them.
	// Zero means 4096.
	MaxPeers int

	// MaxPending caps the peers heard but not yet joined (waiting for a
	// first successful probe), so that a flood of forged announcements
	// fills this pool, not the whole table. A new peer heard while the pool
	// is full takes the place of the oldest pending peer, which is dropped
	// (counted as DropPeerCap, no event: it never joined), so that a flood
	// cannot lock a real newcomer out; joined members and their probes are
	// untouched. Zero means MaxPeers/4, at least 16 (derived at Join).
	MaxPending int

	// NewPeerRate limits how many new peers one source address may
	// introduce, in peers per second, with bursts of NewPeerBurst. Beyond
	// it, announcements of unknown peers from that address are dropped
	// (DropRateLimited); peers already tracked are not affected. Zero means
	// 10 per second; negative means no limit.
	NewPeerRate float64
	// NewPeerBurst is the burst NewPeerRate allows. Zero means 32.
	NewPeerBurst int

	// AnswerRate limits the unicast answers to confirmation requests sent
	// to one member, in answers per second, with bursts of 32. Beyond it,
	// requests from that address go unanswered (DropAnswerLimited). Zero
	// means 10 per second; negative means no limit. (Queries are answered
	// by multicast, at most 10 answers a second: see docs/wire.md.)
	AnswerRate float64

	// MaxProbes caps the probes in flight at once. Probes of pending
	// peers (not joined yet) take at most half of them, the rest being
	// kept for members; and at most two at once of peers heard from one
	// source address. Zero means 64.
	MaxProbes int

	// MaxProbeRate caps the connection attempts (probes, and the hedged
	// attempts a probe may add on a slow or lossy path) started per
	// second, for the whole Group, so that forged announcements cannot
	// turn a member into a connection flood. A probe's first attempt waits
	// its turn, joined members' before pending peers'; an extra attempt
	// without a token is not made. (A pending peer's probe makes one
	// attempt only.) The default probe interval probes each member every
	// 2 s, so a group of more than 2 × MaxProbeRate members is probed less
	// often than ProbeInterval. Zero means 200 a second; negative means no
	// limit.
	MaxProbeRate float64

	// ProbeFilter, when set, is asked before a new peer (or a new health
	// URI) is tracked, after the checks ForeignHealthHosts describes: a
	// non-nil error drops the announcement (DropNotAllowed). src is the
	// datagram's source. Use it to allow only some networks, ports or
	// schemes.
	ProbeFilter func(health *url.URL, src netip.AddrPort) error

	// ForeignHealthHosts lets a peer's health URI name a host other than
	// the address its announcement came from, DNS names included. By
	// default (false) a forged announcement cannot aim probes anywhere but
	// at its own source address: an announcement is dropped
	// (DropNotAllowed) unless its health host is an IP address equal to
	// the datagram's source (compared without IPv4 mapping or zone).
	// Members that advertise 0.0.0.0 or [::] announce on each link the
	// address they send from there, and the original pir announces its own
	// IPv4 address, so both pass; a member that advertises an address its
	// interface does not send from (a secondary IPv4 address, a global
	// IPv6 address on a link-scoped group without 0.0.0.0/[::]) needs this
	// option on the members that hear it.
	//
	// Whatever this says, a health URI is refused when it carries userinfo
	// (user:password@), or names an unspecified or multicast address, or a
	// loopback address unless the datagram came from a loopback address
	// (a member on this host).
	ForeignHealthHosts bool

	// Logger receives the Group's logs. Nil means no logging.
	// Per-datagram events log at Debug or Trace only.
	Logger hclog.Logger

	// MaxListenerQueue caps the events queued for one listener. A
	// listener's queue merges the Updated and HealthChanged events of a
	// member (at most one of each pending, the newest winning), so it
	// grows only with Joined and Left events; beyond the cap, events are
	// dropped and counted (Stats.EventsDropped), and a listener that
	// missed some can read Members. Zero means 4 × MaxPeers (derived at
	// Join), which holds the Joined events AddListener replays and some
	// churn besides.
	MaxListenerQueue int

	// CloseTimeout bounds Close: how long it waits for the Group's
	// goroutines and its listeners before it abandons them and returns a
	// *ShutdownError (Shutdown takes a context instead). Zero means 5 s;
	// negative means Close waits for as long as they take.
	CloseTimeout time.Duration
}

// DefaultConfig returns a Config for the group name and the transport
// given, with every fixed default filled in. The defaults derived from
// other fields (Policy, SuspectProbeInterval, LateAfter, ExpireAfter,
// MaxPending, MaxListenerQueue) stay zero: Join derives them from the
// final Config. WithDefaults fills them in too.
func DefaultConfig(name string, t transport.Transport) Config {
	c := Config{Name: name, Transport: t}
	c.setFixed()
	return c
}

// WithDefaults returns c with every default filled in, the derived ones
// computed from c's other fields: the Config Join runs with (but for an
// empty Self.ID, which Join replaces with a new one).
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	c.setFixed()
	c.setDerived()
}

// setFixed fills in the defaults that do not depend on other fields.
func (c *Config) setFixed() {
	if c.PingInterval == 0 {
		c.PingInterval = time.Second
	}
	if u, ok := c.Transport.(transport.UniqueUnicast); c.Transport != nil && c.PingInterval > 0 && (!ok || !u.UnicastIsUnique()) {
		// Pings need a socket of our own (mDNS shares port 5353): the
		// engine is off, and the transport's own rules hold.
		c.PingInterval = -1
	}
	if c.HealthInterval == 0 && c.PingInterval > 0 {
		c.HealthInterval = 2 * time.Second
	}
	c.Codec = c.codec()
	if c.Prober == nil {
		r := healthcheck.NewRegistry()
		if sp, ok := c.Transport.(healthcheck.SchemeProvider); ok {
			for scheme, p := range sp.Probers() {
				r.Register(scheme, p)
			}
		}
		c.Prober = r
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = time.Second
	}
	if c.AnnounceJitter == 0 {
		c.AnnounceJitter = 0.1
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 2 * time.Second
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 2 * time.Second
	}
	if c.Confirmers == 0 {
		c.Confirmers = 3
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = 500 * time.Millisecond
		if c.PingInterval > 0 {
			c.ConfirmTimeout = 700 * time.Millisecond
		}
	}
	if c.ProbeAllUpTo == 0 {
		c.ProbeAllUpTo = 32
	}
	if c.ProbeFanout == 0 {
		c.ProbeFanout = 4
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = 4096
	}
	if c.AnswerRate == 0 {
		c.AnswerRate = 10
	}
	if c.MaxProbes == 0 {
		c.MaxProbes = 64
	}
	if c.NewPeerRate == 0 {
		c.NewPeerRate = 10
	}
	if c.NewPeerBurst == 0 {
		c.NewPeerBurst = 32
	}
	if c.MaxProbeRate == 0 {
		c.MaxProbeRate = 200
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 500 * time.Millisecond
	}
	if c.PingResends == 0 {
		c.PingResends = 2
	}
	if c.RefusedGrace == 0 {
		c.RefusedGrace = 20 * time.Millisecond
	}
	if c.ObituaryGrace == 0 {
		c.ObituaryGrace = 200 * time.Millisecond
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = 5 * time.Second
	}
	if c.ReconnectFor == 0 {
		c.ReconnectFor = 5 * time.Minute
	}
	if c.AnnounceRate == 0 {
		c.AnnounceRate = 0.1
	}
	if c.MaxTransfers == 0 {
		c.MaxTransfers = 4
	}
	if c.StateRate == 0 {
		c.StateRate = 4000
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// setDerived fills in the defaults derived from other fields, which
// setFixed must have filled in.
// codec is c.Codec, or when nil the transport's default (nil when it has
// none).
func (c *Config) codec() codec.Codec {
	if c.Codec != nil {
		return c.Codec
	}
	if d, ok := c.Transport.(transport.DefaultCodec); ok {
		return d.DefaultCodec()
	}
	return nil
}

func (c *Config) setDerived() {
	if c.Policy == nil {
		pc := score.DefaultPhiConfig()
		pc.ExpectedInterval = c.AnnounceInterval
		c.Policy = score.NewPhiAccrual(pc)
	}
	if c.SuspectProbeInterval == 0 {
		c.SuspectProbeInterval = c.ProbeInterval / 4
	}
	if c.LateAfter == 0 {
		j := max(c.AnnounceJitter, 0)
		c.LateAfter = time.Duration(float64(c.AnnounceInterval) * (1 + 2*j))
	}
	if c.ExpireAfter == 0 {
		c.ExpireAfter = 10 * c.AnnounceInterval
	}
	if c.MaxPending == 0 {
		c.MaxPending = max(16, c.MaxPeers/4)
	}
	if c.MaxListenerQueue == 0 {
		c.MaxListenerQueue = 4 * c.MaxPeers
	}
}

// Validate reports every problem with c at once, each wrapping
// ErrInvalidConfig. Zero fields that take defaults are not problems.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	cdc := c.codec()
	if c.Transport == nil {
		bad("Transport is nil")
	} else if cdc == nil {
		bad("Codec is nil and the transport has no default codec (transport.DefaultCodec): give one")
	}
	names, _ := cdc.(codec.NameChecker)
	if c.Name == "" {
		bad("Name is empty")
	} else if names != nil {
		if err := names.CheckGroup(c.Name); err != nil {
			bad("Name %q cannot be sent by the codec: %v", c.Name, err)
		}
	}
	if c.Self.ID != "" && names != nil {
		if err := names.CheckID(c.Self.ID); err != nil {
			bad("Self.ID %q cannot be sent by the codec: %v", c.Self.ID, err)
		}
	}
	if !c.Passive {
		if c.Self.HealthURI == nil {
			bad("Self.HealthURI is nil (a Passive group needs none)")
		} else if c.Self.HealthURI.Scheme == "" || c.Self.HealthURI.Host == "" {
			bad("Self.HealthURI %q needs a scheme and a host", c.Self.HealthURI)
		}
	}
	for k := range c.Self.Meta {
		if k == "" {
			bad("Self.Meta has an empty key")
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"AnnounceInterval", c.AnnounceInterval},
		{"ProbeInterval", c.ProbeInterval},
		{"ProbeTimeout", c.ProbeTimeout},
		{"SuspectProbeInterval", c.SuspectProbeInterval},
		{"ConfirmTimeout", c.ConfirmTimeout},
		{"PingTimeout", c.PingTimeout},
		{"RefusedGrace", c.RefusedGrace},
		{"ObituaryGrace", c.ObituaryGrace},
		{"ReconnectInterval", c.ReconnectInterval},
		{"ReconnectFor", c.ReconnectFor},
	} {
		if d.v < 0 {
			bad("%s %v is negative", d.name, d.v)
		}
	}
	if c.StateRate < 0 {
		bad("StateRate %v is negative", c.StateRate)
	}
	if c.PingInterval > 0 && c.PingTimeout > 0 && c.RefusedGrace > c.PingTimeout {
		bad("RefusedGrace %v exceeds PingTimeout %v", c.RefusedGrace, c.PingTimeout)
	}
	if c.AnnounceJitter >= 1 {
		bad("AnnounceJitter %v must be below 1", c.AnnounceJitter)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"MaxPeers", c.MaxPeers},
		{"MaxPending", c.MaxPending},
		{"MaxProbes", c.MaxProbes},
		{"NewPeerBurst", c.NewPeerBurst},
		{"ProbeFanout", c.ProbeFanout},
		{"MaxListenerQueue", c.MaxListenerQueue},
		{"MaxTransfers", c.MaxTransfers},
	} {
		if n.v < 0 {
			bad("%s %d is negative", n.name, n.v)
		}
	}
	return errors.Join(errs...)
}
