package discovery

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// unspecifiedHost reports whether u's host is empty, 0.0.0.0 or [::]: a
// listener bound to every address, which peers cannot dial as such. ipv4
// says whether only IPv4 addresses can stand in for it.
func unspecifiedHost(u *url.URL) (unspecified, ipv4 bool) {
	if u == nil {
		return false, false
	}
	h := u.Hostname()
	if h == "" {
		return true, false
	}
	a, err := netip.ParseAddr(h)
	if err != nil || !a.IsUnspecified() {
		return false, false
	}
	return true, a.Is4()
}

// withAddr returns a copy of u whose host is addr, port kept.
func withAddr(u *url.URL, addr netip.Addr) *url.URL {
	c := cloneURL(u)
	if p := u.Port(); p != "" {
		c.Host = net.JoinHostPort(addr.String(), p)
	} else if addr.Is6() {
		c.Host = "[" + addr.String() + "]"
	} else {
		c.Host = addr.String()
	}
	return c
}

// usable reports whether the Group can advertise link l's address.
func (g *Group) usable(l transport.Link) bool {
	return l.Addr.IsValid() && (!g.v4Only || l.Addr.Is4())
}

// selfVia returns our record as seen through link l: unspecified hosts
// replaced by the link's address.
func (g *Group) selfVia(l transport.Link) Peer {
	p := *g.me()
	if u, _ := unspecifiedHost(p.HealthURI); u {
		p.HealthURI = withAddr(p.HealthURI, l.Addr)
	}
	if u, _ := unspecifiedHost(p.CommsURI); u {
		p.CommsURI = withAddr(p.CommsURI, l.Addr)
	}
	return p
}

// encodeFor encodes our message of the given kind as seen through link l:
// unspecified hosts replaced by the link's address. Like every message, it
// is encoded anew for each send: a codec may make each encoding unique
// (codec/auth numbers them), and a receiver drops a copy as a replay.
func (g *Group) encodeFor(kind codec.Kind, extended bool, l transport.Link) ([]byte, error) {
	p := g.selfVia(l)
	m := codec.Message{
		Kind: kind, Group: g.cfg.Name, ID: p.ID,
		Health: p.HealthURI.String(), Comms: p.CommsURI.String(), Meta: p.Meta,
		Extended: extended,
	}
	g.selfArgs(&m)
	return g.cfg.Codec.Encode(nil, &m)
}

// announceNow multicasts our announcement (periodic, boot, refutation),
// logging a failure: the next one goes anyway.
func (g *Group) announceNow() {
	if err := g.sendSelf(codec.Announce, false); err != nil {
		g.log.Debug("announce failed", "error", err)
	}
}

// sendSelf multicasts our announcement or query, in the extension form
// when extended (codec.Message.Extended), unless we are leaving. When our
// URIs name no address, each link gets its own, carrying that link's
// address.
func (g *Group) sendSelf(kind codec.Kind, extended bool) error {
	if g.leaving.Load() {
		// After our goodbye, an announcement (periodic, a report, an
		// Update's) would make the members that removed us track us again.
		return nil
	}
	if g.links == nil {
		b, err := g.encodeSelf(kind, extended)
		if err != nil {
			return err
		}
		return g.send(b)
	}
	var firstErr error
	sent := false
	for _, l := range g.links.Links() {
		if !g.usable(l) {
			continue
		}
		b, err := g.encodeFor(kind, extended, l)
		if err == nil {
			err = g.links.SendVia(b, l)
			g.countSend(err)
		}
		if err != nil {
			g.log.Debug("send failed", "link", l.Name, "error", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sent = true
	}
	if sent {
		return nil
	}
	return firstErr // nil when there is no usable link yet: nothing to say
}

// localizeZone gives a link-local health or comms address the zone of the
// interface the announcement arrived on: the sender's zone names its own
// interface, which means nothing here.
func localizeZone(u *url.URL, in *inbound) {
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil || !a.Is6() || !(a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
		return
	}
	zone := in.src.Addr().Zone()
	if zone == "" && in.ifIndex > 0 {
		zone = strconv.Itoa(in.ifIndex)
	}
	if zone == "" {
		return
	}
	*u = *withAddr(u, a.WithZone(zone))
}
