package mdns

import (
	"fmt"
	"net/netip"
	"time"
)

// packMessages packs records into as many messages as it takes for each
// to be at most limit bytes. A query's questions go in the first message
// only, and every message but the last has the TC bit, saying that more
// known answers follow (RFC 6762 §7.2); a response repeats qs (a legacy
// unicast response echoes its question) in each. Records go with their
// TTL and cache-flush bit. A record too large for any message (more than
// MaxMessage bytes even alone), or that does not pack, is dropped and
// counted in dropped.
func packMessages(h msgHeader, qs []question, answers, extra []record, limit int, query bool) (out [][]byte, dropped int) {
	var w *msgWriter
	start := func(first bool) bool {
		w = newMsgWriter(h.id, h.flags)
		if first || !query {
			for _, q := range qs {
				if w.question(q) != nil {
					return false
				}
			}
		}
		return true
	}
	if !start(true) {
		return nil, len(answers) + len(extra)
	}
	add := func(sec int, r *record) {
		for {
			mark := len(w.b)
			if w.record(sec, r) != nil {
				dropped++
				return
			}
			if n := len(w.b); n <= limit || (w.records() == 1 && n <= MaxMessage) {
				return
			}
			w.unrecord(sec, mark)
			if w.records() == 0 {
				dropped++ // too large even alone
				return
			}
			out = append(out, w.finish())
			if !start(false) {
				dropped++
				return
			}
		}
	}
	for i := range answers {
		add(secAnswer, &answers[i])
	}
	for i := range extra {
		add(secAdditional, &extra[i])
	}
	if len(out) == 0 || w.records() > 0 {
		out = append(out, w.finish())
	}
	if query {
		for _, b := range out[:len(out)-1] {
			b[2] |= flagTruncated >> 8
		}
	}
	return out, dropped
}

// packProbe packs a probe: questions qs and, in the authority section, the
// records proposed (RFC 6762 §8.1), in one message.
func packProbe(qs []question, recs []record) ([]byte, error) {
	w := newMsgWriter(0, 0)
	for _, q := range qs {
		if err := w.question(q); err != nil {
			return nil, err
		}
	}
	for i := range recs {
		if err := w.record(secAuthority, &recs[i]); err != nil {
			return nil, err
		}
	}
	return w.finish(), nil
}

// msgHeader is the ID and flags of a message to send.
type msgHeader struct {
	id, flags uint16
}

// responseHdr is the header of a multicast or plain unicast response (RFC
// 6762 §18): ID 0, QR and AA set.
var responseHdr = msgHeader{flags: flagResponse | flagAuthoritative}

// stamped returns copies of recs with the engine's TTL, or ttl when it is
// not negative; unique records (all but PTR) get the cache-flush bit when
// flush is set.
func (e *engine) stamped(recs []record, ttl int64, flush bool) []record {
	out := make([]record, len(recs))
	t := e.ttl
	if ttl >= 0 {
		t = uint32(ttl)
	}
	for i := range recs {
		out[i] = recs[i]
		out[i].TTL = t
		out[i].Flush = flush && recs[i].Type != typePTR
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
