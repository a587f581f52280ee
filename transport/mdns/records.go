package mdns

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// classFlush is the cache-flush bit of a record's class in mDNS (RFC 6762
// §10.2); in a question the same bit asks for a unicast response (§5.4).
const classFlush = 1 << 15

// rrKey identifies a record set: a name, in lower case, and a type.
type rrKey struct {
	name string
	typ  uint16
}

// record is one resource record of the types mDNS service discovery uses:
// PTR, SRV, TXT, A and AAAA. Strings are in the presentation format of
// github.com/miekg/dns except Txt, which holds the raw bytes.
type record struct {
	Name   string
	Type   uint16
	Flush  bool   // the cache-flush bit
	TTL    uint32 // seconds
	Target string // PTR and SRV
	Port   uint16 // SRV
	Prio   uint16 // SRV priority
	Weight uint16 // SRV
	Txt    []string
	Addr   netip.Addr // A and AAAA
}

func (r *record) key() rrKey { return rrKey{strings.ToLower(r.Name), r.Type} }

// sameData reports whether r and o are the same record apart from the TTL
// and the cache-flush bit: same name (ignoring case), type and rdata.
func (r *record) sameData(o *record) bool {
	if r.Type != o.Type || !strings.EqualFold(r.Name, o.Name) {
		return false
	}
	switch r.Type {
	case dns.TypePTR:
		return strings.EqualFold(r.Target, o.Target)
	case dns.TypeSRV:
		return strings.EqualFold(r.Target, o.Target) && r.Port == o.Port && r.Prio == o.Prio && r.Weight == o.Weight
	case dns.TypeTXT:
		return slices.Equal(txtOrEmpty(r.Txt), txtOrEmpty(o.Txt))
	case dns.TypeA, dns.TypeAAAA:
		return r.Addr.WithZone("") == o.Addr.WithZone("")
	}
	return false
}

// txtOrEmpty maps an empty TXT record to its wire form, one empty string
// (RFC 6763 §6.1).
func txtOrEmpty(t []string) []string {
	if len(t) == 0 {
		return []string{""}
	}
	return t
}

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

// rdata returns r's rdata in canonical wire form: names uncompressed, as
// RFC 6762 §8.2 compares records when probes collide.
func (r *record) rdata() []byte {
	c := *r
	c.Name = "."
	rr := c.rr(0, false)
	if rr == nil {
		return nil
	}
	buf := make([]byte, 1024+dns.Len(rr))
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	// The root name takes one byte; type, class, TTL and length ten.
	if n < 11 {
		return nil
	}
	return bytes.Clone(buf[11:n])
}

// compareProbeRecords orders two hosts' proposed records for one name as
// RFC 6762 §8.2 says: each list sorted by class, type and rdata, compared
// record by record; the first difference decides, and a list that runs
// out first is the lesser. It returns -1, 0 or +1: ours lesser (we lose),
// identical, ours greater (we win).
func compareProbeRecords(ours, theirs []record) int {
	type key struct {
		typ   uint16
		rdata []byte
	}
	sorted := func(rs []record) []key {
		ks := make([]key, 0, len(rs))
		for i := range rs {
			ks = append(ks, key{rs[i].Type, rs[i].rdata()})
		}
		slices.SortFunc(ks, func(a, b key) int {
			if a.typ != b.typ {
				return int(a.typ) - int(b.typ)
			}
			return bytes.Compare(a.rdata, b.rdata)
		})
		return ks
	}
	a, b := sorted(ours), sorted(theirs)
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].typ != b[i].typ {
			if a[i].typ < b[i].typ {
				return -1
			}
			return 1
		}
		if c := bytes.Compare(a[i].rdata, b[i].rdata); c != 0 {
			return c
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}
