package mdns

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// packMessages packs records into as many messages as it takes for each
// to be at most limit bytes. A query's questions go in the first message
// only, and every message but the last has the TC bit, saying that more
// known answers follow (RFC 6762 §7.2); a response repeats qs (a legacy
// unicast response echoes its question) in each. A record too large for
// any message (more than MaxMessage bytes even alone) is dropped and
// counted in dropped.
func packMessages(hdr dns.MsgHdr, qs []dns.Question, answers, extra []dns.RR, limit int, query bool) (out [][]byte, dropped int) {
	newMsg := func(first bool) *dns.Msg {
		m := &dns.Msg{MsgHdr: hdr, Compress: true}
		if first || !query {
			m.Question = qs
		}
		return m
	}
	msgs := []*dns.Msg{newMsg(true)}
	add := func(rr dns.RR, extraSection bool) {
		m := msgs[len(msgs)-1]
		sect := func(m *dns.Msg) *[]dns.RR {
			if extraSection {
				return &m.Extra
			}
			return &m.Answer
		}
		*sect(m) = append(*sect(m), rr)
		if m.Len() <= limit {
			return
		}
		if len(m.Answer)+len(m.Extra) > 1 {
			*sect(m) = (*sect(m))[:len(*sect(m))-1]
			m = newMsg(false)
			msgs = append(msgs, m)
			*sect(m) = append(*sect(m), rr)
		}
		if m.Len() > MaxMessage {
			*sect(m) = (*sect(m))[:len(*sect(m))-1]
			dropped++
		}
	}
	for _, rr := range answers {
		add(rr, false)
	}
	for _, rr := range extra {
		add(rr, true)
	}
	if last := msgs[len(msgs)-1]; len(msgs) > 1 && len(last.Answer)+len(last.Extra) == 0 {
		msgs = msgs[:len(msgs)-1] // its only record was dropped
	}
	for i, m := range msgs {
		m.Truncated = query && i < len(msgs)-1
		b, err := m.Pack()
		if err != nil {
			dropped += len(m.Answer) + len(m.Extra)
			continue
		}
		out = append(out, b)
	}
	return out, dropped
}

// responseHdr is the header of a multicast or plain unicast response (RFC
// 6762 §18): ID 0, QR and AA set.
var responseHdr = dns.MsgHdr{Response: true, Authoritative: true}

// rrs converts records to github.com/miekg/dns records with the engine's
// TTL, or ttl when it is not negative; unique records (all but PTR) get
// the cache-flush bit when flush is set.
func (e *engine) rrs(recs []record, ttl int64, flush bool) []dns.RR {
	out := make([]dns.RR, 0, len(recs))
	t := e.ttl
	if ttl >= 0 {
		t = uint32(ttl)
	}
	for i := range recs {
		if rr := recs[i].rr(t, flush && recs[i].Type != dns.TypePTR); rr != nil {
			out = append(out, rr)
		}
	}
	return out
}

// multicast sends msgs to the group on link l in family f, and notes when
// the records in recs went out there.
func (e *engine) multicast(l *iface, f *family, msgs [][]byte, recs []record, now time.Time) {
	ok := false
	for _, b := range msgs {
		if err := f.mc.multicast(b, &l.ifi, f.group); err != nil {
			e.c.st.sendFailures.Add(1)
			e.c.log.Debug("multicast failed", "interface", l.ifi.Name, "ipv6", f.v6, "error", err)
			continue
		}
		ok = true
	}
	if ok {
		for i := range recs {
			e.sent[sentKey{recs[i].key(), l.ifi.Index, f.v6}] = now
		}
	}
}

// eachLink calls fn for every link and family the group is joined on.
func (e *engine) eachLink(fn func(l *iface, f *family)) {
	for _, l := range e.c.linkList() {
		for _, f := range e.c.fams {
			if l.on[famIndex(f.v6)] {
				fn(l, f)
			}
		}
	}
}

// unicast sends msgs to dst from the mDNS port of dst's family.
func (e *engine) unicast(dst netip.AddrPort, msgs [][]byte) error {
	f := e.c.family(!dst.Addr().Unmap().Is4())
	if f == nil {
		return fmt.Errorf("mdns: send to %s: the address family is not in use", dst)
	}
	dst = e.c.zoned(dst)
	for _, b := range msgs {
		if err := f.mc.writeTo(b, dst); err != nil {
			e.c.st.sendFailures.Add(1)
			return e.c.sendErr(fmt.Errorf("mdns: send to %s: %w", dst, err))
		}
	}
	return nil
}

// recentlySent reports whether the record set of r was multicast on link
// ifIndex in family v6 less than d ago.
func (e *engine) recentlySent(r *record, ifIndex int, v6 bool, d time.Duration, now time.Time) bool {
	at, ok := e.sent[sentKey{r.key(), ifIndex, v6}]
	return ok && now.Sub(at) < d
}
