package mdns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// The transport's DNS wire code is its own (wire.go); github.com/miekg/dns
// stays in the tests as the reference: messages built with it feed the
// decoder, and what the transport packs must read back through it. These
// convert between its records and ours.

// fromRR converts a record of a type we use. ok is false for other types
// and for rdata that does not fit its type.
func fromRR(rr dns.RR) (record, bool) {
	h := rr.Header()
	r := record{Name: h.Name, Type: h.Rrtype, Flush: h.Class&classFlush != 0, TTL: h.Ttl}
	if h.Class&^classFlush != dns.ClassINET {
		return record{}, false
	}
	switch v := rr.(type) {
	case *dns.PTR:
		r.Target = v.Ptr
	case *dns.SRV:
		r.Target, r.Port, r.Prio, r.Weight = v.Target, v.Port, v.Priority, v.Weight
	case *dns.TXT:
		r.Txt = make([]string, 0, len(v.Txt))
		for _, s := range v.Txt {
			raw, err := unescapeString(s)
			if err != nil {
				return record{}, false
			}
			r.Txt = append(r.Txt, raw)
		}
	case *dns.A:
		a, ok := netip.AddrFromSlice(v.A.To4())
		if !ok {
			return record{}, false
		}
		r.Addr = a
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(v.AAAA.To16())
		if !ok || a.Is4In6() {
			return record{}, false
		}
		r.Addr = a
	default:
		return record{}, false
	}
	return r, true
}

// rr converts r to a github.com/miekg/dns record, with the given TTL and
// cache-flush bit.
func (r *record) rr(ttl uint32, flush bool) dns.RR {
	class := uint16(dns.ClassINET)
	if flush {
		class |= classFlush
	}
	h := dns.RR_Header{Name: r.Name, Rrtype: r.Type, Class: class, Ttl: ttl}
	switch r.Type {
	case dns.TypePTR:
		return &dns.PTR{Hdr: h, Ptr: r.Target}
	case dns.TypeSRV:
		return &dns.SRV{Hdr: h, Priority: r.Prio, Weight: r.Weight, Port: r.Port, Target: r.Target}
	case dns.TypeTXT:
		txt := make([]string, 0, len(r.Txt))
		for _, s := range txtOrEmpty(r.Txt) {
			txt = append(txt, escapeString(s))
		}
		return &dns.TXT{Hdr: h, Txt: txt}
	case dns.TypeA:
		return &dns.A{Hdr: h, A: r.Addr.AsSlice()}
	case dns.TypeAAAA:
		return &dns.AAAA{Hdr: h, AAAA: r.Addr.WithZone("").AsSlice()}
	}
	return nil
}

// rrs converts records to github.com/miekg/dns records as the engine
// stamps them (engine.stamped).
func (e *engine) rrs(recs []record, ttl int64, flush bool) []dns.RR {
	var out []dns.RR
	for _, r := range e.stamped(recs, ttl, flush) {
		out = append(out, r.rr(r.TTL, r.Flush))
	}
	return out
}

// unescapeString decodes a character string as github.com/miekg/dns
// writes it for TXT rdata: '"' and '\\' escaped by a backslash, bytes
// outside printable ASCII as \DDD.
func unescapeString(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		v, n, ok := unescapeAt(s, i)
		if !ok {
			return "", errBadEscape
		}
		b = append(b, v)
		i += n - 1
	}
	return string(b), nil
}

// escapeString writes a raw character string so that github.com/miekg/dns
// packs exactly its bytes: a backslash, the only byte it interprets, is
// doubled.
func escapeString(raw string) string {
	return strings.ReplaceAll(raw, `\`, `\\`)
}

// dnsResponseHdr is responseHdr for github.com/miekg/dns.
var dnsResponseHdr = dns.MsgHdr{Response: true, Authoritative: true}
