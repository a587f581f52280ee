package mdns

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
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
// PTR, SRV, TXT, A and AAAA. Names are in presentation format (see
// escapeLabel); Txt holds the raw bytes of the strings.
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
	case typePTR:
		return strings.EqualFold(r.Target, o.Target)
	case typeSRV:
		return strings.EqualFold(r.Target, o.Target) && r.Port == o.Port && r.Prio == o.Prio && r.Weight == o.Weight
	case typeTXT:
		return slices.Equal(txtOrEmpty(r.Txt), txtOrEmpty(o.Txt))
	case typeA, typeAAAA:
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
