package mdns

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/pirlan/pir/codec"
)

// instance is a service instance the Conn browses: one PTR record of the
// browsed name points to it.
type instance struct {
	name    string   // as the PTR record names it
	key     string   // name in lower case
	id      string   // the pir ID last delivered; "" before the first delivery
	gone    bool     // a goodbye was delivered; waiting for fresh records
	other   bool     // a pir member of another group: never delivered
	foreign bool     // not a pir member: software that publishes no TXT id
	health  foundKey // the health URI synthesized for it (SchemeAdvertised); zero for a pir member's own

	// A goodbye for a delivered instance, and records that bring back an
	// instance said goodbye to, are believed only after a check (see
	// checkBye): checkAt is when the check's next step is due, zero when
	// none runs; checkStep the step; checkIDs the IDs of the one-shot
	// queries it sent; revive whether it decides a return rather than a
	// goodbye; byeSrc and byeIf where the goodbye came from.
	checkAt   time.Time
	checkStep int
	checkIDs  [2]uint16
	revive    bool
	byeSrc    netip.AddrPort
	byeIf     int

	addr    netip.Addr        // the address chosen for its host, kept while it is valid
	src     [2]netip.AddrPort // the latest responder of each family
	ifIndex [2]int
	asked   time.Time // the latest resolution query
	asks    int       // resolution queries since the instance was last refreshed

	// from and fromIf are the source and interface its latest delivery
	// came from (synthesize's, often vouched): its goodbye comes from
	// there too, since a Group takes a goodbye only from the address it
	// knows the member by.
	from   netip.AddrPort
	fromIf int
}

// ask is a question to send in the next query.
type ask struct {
	name string
	typ  uint16
	at   time.Time
}

// ask schedules a question for time at, unless it is already due sooner.
func (e *engine) ask(name string, typ uint16, at time.Time) {
	k := rrKey{lower(name), typ}
	if a, ok := e.asks[k]; ok && !a.at.After(at) {
		return
	}
	e.asks[k] = ask{name: name, typ: typ, at: at}
	if e.asksAt.IsZero() || at.Before(e.asksAt) {
		e.asksAt = at
	}
}

// queryNow moves the next browse query to within 20-120 ms and starts its
// backoff afresh.
func (e *engine) queryNow(now time.Time) {
	e.queryGap = time.Second
	if at := now.Add(jitter(20*time.Millisecond, 120*time.Millisecond)); at.Before(e.queryAt) {
		e.queryAt = at
	}
}

// browseDue sends the browse query when due, with the PTR records the
// Conn already knows as known answers (RFC 6762 §7.1), and any question
// of resolution or cache maintenance that is due, in one query per link.
// Browse queries repeat at intervals that double from 1 s to an hour
// (§5.2).
func (e *engine) browseDue(now time.Time) {
	var qs []question
	var known []record
	if !e.queryAt.After(now) {
		qs = append(qs, question{Name: e.c.browse, Type: typePTR})
		for _, en := range e.cache.live(rrKey{lower(e.c.browse), typePTR}, now) {
			left := en.expires.Sub(now)
			if left > en.ttl/2 {
				k := en.rec
				k.TTL, k.Flush = uint32(left/time.Second), false
				known = append(known, k)
			}
		}
		e.queryAt = now.Add(e.queryGap)
		e.queryGap = min(2*e.queryGap, maxQueryGap)
	}
	if !e.asksAt.IsZero() && !e.asksAt.After(now) {
		e.asksAt = time.Time{}
		for k, a := range e.asks {
			if !a.at.After(now) {
				qs = append(qs, question{Name: a.name, Type: a.typ})
				delete(e.asks, k)
			} else if e.asksAt.IsZero() || a.at.Before(e.asksAt) {
				e.asksAt = a.at
			}
		}
	}
	if len(qs) == 0 {
		return
	}
	e.eachLink(func(l *iface, f *family) {
		msgs, _ := packMessages(msgHeader{}, qs, known, nil, e.c.cfg.MaxMessage, true)
		e.multicast(l, f, msgs, nil, now)
	})
}

// response caches what a response says about the browsed instances and
// hands Receive what changed.
func (e *engine) response(in inbound, now time.Time) {
	m := in.msg
	recs := make([]record, 0, len(m.Answers)+len(m.Additional))
	recs = append(append(recs, m.Answers...), m.Additional...)
	e.checkConflicts(recs, now)

	var ownInst, ownHost string
	if p := e.pub; p != nil {
		ownInst, ownHost = lower(p.instFQDN(e.c.svc)), lower(p.hostFQDN())
	}
	browse := lower(e.c.browse)
	suffix := "." + lower(e.c.svc.fqdn())
	targets := make(map[string]bool)
	for i := range recs {
		if recs[i].Type == typeSRV && strings.HasSuffix(lower(recs[i].Name), suffix) {
			targets[lower(recs[i].Target)] = true
		}
	}
	var relevant []record
	for _, r := range recs {
		n := lower(r.Name)
		if n == ownInst || n == ownHost {
			continue
		}
		var ok bool
		switch r.Type {
		case typePTR:
			ok = n == browse
		case typeSRV, typeTXT:
			ok = strings.HasSuffix(n, suffix)
		case typeA, typeAAAA:
			ok = targets[n] || e.isTarget(n, now)
		}
		if ok {
			relevant = append(relevant, r)
		}
	}
	if len(relevant) == 0 {
		return
	}

	flushed := make(map[rrKey]bool)
	for _, r := range relevant {
		if k := r.key(); r.Flush && r.TTL > 0 && !flushed[k] {
			flushed[k] = true
			var keep []record
			for _, o := range relevant {
				if o.key() == k {
					keep = append(keep, o)
				}
			}
			e.cache.flush(k, keep, now)
		}
	}

	fi := famIndex(in.v6)
	touched := make(map[string]bool)
	byes := make(map[string]bool)
	for _, r := range relevant {
		if r.TTL == 0 {
			e.cache.bye(r, now)
			switch r.Type {
			case typePTR:
				byes[lower(r.Target)] = true
			case typeSRV:
				byes[lower(r.Name)] = true
			}
			continue
		}
		_, ok := e.cache.put(r, in, now)
		if !ok {
			e.evict(now)
			_, ok = e.cache.put(r, in, now)
		}
		if !ok {
			e.c.st.cacheFull.Add(1)
			continue
		}
		switch r.Type {
		case typePTR:
			k := lower(r.Target)
			inst := e.insts[k]
			if inst == nil {
				inst = &instance{name: r.Target, key: k}
				e.insts[k] = inst
			}
			inst.asks = 0
			inst.src[fi], inst.ifIndex[fi] = in.src, in.ifIndex
			touched[k] = true
		case typeSRV, typeTXT:
			k := lower(r.Name)
			if inst := e.insts[k]; inst != nil {
				inst.src[fi], inst.ifIndex[fi] = in.src, in.ifIndex
			}
			touched[k] = true
		case typeA, typeAAAA:
			for k, inst := range e.insts {
				if srv := e.cache.newest(rrKey{k, typeSRV}, now); srv != nil && strings.EqualFold(srv.rec.Target, r.Name) {
					touched[inst.key] = true
				}
			}
		}
	}
	settled := make(map[string]bool)
	for k := range touched {
		if inst := e.checks[k]; inst != nil && !byes[k] && in.direct && inst.checkedBy(m.ID) && e.answered(inst, now) {
			e.settle(inst, now) // the instance answered the check
			settled[k] = true
		}
	}
	for k := range byes {
		if inst := e.insts[k]; inst != nil {
			e.checkBye(inst, in.src, in.ifIndex, now)
		}
	}
	for k := range touched {
		inst := e.insts[k]
		switch {
		case inst == nil || byes[k] || settled[k]:
		case inst.gone && inst.id != "":
			// Records of an instance that said goodbye: perhaps it is
			// back, perhaps a responder sent answers it had queued before
			// its goodbye (python-zeroconf 0.47 does). Only the instance
			// itself can tell.
			e.checkReturn(inst, now)
		default:
			e.deliver(inst, now)
		}
	}
}

// isTarget reports whether the host name n (lower case) is the target of
// a browsed instance's SRV record.
func (e *engine) isTarget(n string, now time.Time) bool {
	for k := range e.insts {
		if srv := e.cache.newest(rrKey{k, typeSRV}, now); srv != nil && lower(srv.rec.Target) == n {
			return true
		}
	}
	return false
}

// cacheDue expires records and sends cache-maintenance queries for those
// that describe a browsed instance.
func (e *engine) cacheDue(now time.Time) {
	if at := e.cache.next(); at.IsZero() || at.After(now) {
		return
	}
	e.forget(e.cache.expire(now))
	e.cache.maintain(now, func(en *entry) {
		var wanted bool
		switch n := lower(en.rec.Name); en.rec.Type {
		case typePTR:
			wanted = n == lower(e.c.browse)
		case typeSRV, typeTXT:
			wanted = e.insts[n] != nil
		case typeA, typeAAAA:
			wanted = e.isTarget(n, now)
		}
		if wanted {
			e.ask(en.rec.Name, en.rec.Type, now)
		}
	})
}

// forget drops the instances whose last PTR record is among gone (expired
// or evicted), unless a goodbye check holds them.
func (e *engine) forget(gone []*entry) {
	for _, en := range gone {
		if en.rec.Type != typePTR || lower(en.rec.Name) != lower(e.c.browse) {
			continue
		}
		k := lower(en.rec.Target)
		inst := e.insts[k]
		if inst == nil || !inst.checkAt.IsZero() || e.pointsTo(k) {
			continue
		}
		delete(e.insts, k)
		if inst.id != "" && !inst.gone {
			// No goodbye came: the Group expires the member, as it does a
			// pir member that fell silent.
			e.c.log.Debug("instance expired", "instance", inst.name, "id", inst.id)
			e.event("expired", inst.name)
		}
	}
}

// evict makes room in a full cache: it removes the records received
// longest ago among those that describe no delivered instance (a flood of
// forged records, instances never resolved, pir members of other groups),
// a sixteenth of the cache at once. The records of delivered instances
// stay; when there is nothing else, the new record is refused.
func (e *engine) evict(now time.Time) {
	keep := e.protected(now)
	gone := e.cache.evict(e.cache.max/evictShare, func(en *entry) bool { return keep[en] })
	if len(gone) == 0 {
		return
	}
	e.c.st.evicted.Add(uint64(len(gone)))
	e.c.log.Debug("cache full: evicted records", "records", len(gone))
	e.forget(gone)
}

// protected returns the cached records of the instances delivered and not
// said goodbye to: their PTR, SRV and TXT records and their hosts'
// addresses.
func (e *engine) protected(now time.Time) map[*entry]bool {
	keep := make(map[*entry]bool)
	ptrs := e.cache.ptrs[rrKey{lower(e.c.browse), typePTR}]
	mark := func(ens []*entry) {
		for _, en := range ens {
			keep[en] = true
		}
	}
	for k, inst := range e.insts {
		if inst.id == "" || inst.gone || inst.other {
			continue
		}
		if en := ptrs[k]; en != nil {
			keep[en] = true
		}
		mark(e.cache.sets[rrKey{k, typeTXT}])
		for _, srv := range e.cache.sets[rrKey{k, typeSRV}] {
			keep[srv] = true
			host := lower(srv.rec.Target)
			mark(e.cache.sets[rrKey{host, typeA}])
			mark(e.cache.sets[rrKey{host, typeAAAA}])
		}
	}
	return keep
}

// Checking a goodbye. Anyone on the link can send a record with TTL 0, so a
// goodbye for an instance that was delivered is not delivered at once: the
// Conn asks the link for the instance's PTR, SRV and TXT records, at once
// and again after checkRecheck, in a one-shot query from its ephemeral port
// (RFC 6762 §6.7). Responders answer such a query at once, by unicast to
// that port, echoing its ID. A responder that is still there answers with
// its records, which refutes the goodbye; when checkDeadline has passed
// without such an answer, the goodbye is delivered. A real goodbye thus
// reaches the Group after checkDeadline instead of at once.
//
// Only a direct answer counts. Records that come by multicast meanwhile do
// not refute the goodbye: python-zeroconf 0.47 queues its multicast answers
// for up to 1.5 s to aggregate them, and sends those queued before its
// goodbye after it, with their full TTLs. For the same reason records of an
// instance whose goodbye was delivered bring it back only when it answers a
// check of its own (checkReturn): a real return (the service registered
// again) answers, the stale records of a responder that left do not.
const (
	checkRecheck  = 250 * time.Millisecond
	checkDeadline = 500 * time.Millisecond
)

// checkBye starts the check of a goodbye for inst from src, or, for an
// instance never delivered, just marks it gone.
func (e *engine) checkBye(inst *instance, src netip.AddrPort, ifIndex int, now time.Time) {
	if inst.id == "" || inst.gone {
		inst.gone = true
		return
	}
	if !inst.checkAt.IsZero() {
		return // a check runs already
	}
	e.c.log.Debug("checking a goodbye", "instance", inst.name, "id", inst.id, "from", src)
	inst.byeSrc, inst.byeIf = src, ifIndex
	e.startCheck(inst, false, now)
}

// checkReturn starts the check of records that bring back inst, whose
// goodbye was delivered, unless one runs.
func (e *engine) checkReturn(inst *instance, now time.Time) {
	if !inst.checkAt.IsZero() {
		return
	}
	e.c.log.Debug("checking a return", "instance", inst.name, "id", inst.id)
	e.startCheck(inst, true, now)
}

// startCheck starts a check of inst: a goodbye's, or a return's when
// revive is set.
func (e *engine) startCheck(inst *instance, revive bool, now time.Time) {
	inst.checkAt, inst.checkStep, inst.revive = now.Add(checkRecheck), 0, revive
	inst.checkIDs[0] = e.askInstance(inst)
	e.checks[inst.key] = inst
}

// checkedBy reports whether id is the ID of a one-shot query inst's check sent.
func (inst *instance) checkedBy(id uint16) bool {
	return id == inst.checkIDs[0] || (inst.checkStep > 0 && id == inst.checkIDs[1])
}

// askInstance asks every link for inst's PTR, SRV and TXT records in a
// one-shot (legacy) query from the ephemeral port, which responders answer
// by unicast, and returns the query's ID.
func (e *engine) askInstance(inst *instance) uint16 {
	qs := []question{
		{Name: e.c.browse, Type: typePTR},
		{Name: inst.name, Type: typeSRV},
		{Name: inst.name, Type: typeTXT},
	}
	hdr := msgHeader{id: uint16(rand.Uint32())}
	msgs, _ := packMessages(hdr, qs, nil, nil, e.c.cfg.MaxMessage, true)
	e.eachLink(func(l *iface, f *family) {
		for _, b := range msgs {
			if err := f.tx.multicast(b, &l.ifi, f.group); err != nil {
				e.c.st.sendFailures.Add(1)
				e.c.log.Debug("multicast failed", "interface", l.ifi.Name, "ipv6", f.v6, "error", err)
			}
		}
	})
	return hdr.id
}

// byeDue runs the steps of the checks that are due.
func (e *engine) byeDue(now time.Time) {
	for _, inst := range e.checks {
		if inst.checkAt.After(now) {
			continue
		}
		if inst.checkStep == 0 {
			inst.checkStep, inst.checkAt = 1, now.Add(checkDeadline-checkRecheck)
			inst.checkIDs[1] = e.askInstance(inst)
			continue
		}
		e.endCheck(inst, false, now)
	}
}

// settle ends the check of inst, which answered it: a goodbye is refuted,
// a return is delivered.
func (e *engine) settle(inst *instance, now time.Time) {
	e.endCheck(inst, true, now)
}

// endCheck ends the check of inst. When the instance answered, a goodbye
// is refuted and a return delivered; when it did not, the goodbye is
// delivered and a return ignored.
func (e *engine) endCheck(inst *instance, answered bool, now time.Time) {
	inst.checkAt = time.Time{}
	delete(e.checks, inst.key)
	switch {
	case answered && inst.revive:
		e.c.log.Debug("instance is back: it answered", "instance", inst.name, "id", inst.id)
		e.event("returned", inst.name)
		e.deliver(inst, now)
	case answered:
		e.c.log.Debug("goodbye refuted: the instance answered", "instance", inst.name, "id", inst.id, "from", inst.byeSrc)
		e.c.st.refuted.Add(1)
		e.event("goodbye-refuted", inst.name)
	case inst.revive:
		e.c.log.Debug("records of an instance that said goodbye, and it did not answer: ignored", "instance", inst.name, "id", inst.id)
		e.c.st.stale.Add(1)
		e.event("return-ignored", inst.name)
	default:
		e.bye(inst, inst.byeSrc, inst.byeIf)
	}
	if !e.pointsTo(inst.key) {
		delete(e.insts, inst.key)
	}
}

// answered reports whether inst's PTR and SRV records are alive: received
// again, with a TTL, since a goodbye marked them.
func (e *engine) answered(inst *instance, now time.Time) bool {
	ptr := e.cache.ptr(rrKey{lower(e.c.browse), typePTR}, inst.key)
	return ptr != nil && !ptr.goodbye && ptr.expires.After(now) && e.cache.newest(rrKey{inst.key, typeSRV}, now) != nil
}

// pointsTo reports whether a PTR record of the browsed name still points
// to the instance k.
func (e *engine) pointsTo(k string) bool {
	return e.cache.ptr(rrKey{lower(e.c.browse), typePTR}, k) != nil
}

// heartbeat delivers every live instance again, so that a Group keeps it.
func (e *engine) heartbeat(now time.Time) {
	for _, inst := range e.insts {
		if !inst.gone && !inst.other {
			e.deliver(inst, now)
		}
	}
}

// byeFrom is the source and interface a goodbye for inst is delivered
// from: its latest delivery's, or src and ifIndex before any.
func (inst *instance) byeFrom(src netip.AddrPort, ifIndex int) (netip.AddrPort, int) {
	if inst.from.IsValid() {
		return inst.from, inst.fromIf
	}
	return src, ifIndex
}

// bye hands Receive a goodbye for inst, if it was delivered, from where its
// announcements came (src, where the goodbye came from, if none did).
func (e *engine) bye(inst *instance, src netip.AddrPort, ifIndex int) {
	if inst.id != "" && !inst.gone {
		e.c.log.Debug("instance said goodbye", "instance", inst.name, "id", inst.id, "from", src)
		e.c.st.goodbyes.Add(1)
		src, ifIndex = inst.byeFrom(src, ifIndex)
		e.pushMessage(&codec.Message{Kind: codec.Goodbye, Group: e.c.cfg.Group, ID: inst.id}, false, src, ifIndex)
	}
	inst.gone = true
}

// deliver hands Receive an announcement of inst, or asks for what is
// missing to make one.
func (e *engine) deliver(inst *instance, now time.Time) {
	m, src, ifIndex, ok := e.synthesize(inst, now)
	if !ok {
		return
	}
	if inst.id != "" && inst.id != m.ID && !inst.gone {
		from, fromIf := inst.byeFrom(src, ifIndex)
		e.pushMessage(&codec.Message{Kind: codec.Goodbye, Group: e.c.cfg.Group, ID: inst.id}, false, from, fromIf)
	}
	if inst.id != m.ID || inst.gone {
		e.c.log.Debug("instance found", "instance", inst.name, "id", m.ID, "health", m.Health, "comms", m.Comms)
	}
	inst.id, inst.gone = m.ID, false
	inst.from, inst.fromIf = src, ifIndex
	e.pushMessage(&m, inst.foreign, src, ifIndex)
}

// pushMessage encodes m and queues it for Receive, dropping metadata,
// longest value first, until it fits Config.SynthMax. When Receive is not
// keeping up, the message is dropped and counted: a heartbeat repeats it.
//
// foreign marks an announcement of a foreign service (see Codec.Decode).
func (e *engine) pushMessage(m *codec.Message, foreign bool, src netip.AddrPort, ifIndex int) {
	c := Codec{MaxSize: e.c.cfg.SynthMax}
	var b []byte
	for {
		var err error
		b, err = c.encode(nil, m, foreign)
		if err == nil {
			break
		}
		if errors.Is(err, codec.ErrTooLarge) && len(m.Meta) > 0 {
			longest := ""
			for k, v := range m.Meta {
				if longest == "" || len(v)+len(k) > len(m.Meta[longest])+len(longest) {
					longest = k
				}
			}
			delete(m.Meta, longest)
			continue
		}
		e.c.st.dropped.Add(1)
		e.c.log.Debug("cannot synthesize a message", "id", m.ID, "error", err)
		return
	}
	select {
	case e.c.out <- delivery{b: b, src: src, ifIndex: ifIndex}:
		e.c.st.synthesized.Add(1)
	default:
		e.c.st.dropped.Add(1)
	}
}

// synthesize makes the pir announcement for inst from its cached SRV and
// TXT records and its host's addresses (see the package doc). ok is false
// when something is missing, which it then asks for, or when inst belongs
// to another group.
func (e *engine) synthesize(inst *instance, now time.Time) (m codec.Message, src netip.AddrPort, ifIndex int, ok bool) {
	srv := e.cache.newest(rrKey{inst.key, typeSRV}, now)
	txt := e.cache.newest(rrKey{inst.key, typeTXT}, now)
	if srv == nil || txt == nil {
		e.resolve(inst, now, typeSRV, typeTXT)
		return m, src, 0, false
	}
	pairs := parseTXT(txt.rec.Txt)
	if g, ok := pairs.get(txtGroup); ok && g != e.c.cfg.Group && !e.c.allGroups {
		inst.other = true
		return m, src, 0, false
	}
	inst.other = false
	inst.health = foundKey{}
	m = codec.Message{Kind: codec.Announce, Group: e.c.cfg.Group}
	id, isPir := pairs.get(txtID)
	inst.foreign = !isPir || !validID(id)
	if !inst.foreign {
		m.ID = id
		for _, f := range []struct {
			key string
			dst *string
		}{{txtHealth, &m.Health}, {txtComms, &m.Comms}} {
			v, ok := pairs.get(f.key)
			if !ok {
				continue
			}
			if *f.dst, ok = e.localize(inst, v, now); !ok {
				return m, src, 0, false
			}
		}
		m.Meta = pairs.meta(true)
	} else {
		label, _, _ := firstLabel(inst.name)
		m.ID = foreignID(label, inst.name)
		m.Meta = pairs.meta(false)
	}
	if m.Health == "" || m.Comms == "" {
		a, ok := e.pickAddr(inst, srv.rec.Target, now)
		if !ok {
			return m, src, 0, false
		}
		hp := netip.AddrPortFrom(a, srv.rec.Port).String()
		if m.Health == "" {
			// A foreign service is a member while mDNS advertises it
			// (records, TTLs, goodbyes), whether or not anything listens
			// on its port: a probe of its reachability would make it
			// flap in and out of the group.
			m.Health = (&url.URL{Scheme: SchemeAdvertised, Host: hp}).String()
			inst.health, _ = keyOf(m.Health) // what Probers pass
		}
		if m.Comms == "" {
			m.Comms = (&url.URL{Scheme: e.c.svc.proto, Host: hp}).String()
		}
	}
	// The responder of the family of the address chosen, else IPv4's.
	fi := 0
	if inst.addr.IsValid() && inst.addr.Is6() || !inst.addr.IsValid() && !inst.src[0].IsValid() {
		fi = 1
	}
	if !inst.src[fi].IsValid() {
		fi = 1 - fi
	}
	src, ifIndex = inst.src[fi], inst.ifIndex[fi]
	if !src.IsValid() {
		src, ifIndex = srv.src, srv.ifIndex
	}
	return m, e.vouch(m.Health, src, ifIndex), ifIndex, true
}

// vouch returns the source a synthesized message is delivered from: the
// health host's own address, port kept, when it is an address on the link
// the records came from. A Group takes a health host only from the same
// source address (unless configured otherwise); the host's A or AAAA
// record names the address the responder published for it, which is often
// not the one it sent from (a link-local IPv6 source, a second IPv4
// address). A loopback, unspecified or multicast host, or one off the
// link, keeps the responder's address, and the Group judges it.
func (e *engine) vouch(health string, src netip.AddrPort, ifIndex int) netip.AddrPort {
	u, err := url.Parse(health)
	if err != nil {
		return src
	}
	h, err := netip.ParseAddr(u.Hostname())
	if err != nil || h.IsLoopback() || h.IsUnspecified() || h.IsMulticast() || h.Unmap().Is4() != src.Addr().Unmap().Is4() {
		return src
	}
	if l := e.c.link(ifIndex); l == nil || !l.onLink(h) {
		return src
	}
	return netip.AddrPortFrom(h, src.Port())
}

// resolve asks for records of inst that are missing, at most once a
// second and maxResolveAsks times until the instance is refreshed.
func (e *engine) resolve(inst *instance, now time.Time, types ...uint16) {
	e.resolveName(inst, inst.name, now, types...)
}

func (e *engine) resolveName(inst *instance, name string, now time.Time, types ...uint16) {
	if inst.asks >= maxResolveAsks || now.Sub(inst.asked) < resolveGap {
		return
	}
	inst.asks++
	inst.asked = now
	for _, t := range types {
		e.ask(name, t, now)
	}
}

// localize replaces a .local host name in a URI by an address of that
// host from the cache; other URIs are returned as they are. ok is false,
// and the address asked for, when the cache has none.
func (e *engine) localize(inst *instance, uri string, now time.Time) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return uri, true // the Group judges it
	}
	host := u.Hostname()
	if !strings.HasSuffix(lower(host), ".local") {
		return uri, true
	}
	a, ok := e.pickAddr(inst, host+".", now)
	if !ok {
		return "", false
	}
	if p := u.Port(); p != "" {
		u.Host = net.JoinHostPort(a.String(), p)
	} else if a.Is6() {
		u.Host = "[" + a.String() + "]"
	} else {
		u.Host = a.String()
	}
	return u.String(), true
}

// pickAddr chooses an address of host (a name in presentation format) for
// inst: the one chosen before while it is still valid, so that an instance
// heard over both families does not flap between them; else IPv4 when the
// instance was heard over IPv4, the address's rank (global, link-local,
// loopback) deciding within a family. A link-local IPv6 address gets the
// zone of the interface it was heard on. ok is false, and the address
// asked for, when the cache has none.
func (e *engine) pickAddr(inst *instance, host string, now time.Time) (netip.Addr, bool) {
	n := lower(host)
	var cands []*entry
	cands = append(cands, e.cache.live(rrKey{n, typeA}, now)...)
	cands = append(cands, e.cache.live(rrKey{n, typeAAAA}, now)...)
	if len(cands) == 0 {
		e.resolveName(inst, host, now, typeA, typeAAAA)
		return netip.Addr{}, false
	}
	e.c.mu.Lock()
	links := e.c.links
	e.c.mu.Unlock()
	zoned := func(en *entry) netip.Addr {
		a := en.rec.Addr
		if a.Is6() && a.IsLinkLocalUnicast() {
			if z := zoneName(links, en.ifIndex); z != "" {
				a = a.WithZone(z)
			}
		}
		return a
	}
	for _, en := range cands {
		if inst.addr.IsValid() && en.rec.Addr == inst.addr.WithZone("") {
			return zoned(en), true
		}
	}
	prefer6 := !inst.src[0].IsValid()
	var best *entry
	score := func(en *entry) int {
		s := addrRank(en.rec.Addr)
		if en.rec.Addr.Is6() != prefer6 {
			s += 10
		}
		return s
	}
	for _, en := range cands {
		if best == nil || score(en) < score(best) {
			best = en
		}
	}
	a := zoned(best)
	if lower(host) == lower(e.srvTarget(inst, now)) {
		inst.addr = a
	}
	return a, true
}

// srvTarget returns the target of inst's SRV record, or "".
func (e *engine) srvTarget(inst *instance, now time.Time) string {
	if srv := e.cache.newest(rrKey{inst.key, typeSRV}, now); srv != nil {
		return srv.rec.Target
	}
	return ""
}

// validID checks an ID as Codec.CheckID does: 1 to MaxIDLen bytes
// of printable ASCII without '|' or space.
func validID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '|' {
			return false
		}
	}
	return true
}
