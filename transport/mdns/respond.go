package mdns

import (
	"time"
)

// pendingResponse is a multicast response waiting for its random delay
// (RFC 6762 §6: 20-120 ms when the answer is a shared record).
type pendingResponse struct {
	at      time.Time
	ifIndex int
	v6      bool
	answers []record
	extra   []record
}

// heldQuery is a query with the TC bit, waiting 400-500 ms for the rest of
// its known answers (RFC 6762 §7.2).
type heldQuery struct {
	at time.Time
	in inbound
}

// query handles a received query: it holds a truncated one for its known
// answers, and answers the rest.
func (e *engine) query(in inbound, now time.Time) {
	if h := e.held[in.src]; h != nil {
		// More known answers of a held query (or a new query from the same
		// querier, which ends the wait).
		h.in.msg.Answers = append(h.in.msg.Answers, in.msg.Answers...)
		if len(in.msg.Questions) == 0 {
			if !in.msg.TC {
				h.at = now
			}
			return
		}
		delete(e.held, in.src)
		e.answer(h.in, now)
	}
	if in.msg.TC && len(in.msg.Questions) > 0 {
		e.held[in.src] = &heldQuery{at: now.Add(knownAnswerTC), in: in}
		return
	}
	e.answer(in, now)
}

func (e *engine) heldDue(now time.Time) {
	for src, h := range e.held {
		if !h.at.After(now) {
			delete(e.held, src)
			e.answer(h.in, now)
		}
	}
}

// answer answers a query with the records of the publication that it asks
// for, as RFC 6762 says: known answers the querier holds with at least
// half their TTL left are left out (§7.1); a querier on another port than
// the mDNS port gets a legacy unicast response, with its ID and question
// and TTLs of at most 10 s (§6.7); a question with the unicast-response bit
// gets a unicast response when the record was multicast on the link within
// a quarter of its TTL, else a multicast one (§5.4); a multicast response
// skips records multicast on the link less than a second ago (a quarter
// second when defending against a probe) and waits 20-120 ms when it holds
// a shared record (§6).
func (e *engine) answer(in inbound, now time.Time) {
	p := e.pub
	if p == nil || p.state == probing {
		return
	}
	l := e.c.link(in.ifIndex)
	if l == nil {
		if in.ifIndex != 0 {
			return // an interface we do not use
		}
		l = e.linkFor(in.src.Addr())
		if l == nil {
			return
		}
	}
	m := in.msg
	recs := e.records(p, l)
	enum := record{Name: enumName, Type: typePTR, Target: e.c.svc.fqdn()}

	type answer struct {
		r  record
		qu bool
	}
	var answers []answer
	add := func(r record, qu bool) {
		for i := range answers {
			if answers[i].r.sameData(&r) {
				answers[i].qu = answers[i].qu && qu
				return
			}
		}
		answers = append(answers, answer{r, qu})
	}
	for _, q := range m.Questions {
		if matches(q, &enum) {
			add(enum, q.QU)
		}
		for i := range recs {
			if matches(q, &recs[i]) {
				add(recs[i], q.QU)
			}
		}
	}
	if len(answers) == 0 {
		return
	}
	known := func(r *record) bool {
		for i := range m.Answers {
			if m.Answers[i].sameData(r) && m.Answers[i].TTL >= e.ttl/2 {
				return true
			}
		}
		return false
	}
	kept := answers[:0]
	for _, a := range answers {
		if known(&a.r) {
			e.c.st.suppressed.Add(1)
			continue
		}
		kept = append(kept, a)
	}
	answers = kept
	if len(answers) == 0 {
		return
	}

	// Additional records (RFC 6763 §12): for a PTR to the instance, its
	// SRV, TXT and addresses; for an SRV, the addresses; for an address,
	// the other family's.
	var extra []record
	inAnswers := func(r *record) bool {
		for i := range answers {
			if answers[i].r.sameData(r) {
				return true
			}
		}
		return false
	}
	for _, a := range answers {
		for i := range recs {
			r := &recs[i]
			var want bool
			switch a.r.Type {
			case typePTR:
				want = a.r.Name != enumName && r.Type != typePTR
			case typeSRV:
				want = r.Type == typeA || r.Type == typeAAAA
			case typeA, typeAAAA:
				want = (r.Type == typeA || r.Type == typeAAAA) && r.Type != a.r.Type
			}
			if want && !inAnswers(r) && !known(r) && !containsRecord(extra, r) {
				extra = append(extra, *r)
			}
		}
	}

	if in.src.Port() != e.c.cfg.Port {
		rs := make([]record, 0, len(answers))
		for _, a := range answers {
			rs = append(rs, a.r)
		}
		e.legacyAnswer(in, rs, extra)
		return
	}
	quarter := time.Duration(e.ttl) * time.Second / 4
	var uni, multi []record
	for _, a := range answers {
		if a.qu && e.recentlySent(&a.r, l.ifi.Index, in.v6, quarter, now) {
			uni = append(uni, a.r)
		} else {
			multi = append(multi, a.r)
		}
	}
	if len(uni) > 0 {
		msgs, _ := packMessages(responseHdr, nil, e.stamped(uni, -1, true), e.stamped(extra, -1, true), e.c.cfg.MaxMessage, false)
		e.c.st.answered.Add(1)
		if err := e.unicast(in.src, msgs); err != nil {
			e.c.log.Debug("unicast answer failed", "to", in.src, "error", err)
		}
		if len(multi) == 0 {
			return
		}
		extra = nil // sent already
	}
	defense := len(m.Authority) > 0
	multi = e.notRecent(multi, l.ifi.Index, in.v6, defense, now)
	if len(multi) == 0 {
		return
	}
	pr := &pendingResponse{at: now, ifIndex: l.ifi.Index, v6: in.v6, answers: multi, extra: extra}
	for i := range multi {
		if multi[i].Type == typePTR && !defense {
			pr.at = now.Add(jitter(20*time.Millisecond, 120*time.Millisecond))
			break
		}
	}
	if !pr.at.After(now) {
		e.sendPending(pr, now)
		return
	}
	e.pending = append(e.pending, pr)
}

func containsRecord(rs []record, r *record) bool {
	for i := range rs {
		if rs[i].sameData(r) {
			return true
		}
	}
	return false
}

// notRecent drops the records multicast on the link less than a second
// ago, or a quarter second when defending our names against a probe.
func (e *engine) notRecent(rs []record, ifIndex int, v6, defense bool, now time.Time) []record {
	gap := multicastGap
	if defense {
		gap = defenseGap
	}
	out := rs[:0:0]
	for i := range rs {
		if e.recentlySent(&rs[i], ifIndex, v6, gap, now) {
			e.c.st.suppressed.Add(1)
			continue
		}
		out = append(out, rs[i])
	}
	return out
}

func (e *engine) pendingDue(now time.Time) {
	kept := e.pending[:0]
	for _, pr := range e.pending {
		if pr.at.After(now) {
			kept = append(kept, pr)
			continue
		}
		pr.answers = e.notRecent(pr.answers, pr.ifIndex, pr.v6, false, now)
		if len(pr.answers) > 0 {
			e.sendPending(pr, now)
		}
	}
	clear(e.pending[len(kept):])
	e.pending = kept
}

// sendPending multicasts a response on its link and family.
func (e *engine) sendPending(pr *pendingResponse, now time.Time) {
	l, f := e.c.link(pr.ifIndex), e.c.family(pr.v6)
	if l == nil || f == nil || !l.on[famIndex(pr.v6)] {
		return
	}
	msgs, _ := packMessages(responseHdr, nil, e.stamped(pr.answers, -1, true), e.stamped(pr.extra, -1, true), e.c.cfg.MaxMessage, false)
	e.c.st.answered.Add(1)
	e.multicast(l, f, msgs, append(pr.answers, pr.extra...), now)
}

// legacyAnswer answers a one-shot querier (RFC 6762 §6.7) by unicast: its
// ID and questions echoed, TTLs of at most 10 s, no cache-flush bits.
func (e *engine) legacyAnswer(in inbound, answers, extra []record) {
	ttl := int64(min(e.ttl, legacyTTL))
	hdr := responseHdr
	hdr.id = in.msg.ID
	qs := make([]question, 0, len(in.msg.Questions))
	for _, q := range in.msg.Questions {
		qs = append(qs, question{Name: q.Name, Type: q.Type}) // QU clear
	}
	msgs, _ := packMessages(hdr, qs, e.stamped(answers, ttl, false), e.stamped(extra, ttl, false), e.c.cfg.MaxMessage, false)
	e.c.st.answered.Add(1)
	if err := e.unicast(in.src, msgs); err != nil {
		e.c.log.Debug("legacy answer failed", "to", in.src, "error", err)
	}
}
