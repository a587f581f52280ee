package discovery

import (
	"fmt"
	"sync/atomic"
)

// DropReason says why a received datagram was not acted on.
type DropReason uint8

const (
	// DropMalformed: the codec could not decode it.
	DropMalformed DropReason = iota
	// DropOversize: larger than the receive buffer or the codec's limit.
	DropOversize
	// DropForeignGroup: a message for another group on the same port.
	DropForeignGroup
	// DropSelf: our own announcement, looped back (or a peer claiming our
	// ID).
	DropSelf
	// DropBadURI: a URI that does not parse, or a health URI whose scheme
	// no prober handles.
	DropBadURI
	// DropPeerCap: a new peer while MaxPeers members are tracked, or
	// the oldest pending peer, dropped to make room for a new one.
	DropPeerCap
	// DropReceiveError: the transport reported an error other than
	// truncation.
	DropReceiveError
	// DropRateLimited: a new peer from a source that introduced too many
	// (Config.NewPeerRate).
	DropRateLimited
	// DropNotAllowed: a health URI refused before any probe: userinfo, a
	// DNS name, an unspecified, multicast or (from another host) loopback
	// address, a host other than the source address (see
	// Config.ForeignHealthHosts), or Config.ProbeFilter's refusal.
	DropNotAllowed
	// DropRejected: the codec refused the datagram for a reason of its own
	// that none of the reasons here names.
	DropRejected
	// DropUnauthenticated: no authenticated envelope where the codec
	// requires one (codec/auth): a peer without the key, or an original
	// pir peer.
	DropUnauthenticated
	// DropBadTag: an envelope forged, tampered with or truncated.
	DropBadTag
	// DropUnknownKey: an envelope signed with a key this member does not
	// hold (misconfiguration, or rotation lag).
	DropUnknownKey
	// DropReplay: an authentic envelope accepted before.
	DropReplay
	// DropStale: an authentic envelope outside the time window: an old
	// replay, or a sender whose clock is off.
	DropStale
	// DropAnswerLimited: a confirmation request whose unicast answer was
	// not sent because the member asked too often (Config.AnswerRate).
	// Queries are answered by multicast and never counted here. Also a
	// pull of a state transfer refused by the serving bounds
	// (Config.MaxTransfers, Config.StateRate, a page served twice), and an
	// offer not sent because offers came too fast.
	DropAnswerLimited
	// DropDuplicate: the second copy of an authentic envelope, heard by
	// another path (IPv4 and IPv6, two interfaces) within a second of the
	// first. Normal on a dual-stack or multi-homed LAN; not an attack.
	DropDuplicate
	// DropSpoofed: a confirmation request, evidence or obituary that did
	// not come from the address its sender was heard from as a joined
	// member, or a request that expects a unicast answer sent by
	// multicast: forged, or from a peer not (yet) a member. Also a pull
	// of a state transfer without a valid cookie, and an offer or a page
	// that is not of the transfer we pull (docs/design/frugal.md, 2.4),
	// an ack that does not echo a ping of ours, and a goodbye from an
	// address its sender is not known by.
	DropSpoofed

	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropMalformed:       "malformed",
	DropOversize:        "oversize",
	DropForeignGroup:    "foreign_group",
	DropSelf:            "self",
	DropBadURI:          "bad_uri",
	DropPeerCap:         "peer_cap",
	DropReceiveError:    "receive_error",
	DropRateLimited:     "rate_limited",
	DropNotAllowed:      "not_allowed",
	DropRejected:        "rejected",
	DropUnauthenticated: "unauthenticated",
	DropBadTag:          "bad_tag",
	DropUnknownKey:      "unknown_key",
	DropReplay:          "replay",
	DropStale:           "stale",
	DropDuplicate:       "duplicate",
	DropAnswerLimited:   "answer_limited",
	DropSpoofed:         "spoofed",
}

// dropReasons maps a name to its reason: the names codecs give their Decode
// errors (codec.DropReasoner).
var dropReasons = func() map[string]DropReason {
	m := make(map[string]DropReason, numDropReasons)
	for r, name := range dropNames {
		m[name] = DropReason(r)
	}
	return m
}()

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// Stats is a snapshot of a Group's counters, for operators to see loss and
// attacks. Counters only grow; Members and Pending are gauges.
type Stats struct {
	// Received counts datagrams received; Decoded those the codec
	// accepted.
	Received, Decoded uint64
	// Dropped counts datagrams dropped, by reason. Every reason is
	// present, zero or not.
	Dropped map[DropReason]uint64
	// Sent counts datagrams sent (announcements, queries, answers,
	// goodbyes); SendErrors the sends that failed.
	Sent, SendErrors uint64
	// ProbesOK and ProbesFailed count finished probes.
	ProbesOK, ProbesFailed uint64
	// Events counts membership events emitted.
	Events uint64
	// EventsMerged counts events a listener never received because a newer
	// one replaced them while queued: an Updated or HealthChanged merged
	// into the next of the same member (one per listener), or dropped when
	// the member left. EventsDropped counts events dropped because a
	// listener's queue held Config.MaxListenerQueue events: that listener
	// lags so far that it missed changes (Members tells it the state).
	EventsMerged, EventsDropped uint64
	// UpdatesHeld counts changes to a member that came within half an
	// announce interval of its previous Updated event: they are applied at
	// once, and reported by one Updated event when that time is up.
	UpdatesHeld uint64
	// Confirmations counts the deaths put to other members before a
	// removal (Config.Confirmers); Refutations those of them that a member
	// refuted, having seen the peer alive, so that it stayed.
	Confirmations, Refutations uint64
	// Obituaries counts the removals of a member on another member's word
	// (bounded probing, see Config.ProbeAllUpTo), and with the ping
	// protocol (Config.PingInterval) the removals by an obituary whose
	// grace ended, ours included.
	Obituaries uint64
	// OffersSent counts the offers of our table sent to pinging
	// newcomers (we were their F or S, docs/design/frugal.md, 2.4);
	// OffersTooLong the offers not sent because they were longer than
	// the query they answered. TransfersServed counts the transfers of
	// our table started (a first valid pull), PagesSent the pages sent in
	// them, PagesReceived the pages we pulled when we joined.
	OffersSent, OffersTooLong uint64
	TransfersServed           uint64
	PagesSent, PagesReceived  uint64
	// PingsSent counts the pings started (each with its nonce, sent up to
	// 1 + Config.PingResends times); AcksReceived those acked, PingsFailed
	// those that timed out or were refused, and PingsRefused the pings
	// whose target's host refused them (ICMP port unreachable).
	PingsSent, AcksReceived, PingsFailed, PingsRefused uint64
	// SelfClaimsRefuted counts the messages under our ID that said what
	// we did not (an announcement or query with another record, URIs or
	// metadata, a goodbye while we stay) that we answered with our true
	// announcement, at most 4 a second (docs/security.md). Each is also
	// counted dropped as DropSelf.
	SelfClaimsRefuted uint64
	// Members is the number of joined members; Pending the peers heard
	// but not yet joined (waiting for a first successful probe).
	Members, Pending int
}

type counters struct {
	received, decoded  atomic.Uint64
	dropped            [numDropReasons]atomic.Uint64
	sent, sendErrors   atomic.Uint64
	probesOK, probesKO atomic.Uint64
	events             atomic.Uint64
	eventsMerged       atomic.Uint64
	eventsDropped      atomic.Uint64
	updatesHeld        atomic.Uint64
	confirms, refutes  atomic.Uint64
	obits              atomic.Uint64
	offers, offersLong atomic.Uint64
	transfers          atomic.Uint64
	pagesSent          atomic.Uint64
	pagesReceived      atomic.Uint64
	pingsSent          atomic.Uint64
	acksReceived       atomic.Uint64
	pingsFailed        atomic.Uint64
	pingsRefused       atomic.Uint64
	claimsRefuted      atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.dropped[r].Add(1) }
