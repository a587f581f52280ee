package discovery

import (
	"errors"
	"net/netip"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// This file holds the receiver goroutine: it reads datagrams from the
// transport, decodes them, drops and counts what the owner should not see
// (by the reason the codec's error names, see dropReason), and hands the
// rest to the owner.

type inbound struct {
	msg     codec.Message
	src     netip.AddrPort
	dst     netip.Addr // invalid when the transport cannot tell
	ifIndex int
	at      time.Time
	refused bool // no datagram: a unicast we sent to src was refused (transport.Packet.Refused)
	// forged: a message under our ID that says what we did not; the
	// owner answers it with our true announcement (refuteClaim).
	forged bool
}

// receive reads datagrams, decodes them and hands them to the owner. Bad
// ones are counted and dropped here.
func (g *Group) receive() {
	defer g.wg.Done()
	buf := make([]byte, receiveBuffer)
	// in is reused: Decode takes a pointer through an interface, which
	// would move a per-datagram variable to the heap.
	in := new(inbound)
	for {
		pkt, err := g.cfg.Transport.Receive(buf)
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
				return
			}
			if errors.Is(err, transport.ErrTruncated) {
				g.stats.drop(DropOversize)
				continue
			}
			g.stats.drop(DropReceiveError)
			g.log.Debug("receive failed", "error", err)
			// Don't spin on an error that repeats.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-g.ctx.Done():
				return
			}
			continue
		}
		if pkt.Refused {
			// No datagram: the ping protocol's hint that a member died.
			if g.pinging() {
				select {
				case g.inbox <- inbound{src: pkt.Src, at: time.Now(), refused: true}:
				case <-g.ctx.Done():
					return
				}
			}
			continue
		}
		if !g.ingest(buf[:pkt.N], pkt, in) || g.full(in) {
			continue
		}
		select {
		case g.inbox <- *in:
		case <-g.ctx.Done():
			return
		}
	}
}

// ingest decodes one datagram into in, counting it, and reports whether the
// owner should see it.
func (g *Group) ingest(b []byte, pkt transport.Packet, in *inbound) bool {
	g.stats.received.Add(1)
	if err := g.cfg.Codec.Decode(b, &in.msg); err != nil {
		g.stats.drop(dropReason(err))
		g.log.Trace("dropped datagram", "from", pkt.Src, "error", err)
		return false
	}
	g.stats.decoded.Add(1)
	in.forged = false
	switch {
	case in.msg.Group != g.cfg.Name:
		g.stats.drop(DropForeignGroup)
		return false
	case in.msg.ID == g.me().ID:
		g.stats.drop(DropSelf)
		if g.cfg.Passive || !g.forgedSelfClaim(&in.msg) || !g.claims.take(time.Now(), claimRate, 1) {
			return false
		}
		in.forged = true
	}
	in.src, in.dst, in.ifIndex, in.at = pkt.Src, pkt.Dst, pkt.IfIndex, time.Now()
	return true
}

// full drops, in the receiver, announcements of new peers while the Group
// cannot take any: under a flood of forged peers the owner then never sees
// them, and keeps up with the real members' announcements.
func (g *Group) full(in *inbound) bool {
	if !g.noRoom.Load() || in.msg.Kind == codec.Goodbye {
		return false
	}
	g.mu.RLock()
	_, known := g.peers[in.msg.ID]
	g.mu.RUnlock()
	if !known && in.msg.Health != "" {
		g.stats.drop(DropPeerCap)
		return true
	}
	return false
}

// updateRoom tells the receiver whether new peers can be taken. The owner
// calls it whenever the peer counts change.
func (g *Group) updateRoom() {
	// A full pending pool makes room for new peers (track): only a table
	// full of members refuses them.
	g.noRoom.Store(len(g.peers) >= g.cfg.MaxPeers && g.pending == 0)
}

// dropReason says under which reason a Decode error is counted: the one
// its codec.DropReasoner names, or DropRejected when it names none we know.
func dropReason(err error) DropReason {
	var dr codec.DropReasoner
	if errors.As(err, &dr) {
		if r, ok := dropReasons[dr.DropReason()]; ok {
			return r
		}
	}
	return DropRejected
}
