package mdns

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// pubState is where a publication stands (RFC 6762 §8).
type pubState uint8

const (
	probing    pubState = iota + 1 // asking whether the names are free
	announcing                     // sending unsolicited responses
	published                      // answering queries
)

// publication is the member the Conn publishes.
type publication struct {
	id                   string
	instBase, inst       string // instance labels, raw: as configured, and after renames
	hostBase, host       string // host labels
	instRenames, hostRen int
	health, comms        pubURI
	sentVia              map[linkKey]linkURIs // per link and family: did the URIs last sent through it name its address (perLink)
	meta                 map[string]string
	port                 uint16
	v4, v6               bool     // publish A, AAAA records
	txt                  []string // rendered with the current host name

	// stale are records of ours that a change replaced less than
	// staleFor ago (until staleUntil): an announcement of ours that
	// carried them may come back to us (our own multicast, looped back)
	// after the change, and is no other responder's claim.
	stale      []record
	staleUntil time.Time

	state     pubState
	step      int       // probes or announcements sent in this state
	next      time.Time // when the next probe or announcement is due
	conflicts []time.Time
}

// pubURI is a URI of the member. When local, its host is the Conn's host
// name, rendered as HOST.local with the name in force.
type pubURI struct {
	raw   string
	u     *url.URL
	local bool
}

func (u pubURI) render(host string) string {
	if !u.local {
		return u.raw
	}
	c := *u.u
	if p := u.u.Port(); p != "" {
		c.Host = net.JoinHostPort(host+".local", p)
	} else {
		c.Host = host + ".local"
	}
	return c.String()
}

func (p *publication) instFQDN(svc serviceType) string {
	return escapeLabel(p.inst) + "." + svc.fqdn()
}

func (p *publication) hostFQDN() string { return p.host + "." + localDomain }

// Records a change replaced stay ours this long (publication.stale), up
// to maxStale of them: our own announcements come back to us through the
// loopback within milliseconds, later only on a machine that runs far
// behind.
const (
	staleFor = 2 * time.Second
	maxStale = 64
)

// linkKey is a link and one of its address families.
type linkKey struct {
	ifIndex int
	v6      bool
}

// linkURIs says, of the URIs a Group last sent through a link of one
// family, whether each named that link's address.
type linkURIs struct {
	health, comms bool
}

// perLink records which of m's URIs name the address of via, the link
// the Group sent m through, and reports which did so through every link
// sent through: those are URIs a Group writes for each link when the
// member listens on every address, and get the Conn's host name instead,
// so that the TXT record is the same on every link. A URI naming one
// address whatever the link (the application's own, say
// tcp://192.0.2.7:8080) stays as it is, even on the link whose address it
// names: rendered as the host name there and literally on the others, the
// TXT record would change with every link a Group sends through, and each
// change is announced again (and read as a conflict when an earlier
// announcement of ours comes back after it).
func (e *engine) perLink(p *publication, m codec.Message, via *transport.Link) (health, comms bool) {
	if via == nil || !via.Addr.IsValid() {
		return false, false
	}
	if p.sentVia == nil {
		p.sentVia = make(map[linkKey]linkURIs)
	}
	// Links that are gone no longer count (and the map stays as small as
	// the Conn's links).
	for k := range p.sentVia {
		if e.c.link(k.ifIndex) == nil {
			delete(p.sentVia, k)
		}
	}
	k := linkKey{ifIndex: via.Index, v6: !via.Addr.Unmap().Is4()}
	p.sentVia[k] = linkURIs{health: namesAddr(m.Health, via.Addr), comms: namesAddr(m.Comms, via.Addr)}
	health, comms = true, true
	for _, l := range p.sentVia {
		health, comms = health && l.health, comms && l.comms
	}
	return health, comms
}

// pubURIFor reads one of the member's URIs, s; when local (perLink), its
// host becomes the Conn's host name.
func pubURIFor(s string, local bool) pubURI {
	pu := pubURI{raw: s}
	if !local {
		return pu
	}
	u, err := url.Parse(s)
	if err != nil {
		return pu
	}
	pu.u, pu.local = u, true
	return pu
}

// namesAddr reports whether the host of URI s is the address a, zones
// aside.
func namesAddr(s string, a netip.Addr) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	h, err := netip.ParseAddr(u.Hostname())
	return err == nil && h.WithZone("") == a.WithZone("")
}

// srvPort is the SRV record's port: the comms URI's, else the default
// port of its scheme where one is well known, else the health URI's.
func srvPort(comms, health string) uint16 {
	for i, s := range []string{comms, health} {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
			return uint16(p)
		}
		if i == 0 {
			switch u.Scheme {
			case "http":
				return 80
			case "https":
				return 443
			}
		}
	}
	return 0
}

// defaultHost is the host label of a Conn whose Config.HostName is empty:
// this machine's host name, "-pir-" and eight hex digits of the peer ID's
// SHA-256.
func defaultHost(id string) string {
	h, _ := os.Hostname()
	if i := strings.IndexByte(h, '.'); i >= 0 {
		h = h[:i]
	}
	h = hostLabel(h, maxLabel-len("-pir-")-8)
	if h == "" {
		h = "host"
	}
	return h + "-pir-" + shortHash(id)
}

// publish starts publishing the member m describes, or updates what is
// published.
func (e *engine) publish(m codec.Message, via *transport.Link, now time.Time) error {
	p := e.pub
	if p != nil && p.id != m.ID {
		e.withdraw(now)
		p = nil
	}
	fresh := p == nil
	if fresh {
		p = &publication{id: m.ID, instBase: e.c.cfg.Instance, hostBase: e.c.cfg.HostName}
		if p.instBase == "" {
			p.instBase = truncateUTF8(m.ID, maxLabel)
		}
		if p.hostBase == "" {
			p.hostBase = defaultHost(m.ID)
		}
		p.inst, p.host = p.instBase, p.hostBase
	}
	healthLocal, commsLocal := e.perLink(p, m, via)
	health, comms := pubURIFor(m.Health, healthLocal), pubURIFor(m.Comms, commsLocal)
	v4, v6 := true, true
	if via != nil {
		v4, v6 = via.Addr.Unmap().Is4(), !via.Addr.Unmap().Is4()
		if !fresh {
			v4, v6 = v4 || p.v4, v6 || p.v6
		}
	}
	txt, dropped, err := buildTXT(&codec.Message{ID: m.ID, Group: m.Group,
		Health: health.render(p.host), Comms: comms.render(p.host), Meta: m.Meta})
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		e.c.log.Warn("metadata too long for a TXT string (255 bytes) is not published", "keys", dropped)
	}
	port := srvPort(comms.render(p.host), health.render(p.host))
	changed := !slices.Equal(txt, p.txt) || port != p.port || v4 != p.v4 || v6 != p.v6
	if changed && !fresh {
		e.supersede(p, now)
	}
	p.health, p.comms, p.meta, p.txt, p.port, p.v4, p.v6 = health, comms, m.Meta, txt, port, v4, v6
	if fresh {
		e.pub = p
		p.state, p.step = probing, 0
		p.next = now.Add(jitter(0, probeWait))
		e.c.log.Debug("probing", "instance", p.instFQDN(e.c.svc), "host", p.hostFQDN())
		return nil
	}
	if changed && p.state != probing {
		// RFC 6762 §8.4: announce the new records.
		p.state, p.step, p.next = announcing, 0, now
	}
	return nil
}

// supersede keeps p's records, which a change is about to replace, as
// stale for staleFor (with those a change replaced within staleFor
// before, up to maxStale records).
func (e *engine) supersede(p *publication, now time.Time) {
	if now.After(p.staleUntil) {
		p.stale = p.stale[:0]
	}
	for _, l := range e.c.linkList() {
		for _, r := range e.uniqueRecords(p, l) {
			if len(p.stale) < maxStale {
				p.stale = append(p.stale, r)
			}
		}
	}
	p.staleUntil = now.Add(staleFor)
}

// wasOurs reports whether r is one of p's stale records.
func (p *publication) wasOurs(r *record, now time.Time) bool {
	if now.After(p.staleUntil) {
		return false
	}
	for i := range p.stale {
		if p.stale[i].sameData(r) {
			return true
		}
	}
	return false
}

// retxt renders the TXT record again after the host was renamed.
func (e *engine) retxt(p *publication) {
	txt, _, err := buildTXT(&codec.Message{ID: p.id, Group: e.c.cfg.Group,
		Health: p.health.render(p.host), Comms: p.comms.render(p.host), Meta: p.meta})
	if err == nil {
		p.txt = txt
	}
}

// pubDue sends the probe or announcement that is due.
func (e *engine) pubDue(p *publication, now time.Time) {
	switch p.state {
	case probing:
		if p.step < probes {
			e.probe(p, now)
			p.step++
			p.next = now.Add(probeWait)
			return
		}
		p.state, p.step = announcing, 0
		fallthrough
	case announcing:
		e.announce(p, now)
		p.step++
		if p.step < announcements {
			p.next = now.Add(announceGap)
			return
		}
		p.state = published
		p.next = now.Add(e.c.cfg.TTL * 8 / 10)
		e.c.log.Debug("published", "instance", p.instFQDN(e.c.svc))
		e.event("published", p.instFQDN(e.c.svc))
	case published:
		// Nobody may have asked since: announce before caches expire.
		e.announce(p, now)
		p.next = now.Add(e.c.cfg.TTL * 8 / 10)
	}
}

// records returns what the publication holds for link l: the PTR records
// of the service type and the group's subtype, and SRV, TXT, A and AAAA
// records.
func (e *engine) records(p *publication, l *iface) []record {
	inst, host := p.instFQDN(e.c.svc), p.hostFQDN()
	rs := []record{
		{Name: e.c.svc.fqdn(), Type: typePTR, Target: inst},
		{Name: e.c.sub, Type: typePTR, Target: inst},
		{Name: inst, Type: typeSRV, Target: host, Port: p.port},
		{Name: inst, Type: typeTXT, Txt: p.txt},
	}
	return append(rs, e.addrRecords(p, l)...)
}

// addrRecords returns the publication's A and AAAA records for link l:
// the link's addresses of the families published.
func (e *engine) addrRecords(p *publication, l *iface) []record {
	var rs []record
	if l == nil {
		return nil
	}
	if p.v4 {
		for _, a := range l.v4 {
			rs = append(rs, record{Name: p.hostFQDN(), Type: typeA, Addr: a})
		}
	}
	if p.v6 {
		for _, a := range l.v6 {
			rs = append(rs, record{Name: p.hostFQDN(), Type: typeAAAA, Addr: a})
		}
	}
	return rs
}

// uniqueRecords returns the records a probe proposes for link l: SRV,
// TXT, A and AAAA.
func (e *engine) uniqueRecords(p *publication, l *iface) []record {
	return e.records(p, l)[2:]
}

// probe sends one probe on every link: a query for the instance and host
// names, type ANY, with the proposed records in the authority section (RFC
// 6762 §8.1). The unicast-response bit stays clear: several responders
// share port 5353 on one host, and a unicast answer reaches only one of
// them (§15.1), maybe not this one.
func (e *engine) probe(p *publication, now time.Time) {
	qs := []question{
		{Name: p.instFQDN(e.c.svc), Type: typeANY},
		{Name: p.hostFQDN(), Type: typeANY},
	}
	e.eachLink(func(l *iface, f *family) {
		b, err := packProbe(qs, e.stamped(e.uniqueRecords(p, l), -1, false))
		if err != nil {
			e.c.log.Debug("packing a probe", "error", err)
			return
		}
		e.multicast(l, f, [][]byte{b}, nil, now)
	})
}

// announce multicasts every record on every link (RFC 6762 §8.3).
func (e *engine) announce(p *publication, now time.Time) {
	e.eachLink(func(l *iface, f *family) {
		recs := e.records(p, l)
		msgs, dropped := packMessages(responseHdr, nil, e.stamped(recs, -1, true), nil, e.c.cfg.MaxMessage, false)
		if dropped > 0 {
			e.c.log.Warn("records too large for any message were not announced", "records", dropped)
		}
		e.multicast(l, f, msgs, recs, now)
	})
}

// withdraw sends goodbyes for everything published, records with TTL 0
// (RFC 6762 §10.1), and stops publishing. Nothing is sent for a member
// still probing: nobody has its records yet.
func (e *engine) withdraw(now time.Time) {
	p := e.pub
	if p == nil {
		return
	}
	e.pub = nil
	if p.state == probing {
		return
	}
	e.eachLink(func(l *iface, f *family) {
		msgs, _ := packMessages(responseHdr, nil, e.stamped(e.records(p, l), 0, false), nil, e.c.cfg.MaxMessage, false)
		e.multicast(l, f, msgs, nil, now)
	})
	e.c.log.Debug("withdrawn", "instance", p.instFQDN(e.c.svc))
}

// answerTo sends the published records to dst by unicast, when they are
// published.
func (e *engine) answerTo(dst netip.AddrPort, now time.Time) error {
	p := e.pub
	if p == nil || p.state == probing {
		return nil
	}
	l := e.linkFor(dst.Addr())
	msgs, _ := packMessages(responseHdr, nil, e.stamped(e.records(p, l), -1, true), nil, e.c.cfg.MaxMessage, false)
	return e.unicast(dst, msgs)
}

// linkFor returns the link a is a neighbour on, else the first link.
func (e *engine) linkFor(a netip.Addr) *iface {
	links := e.c.linkList()
	if zone := a.Zone(); zone != "" {
		for _, l := range links {
			if l.ifi.Name == zone || strconv.Itoa(l.ifi.Index) == zone {
				return l
			}
		}
	}
	for _, l := range links {
		if l.onLink(a) && !(a.Unmap().WithZone("").IsLinkLocalUnicast()) {
			return l
		}
	}
	if len(links) > 0 {
		return links[0]
	}
	return nil
}

// owns reports whether r is one of the publication's records, on any
// link: the same name, type and rdata.
func (e *engine) owns(p *publication, r *record) bool {
	for _, l := range e.c.linkList() {
		for _, o := range e.records(p, l) {
			if o.sameData(r) {
				return true
			}
		}
	}
	return false
}

// checkConflicts looks in a response for records of our unique names
// that are not ours (RFC 6762 §8.1, §9).
func (e *engine) checkConflicts(recs []record, now time.Time) {
	p := e.pub
	if p == nil {
		return
	}
	inst, host := lower(p.instFQDN(e.c.svc)), lower(p.hostFQDN())
	var instConflict, hostConflict bool
	for i := range recs {
		r := &recs[i]
		if r.TTL == 0 {
			continue // a goodbye claims nothing
		}
		switch lower(r.Name) {
		case inst:
			if (p.state == probing || r.Type == typeSRV || r.Type == typeTXT) && !e.owns(p, r) && !p.wasOurs(r, now) {
				instConflict = true
			}
		case host:
			if (p.state == probing || r.Type == typeA || r.Type == typeAAAA) && !e.owns(p, r) && !p.wasOurs(r, now) {
				hostConflict = true
			}
		}
	}
	if instConflict || hostConflict {
		e.conflict(p, instConflict, hostConflict, now)
	}
}

// conflict acts on a conflict for the instance name, the host name or
// both. While probing, the name is taken: choose the next one and probe
// again, pausing 5 s after 15 conflicts in 10 s (RFC 6762 §8.1). Once
// published, go back to probing the same name (§9).
func (e *engine) conflict(p *publication, inst, host bool, now time.Time) {
	e.c.st.conflicts.Add(1)
	if p.state != probing {
		e.c.log.Info("another responder claims our name; probing again", "instance", p.instFQDN(e.c.svc), "host", p.hostFQDN())
		p.state, p.step, p.next = probing, 0, now
		return
	}
	old := p.instFQDN(e.c.svc)
	if inst {
		p.instRenames++
		p.inst = renamed(p.instBase, p.instRenames, false)
	}
	if host {
		p.hostRen++
		p.host = renamed(p.hostBase, p.hostRen, true)
		e.retxt(p)
	}
	p.conflicts = append(p.conflicts, now)
	for len(p.conflicts) > 0 && now.Sub(p.conflicts[0]) > 10*time.Second {
		p.conflicts = p.conflicts[1:]
	}
	p.step, p.next = 0, now
	if len(p.conflicts) >= 15 {
		p.next = now.Add(conflictPause)
	}
	e.c.log.Info("name conflict; renamed", "was", old, "instance", p.instFQDN(e.c.svc), "host", p.hostFQDN())
	e.event("renamed", p.instFQDN(e.c.svc))
}

// tiebreak settles simultaneous probes for our names (RFC 6762 §8.2): a
// query with authority records for a name we are probing. The host whose
// records compare greater wins; the other waits a second and probes
// again. Our own probe, looped back, compares equal and changes nothing.
func (e *engine) tiebreak(in inbound, now time.Time) {
	p := e.pub
	if p == nil || p.state != probing || len(in.msg.Authority) == 0 {
		return
	}
	l := e.c.link(in.ifIndex)
	if l == nil {
		l = e.linkFor(in.src.Addr())
	}
	ours := e.uniqueRecords(p, l)
	lost := false
	for _, name := range []string{p.instFQDN(e.c.svc), p.hostFQDN()} {
		var mine, theirs []record
		for _, r := range in.msg.Authority {
			if strings.EqualFold(r.Name, name) {
				theirs = append(theirs, r)
			}
		}
		if len(theirs) == 0 {
			continue
		}
		for _, r := range ours {
			if strings.EqualFold(r.Name, name) {
				mine = append(mine, r)
			}
		}
		if compareProbeRecords(mine, theirs) < 0 {
			lost = true
		}
	}
	if lost {
		e.c.st.conflicts.Add(1)
		e.c.log.Debug("lost a probe tiebreak; probing again in a second", "instance", p.instFQDN(e.c.svc), "from", in.src)
		p.step, p.next = 0, now.Add(lostTiebreak)
	}
}
