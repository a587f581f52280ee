package discovery

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/pirlan/pir/score"
)

// Peer is how a member presents itself to the group.
type Peer struct {
	// ID identifies the peer within the group. Empty means a new random
	// UUID (version 4), as the original pir used.
	ID string
	// HealthURI is where other members probe this peer, e.g.
	// tcp://198.18.0.2:37821 for the original pir protocol. Its scheme
	// picks the prober (tcp, udp, http, or one the application registers,
	// such as https: see healthcheck.HTTPConfig.DialTLS). An unspecified host (tcp://0.0.0.0:port or
	// tcp://[::]:port) is replaced, on each interface, by that interface's
	// address when the transport can tell it (transport.LinkSender).
	HealthURI *url.URL
	// CommsURI is where the application itself is reached, e.g.
	// tcp://10.1.1.1:80. Nil means the same as HealthURI.
	CommsURI *url.URL
	// Meta is free-form metadata carried in announcements. Keys are
	// non-empty UTF-8; the whole announcement must fit one datagram.
	Meta map[string]string
}

// NewPeerID returns a new random peer ID: a UUID version 4.
func NewPeerID() string { return uuid.NewString() }

func (p Peer) clone() Peer {
	p.HealthURI = cloneURL(p.HealthURI)
	p.CommsURI = cloneURL(p.CommsURI)
	p.Meta = maps.Clone(p.Meta)
	return p
}

func cloneURL(u *url.URL) *url.URL {
	if u == nil {
		return nil
	}
	c := *u
	if u.User != nil {
		user := *u.User
		c.User = &user
	}
	return &c
}

func (p Peer) String() string {
	return fmt.Sprintf("%s health=%s comms=%s", p.ID, p.HealthURI, p.CommsURI)
}

// Member is a peer as another member sees it. Members are values: a Member
// returned by Members or carried by an Event is a snapshot that the Group
// never changes afterwards.
type Member struct {
	Peer
	// Addr is the source address of the member's latest message. An IPv6
	// link-local address carries its zone.
	Addr netip.AddrPort
	// IfIndex is the interface the latest message arrived on, 0 when the
	// transport cannot tell.
	IfIndex int
	// Health runs from 1 (healthy) to 0 (dead), as the HealthPolicy
	// judges it.
	Health float64
	// Verdict is the HealthPolicy's judgement.
	Verdict score.Verdict
	// Joined is when the member joined (the Joined event).
	Joined time.Time
	// LastSeen is when its latest announcement arrived.
	LastSeen time.Time
}

// EventType says what happened to a member.
type EventType uint8

const (
	// Joined: a new member, healthy by its first probe (or announced, when
	// Config.JoinBeforeProbe is set).
	Joined EventType = iota + 1
	// HealthChanged: the member's Health or Verdict changed.
	HealthChanged
	// Updated: the member announced new URIs or metadata (a restart on a
	// new address, say).
	Updated
	// Left: the member is gone; Event.Reason says why.
	Left
)

func (t EventType) String() string {
	switch t {
	case Joined:
		return "joined"
	case HealthChanged:
		return "health"
	case Updated:
		return "updated"
	case Left:
		return "left"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Reason says why a member left.
type Reason uint8

const (
	// Goodbye: the member said it was leaving.
	Goodbye Reason = iota + 1
	// Failed: its health probes failed until the HealthPolicy gave up.
	Failed
	// Expired: it stopped announcing for Config.ExpireAfter.
	Expired
)

func (r Reason) String() string {
	switch r {
	case Goodbye:
		return "goodbye"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Event is one change to the membership, as a listener receives it.
type Event struct {
	Type EventType
	// Member is the member after the change (for Left: as it was last
	// known).
	Member Member
	// Prev is the member before the change, for HealthChanged and
	// Updated; the zero Member otherwise.
	Prev Member
	// Reason is why a member left; zero for other events.
	Reason Reason
	// At is when the Group noticed the change.
	At time.Time
}

func (e Event) String() string {
	switch e.Type {
	case Left:
		return fmt.Sprintf("left %s (%s)", e.Member.ID, e.Reason)
	case HealthChanged:
		return fmt.Sprintf("health %s %.2f -> %.2f (%s)", e.Member.ID, e.Prev.Health, e.Member.Health, e.Member.Verdict)
	default:
		return fmt.Sprintf("%s %s", e.Type, e.Member.Peer)
	}
}

// Listener receives membership events. Returning false unsubscribes it, as
// in the original pir.
//
// Each listener runs in a goroutine of its own, outside the Group's locks,
// and receives events one at a time in the order they happened. A slow
// listener delays only itself: events queue for it, and the queue is
// bounded: a member's Updated events merge into one (the newest, with
// Prev from the first one missed), as do its HealthChanged events; Joined
// and Left are kept in order, a Left drops the member's merged events, and
// beyond Config.MaxListenerQueue events are dropped (Stats.EventsDropped).
// A listener may call any Group method, Close, Leave and Shutdown
// included: called from a listener, those do not wait for it.
type Listener func(Event) bool
