package mdns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The DNS message format (RFC 1035 §4.1) as far as mDNS service discovery
// needs it: names with compression, and the rdata of PTR, SRV, TXT, A and
// AAAA records. Records of other types are skipped by length, never
// decoded. docs/architecture.md, "Our own DNS wire code", says why this is
// not github.com/miekg/dns, which the tests keep as the reference decoder.

// Record types (RFC 1035, RFC 2782, RFC 3596) and classes.
const (
	typeA     uint16 = 1
	typePTR   uint16 = 12
	typeTXT   uint16 = 16
	typeAAAA  uint16 = 28
	typeSRV   uint16 = 33
	typeANY   uint16 = 255
	classINET uint16 = 1
	classANY  uint16 = 255
)

// Header flags and limits.
const (
	flagResponse      = 0x8000
	flagAuthoritative = 0x0400
	flagTruncated     = 0x0200
	headerLen         = 12
	// maxNameWire is the longest name on the wire, root label included.
	maxNameWire = 255
	// maxPointers bounds the compression pointers one name may follow, so
	// that a loop ends: a name of 255 bytes has at most 127 labels.
	maxPointers = 126
	// maxPointerOffset is the first offset a pointer cannot reach.
	maxPointerOffset = 1 << 14
)

var (
	errNameShort   = errors.New("name runs past the end")
	errNameLong    = errors.New("name longer than 255 bytes")
	errNamePointer = errors.New("too many compression pointers")
	errLabelType   = errors.New("reserved label type")
	errNotFQDN     = errors.New("name not fully qualified")
	errEmptyLabel  = errors.New("empty label")
	errLabelLong   = errors.New("label longer than 63 bytes")
	errRdata       = errors.New("record data does not fit its type")
)

// unpackName reads the name at b[off:], following compression pointers,
// and returns it in presentation format (see escapeLabel) with the offset
// just after it where it began.
func unpackName(b []byte, off int) (name string, next int, err error) {
	var arr [256]byte
	s := arr[:0]
	next = -1
	budget := maxNameWire
	for pointers := 0; ; {
		if off >= len(b) {
			return "", 0, errNameShort
		}
		c := int(b[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				if len(s) == 0 {
					return ".", next, nil
				}
				return string(s), next, nil
			}
			off++
			if off+c > len(b) {
				return "", 0, errNameShort
			}
			if budget -= c + 1; budget <= 0 {
				return "", 0, errNameLong
			}
			s = appendEscaped(s, b[off:off+c])
			s = append(s, '.')
			off += c
		case 0xC0:
			if off+1 >= len(b) {
				return "", 0, errNameShort
			}
			if next < 0 {
				next = off + 2
			}
			if pointers++; pointers > maxPointers {
				return "", 0, errNamePointer
			}
			off = int(binary.BigEndian.Uint16(b[off:]) & (maxPointerOffset - 1))
		default:
			return "", 0, errLabelType
		}
	}
}

// unpackRdata decodes the rdata b[start:end] of r, whose header fields are
// set; b is the message up to end, for the names in the rdata. ok is false
// for a type we do not use and for empty A and AAAA rdata, both skipped;
// err reports rdata that does not fit its type, SRV rdata cut short
// included (github.com/miekg/dns keeps the fields it has). Empty rdata of
// the other types leaves their fields zero, as miekg/dns does.
func (r *record) unpackRdata(b []byte, start int) (ok bool, err error) {
	end := len(b)
	if start == end {
		switch r.Type {
		case typePTR, typeSRV, typeTXT:
			return true, nil
		}
		return false, nil
	}
	switch r.Type {
	case typePTR:
		return r.rdataName(b, start)
	case typeSRV:
		if end-start < 7 {
			return false, errRdata
		}
		r.Prio = binary.BigEndian.Uint16(b[start:])
		r.Weight = binary.BigEndian.Uint16(b[start+2:])
		r.Port = binary.BigEndian.Uint16(b[start+4:])
		return r.rdataName(b, start+6)
	case typeTXT:
		for off := start; off < end; {
			n := int(b[off])
			if off+1+n > end {
				return false, errRdata
			}
			r.Txt = append(r.Txt, string(b[off+1:off+1+n]))
			off += 1 + n
		}
		return true, nil
	case typeA, typeAAAA:
		a, ok := netip.AddrFromSlice(b[start:end])
		if !ok || a.Is4() != (r.Type == typeA) {
			return false, errRdata
		}
		r.Addr = a
		return !a.Is4In6(), nil
	}
	return false, nil
}

// rdataName reads the name that ends r's rdata, the PTR or SRV target.
func (r *record) rdataName(b []byte, off int) (bool, error) {
	name, next, err := unpackName(b, off)
	if err != nil {
		return false, err
	}
	if next != len(b) {
		return false, errRdata
	}
	r.Target = name
	return true, nil
}

// msgWriter builds one DNS message, compressing names (RFC 1035 §4.1.4).
type msgWriter struct {
	b []byte
	// names holds where each name suffix written so far begins, by its
	// presentation format; nil when names are not compressed.
	names  map[string]int
	counts [4]uint16 // questions, answers, authority, additional
}

// Sections of a message, indexes of msgWriter.counts.
const (
	secAnswer     = 1
	secAuthority  = 2
	secAdditional = 3
)

func newMsgWriter(id, flags uint16) *msgWriter {
	w := &msgWriter{b: make([]byte, headerLen, 512), names: make(map[string]int)}
	binary.BigEndian.PutUint16(w.b, id)
	binary.BigEndian.PutUint16(w.b[2:], flags)
	return w
}

// records counts the records written.
func (w *msgWriter) records() int {
	return int(w.counts[secAnswer]) + int(w.counts[secAuthority]) + int(w.counts[secAdditional])
}

// truncate drops what was written from mark on, and the compression
// entries that point there.
func (w *msgWriter) truncate(mark int) {
	w.b = w.b[:mark]
	for k, off := range w.names {
		if off >= mark {
			delete(w.names, k)
		}
	}
}

// question appends q, or nothing when its name does not pack.
func (w *msgWriter) question(q question) error {
	if err := w.head(q.Name, q.Type, q.QU); err != nil {
		return err
	}
	w.counts[0]++
	return nil
}

// record appends r, with its TTL and cache-flush bit, to section sec, or
// nothing when it does not pack.
func (w *msgWriter) record(sec int, r *record) error {
	mark := len(w.b)
	if err := w.head(r.Name, r.Type, r.Flush); err != nil {
		return err
	}
	w.b = binary.BigEndian.AppendUint32(w.b, r.TTL)
	if err := w.rdata(r); err != nil {
		w.truncate(mark)
		return err
	}
	w.counts[sec]++
	return nil
}

// head appends what a question and a record begin with: the name, the
// type and the class IN, with the top bit (cache flush in a record,
// unicast response in a question) when top is set; or nothing when the
// name does not pack.
func (w *msgWriter) head(name string, typ uint16, top bool) error {
	mark := len(w.b)
	if err := w.name(name, true); err != nil {
		w.truncate(mark)
		return err
	}
	class := classINET
	if top {
		class |= classFlush
	}
	w.b = binary.BigEndian.AppendUint16(w.b, typ)
	w.b = binary.BigEndian.AppendUint16(w.b, class)
	return nil
}

// unrecord drops the last record of section sec, written from mark on.
func (w *msgWriter) unrecord(sec, mark int) {
	w.truncate(mark)
	w.counts[sec]--
}

// rdata appends r's rdata and its length. SRV targets are not compressed
// (RFC 2782), PTR targets are.
func (w *msgWriter) rdata(r *record) error {
	at := len(w.b)
	w.b = append(w.b, 0, 0)
	var err error
	switch r.Type {
	case typePTR:
		err = w.name(r.Target, true)
	case typeSRV:
		w.b = binary.BigEndian.AppendUint16(w.b, r.Prio)
		w.b = binary.BigEndian.AppendUint16(w.b, r.Weight)
		w.b = binary.BigEndian.AppendUint16(w.b, r.Port)
		err = w.name(r.Target, false)
	case typeTXT:
		for _, s := range txtOrEmpty(r.Txt) {
			if len(s) > maxTXTString {
				return fmt.Errorf("TXT string of %d bytes", len(s))
			}
			w.b = append(w.b, byte(len(s)))
			w.b = append(w.b, s...)
		}
	case typeA:
		if !r.Addr.Is4() {
			return fmt.Errorf("A record of %v", r.Addr)
		}
		a := r.Addr.As4()
		w.b = append(w.b, a[:]...)
	case typeAAAA:
		if !r.Addr.Is6() {
			return fmt.Errorf("AAAA record of %v", r.Addr)
		}
		a := r.Addr.As16()
		w.b = append(w.b, a[:]...)
	default:
		return fmt.Errorf("record type %d", r.Type)
	}
	if err != nil {
		return err
	}
	n := len(w.b) - at - 2
	if n > 0xFFFF {
		return fmt.Errorf("record data of %d bytes", n)
	}
	binary.BigEndian.PutUint16(w.b[at:], uint16(n))
	return nil
}

// name appends name, given in presentation format, pointing to an earlier
// copy of its longest known suffix when compress is set. Every suffix
// written is noted for the names that follow.
func (w *msgWriter) name(name string, compress bool) error {
	if name == "." {
		w.b = append(w.b, 0)
		return nil
	}
	wire := 1 // the root label
	for rest := name; rest != ""; {
		if off, ok := w.names[rest]; ok && compress {
			w.b = binary.BigEndian.AppendUint16(w.b, 0xC000|uint16(off))
			return nil
		} else if !ok && w.names != nil && len(w.b) < maxPointerOffset {
			w.names[rest] = len(w.b)
		}
		label, next, dot, err := cutLabel(rest)
		switch {
		case err != nil:
			return err
		case !dot:
			return errNotFQDN
		case label == "":
			return errEmptyLabel
		case len(label) > maxLabel:
			return errLabelLong
		}
		if wire += 1 + len(label); wire > maxNameWire {
			return errNameLong
		}
		w.b = append(w.b, byte(len(label)))
		w.b = append(w.b, label...)
		rest = next
	}
	if name == "" {
		return errNotFQDN
	}
	w.b = append(w.b, 0)
	return nil
}

// finish sets the header's counts and returns the message.
func (w *msgWriter) finish() []byte {
	for i, n := range w.counts {
		binary.BigEndian.PutUint16(w.b[4+2*i:], n)
	}
	return w.b
}

// rdata returns r's rdata in canonical wire form: names uncompressed, as
// RFC 6762 §8.2 compares records when probes collide.
func (r *record) rdata() []byte {
	w := &msgWriter{}
	if w.rdata(r) != nil {
		return nil
	}
	return w.b[2:]
}
