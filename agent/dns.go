package agent

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/pirlan/pir/discovery"
)

// maxUDPSize bounds the UDP answer size an EDNS0 requester may ask for.
const maxUDPSize = 4096

// dnsView is what the DNS answers need of a view, built once per change.
type dnsView struct {
	byLabel map[string]*dnsMember // every member with a valid label, by label
	skipped int                   // members whose ID is not a valid label

	// The group name's answers, built once: one SRV per healthy member
	// with a port and address, glue[i] the address record of srv[i]'s
	// target; the healthy members' A and AAAA records. Queries shuffle
	// copies; the records themselves are never changed.
	srv, glue, a, aaaa []dns.RR
}

type dnsMember struct {
	label   string
	addr    netip.Addr // invalid when unknown
	port    uint16     // 0 when the comms URI has none
	healthy bool
	txt     []string // metadata as key=value, sorted, escaped for miekg/dns
}

// AcceptQueries is a dns.MsgAcceptFunc for a dns.Server running the
// agent's handler: it passes every message that unpacks to the handler,
// which answers malformed queries with FORMERR or NOTIMP, drops
// responses, and counts both. The server's default would answer some
// malformed queries itself, uncounted.
func AcceptQueries(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }

// DNS returns the agent's DNS handler, for dns.Server{Net: "udp" or
// "tcp", Handler: a.DNS(), MsgAcceptFunc: AcceptQueries}. It answers for
// Config.Domain; see docs/agent.md for the records.
func (a *Agent) DNS() dns.Handler { return dns.HandlerFunc(a.serveDNS) }

func (a *Agent) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r == nil || r.Response {
		a.stats.dnsIgnored.Add(1)
		return
	}
	m := &dns.Msg{}
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	switch {
	case r.Opcode != dns.OpcodeQuery:
		a.stats.dnsNotImp.Add(1)
		m.Rcode = dns.RcodeNotImplemented
		a.writeDNS(w, m)
		return
	case len(r.Question) != 1:
		a.stats.dnsFormErr.Add(1)
		m.Rcode = dns.RcodeFormatError
		a.writeDNS(w, m)
		return
	}
	q := r.Question[0]
	m.Question = []dns.Question{q}
	if q.Qclass != dns.ClassINET {
		a.stats.dnsNotImp.Add(1)
		m.Rcode = dns.RcodeNotImplemented
		a.writeDNS(w, m)
		return
	}
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		m.SetEdns0(uint16(size), false)
	}
	qname := strings.ToLower(q.Name)
	if !dns.IsSubDomain(a.cfg.Domain, qname) {
		a.stats.dnsRefused.Add(1)
		m.Rcode = dns.RcodeRefused
		a.writeDNS(w, m)
		return
	}
	m.Authoritative = true
	a.answer(m, q.Qtype, strings.TrimSuffix(qname, a.cfg.Domain))
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{a.soa()}
	}
	if _, tcp := w.LocalAddr().(*net.TCPAddr); tcp {
		size = dns.MaxMsgSize // a TCP message's length is 16 bits
	}
	m.Truncate(size)
	if m.Truncated {
		a.stats.dnsTruncated.Add(1)
	}
	if m.Rcode == dns.RcodeNameError {
		a.stats.dnsNXDomain.Add(1)
	} else {
		a.stats.dnsAnswered.Add(1)
	}
	a.writeDNS(w, m)
}

func (a *Agent) writeDNS(w dns.ResponseWriter, m *dns.Msg) {
	m.Compress = true
	if err := w.WriteMsg(m); err != nil {
		a.log.Debug("dns reply not sent", "error", err)
	}
}

// answer fills m for a question of type qtype about rest, the name less
// the domain ("", "web." or "id.web.").
func (a *Agent) answer(m *dns.Msg, qtype uint16, rest string) {
	labels := strings.Split(strings.TrimSuffix(rest, "."), ".")
	if rest == "" {
		labels = nil
	}
	if len(labels) > 2 || slices.ContainsFunc(labels, func(l string) bool { return !validLabel(l) }) {
		m.Rcode = dns.RcodeNameError
		return
	}
	if len(labels) == 0 {
		if qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, a.soa())
		}
		return
	}
	group := labels[len(labels)-1]
	d := a.dnsView(group)
	if d == nil {
		m.Rcode = dns.RcodeNameError
		return
	}
	groupName := group + "." + a.cfg.Domain
	if len(labels) == 1 {
		switch qtype {
		case dns.TypeSRV:
			perm := rand.Perm(len(d.srv))
			m.Answer = make([]dns.RR, len(perm))
			extra := make([]dns.RR, len(perm), len(perm)+len(m.Extra)) // then the OPT, if any
			for i, j := range perm {
				m.Answer[i], extra[i] = d.srv[j], d.glue[j]
			}
			m.Extra = append(extra, m.Extra...)
		case dns.TypeA:
			m.Answer = shuffled(d.a)
		case dns.TypeAAAA:
			m.Answer = shuffled(d.aaaa)
		}
		return
	}
	dm, ok := d.byLabel[labels[0]]
	if !ok {
		m.Rcode = dns.RcodeNameError
		return
	}
	name := dm.label + "." + groupName
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		if dm.addr.IsValid() && dm.addr.Is4() == (qtype == dns.TypeA) {
			m.Answer = append(m.Answer, a.addr(name, dm.addr))
		}
	case dns.TypeTXT:
		for _, s := range dm.txt {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: a.hdr(name, dns.TypeTXT), Txt: []string{s}})
		}
	case dns.TypeSRV:
		if dm.port != 0 && dm.addr.IsValid() {
			m.Answer = append(m.Answer, a.srv(name, name, dm.port))
			m.Extra = append(m.Extra, a.addr(name, dm.addr))
		}
	}
}

func shuffled(rrs []dns.RR) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := slices.Clone(rrs)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (a *Agent) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: a.cfg.TTL}
}

func (a *Agent) srv(name, target string, port uint16) dns.RR {
	return &dns.SRV{Hdr: a.hdr(name, dns.TypeSRV), Priority: 1, Weight: 1, Port: port, Target: target}
}

// addr returns an A or AAAA record for ip.
func (a *Agent) addr(name string, ip netip.Addr) dns.RR {
	if ip.Is4() {
		return &dns.A{Hdr: a.hdr(name, dns.TypeA), A: net.IP(ip.AsSlice())}
	}
	return &dns.AAAA{Hdr: a.hdr(name, dns.TypeAAAA), AAAA: net.IP(ip.AsSlice())}
}

func (a *Agent) soa() dns.RR {
	a.mu.RLock()
	serial := uint32(a.seq)
	a.mu.RUnlock()
	return &dns.SOA{Hdr: a.hdr(a.cfg.Domain, dns.TypeSOA), Ns: "ns." + a.cfg.Domain,
		Mbox: "hostmaster." + a.cfg.Domain, Serial: serial, Refresh: 3600, Retry: 600,
		Expire: 86400, Minttl: a.cfg.TTL}
}

// dnsView returns the DNS view of the group with that (lower-case) name,
// building it when the group changed since; nil for an unknown group.
func (a *Agent) dnsView(group string) *dnsView {
	a.mu.RLock()
	v := a.groups[group]
	if v == nil {
		a.mu.RUnlock()
		return nil
	}
	d, index := v.dns, v.index
	if d != nil {
		a.mu.RUnlock()
		return d
	}
	d = a.buildDNSView(group+"."+a.cfg.Domain, v.members)
	a.mu.RUnlock()
	a.stats.dnsSkippedNames.Add(uint64(d.skipped))
	a.mu.Lock()
	if v.index == index {
		v.dns = d
	}
	a.mu.Unlock()
	return d
}

func (a *Agent) buildDNSView(groupName string, members map[string]discovery.Member) *dnsView {
	d := &dnsView{byLabel: make(map[string]*dnsMember, len(members))}
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids) // so that of two IDs equal but for case, the same one wins every time
	for _, id := range ids {
		m := members[id]
		label := strings.ToLower(id)
		if !validLabel(label) {
			d.skipped++
			continue
		}
		if _, dup := d.byLabel[label]; dup {
			d.skipped++
			continue
		}
		dm := &dnsMember{label: label, healthy: healthy(m), txt: txtOf(m.Meta)}
		dm.addr, dm.port = endpoint(m)
		d.byLabel[label] = dm
		if !dm.healthy || !dm.addr.IsValid() {
			continue
		}
		if dm.addr.Is4() {
			d.a = append(d.a, a.addr(groupName, dm.addr))
		} else {
			d.aaaa = append(d.aaaa, a.addr(groupName, dm.addr))
		}
		if dm.port != 0 {
			target := label + "." + groupName
			d.srv = append(d.srv, a.srv(groupName, target, dm.port))
			d.glue = append(d.glue, a.addr(target, dm.addr))
		}
	}
	return d
}

// endpoint returns a member's address (the comms URI's host when it is an
// IP literal, else the source address of its announcements) and its comms
// URI's port (0 when none). A loopback host from a member heard from
// elsewhere is not believed: it would send this host's programs to their
// own loopback; the source address is used instead.
func endpoint(m discovery.Member) (netip.Addr, uint16) {
	u := m.CommsURI
	if u == nil {
		u = m.HealthURI
	}
	addr := m.Addr.Addr().Unmap()
	var port uint16
	if u != nil {
		ip, err := netip.ParseAddr(hostOf(u))
		if err == nil && !ip.IsUnspecified() && (!ip.Unmap().IsLoopback() || !addr.IsValid() || addr.IsLoopback()) {
			addr = ip
		}
		if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
			port = uint16(p)
		}
	}
	return addr.Unmap().WithZone(""), port
}

func hostOf(u *url.URL) string {
	h := u.Hostname()
	if i := strings.IndexByte(h, '%'); i >= 0 {
		h = h[:i]
	}
	return h
}

// validLabel reports whether s is a DNS label the agent serves: 1 to 63
// lower-case letters, digits, '-' or '_'.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// txtOf returns the metadata as key=value strings sorted by key, each at
// most 255 bytes (longer ones are cut), escaped as miekg/dns expects TXT
// strings: \" \\ and \DDD for bytes that do not print.
func txtOf(meta map[string]string) []string {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		s := k + "=" + meta[k]
		if len(s) > 255 {
			s = s[:255]
		}
		out = append(out, escapeTXT(s))
	}
	return out
}

func escapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('\\')
			b.WriteString(strconv.Itoa(int(c) / 100))
			b.WriteString(strconv.Itoa(int(c) / 10 % 10))
			b.WriteString(strconv.Itoa(int(c) % 10))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
