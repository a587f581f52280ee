package mdns

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// TXT keys of a pir member's TXT record (see the package doc).
const (
	txtVersion = "txtvers"
	txtID      = "id"
	txtGroup   = "g"
	txtHealth  = "health"
	txtComms   = "comms"
	txtMeta    = "m." // prefix of a metadata key
)

// buildTXT returns the TXT strings that publish m: txtvers=1, id, g,
// health and comms, then the metadata, sorted by key, as m.KEY=VALUE.
// A metadata pair longer than a TXT string allows (255 bytes) is left out
// and named in dropped. The fixed keys must fit: otherwise buildTXT fails
// with an error wrapping transport.ErrTooLarge.
func buildTXT(m *codec.Message) (txt []string, dropped []string, err error) {
	txt = []string{txtVersion + "=1"}
	for _, kv := range [][2]string{{txtID, m.ID}, {txtGroup, m.Group}, {txtHealth, m.Health}, {txtComms, m.Comms}} {
		if kv[1] == "" {
			continue
		}
		s := kv[0] + "=" + kv[1]
		if len(s) > maxTXTString {
			return nil, nil, fmt.Errorf("mdns: TXT %s=%.32q... is %d bytes, a TXT string holds %d: %w",
				kv[0], kv[1], len(s), maxTXTString, transport.ErrTooLarge)
		}
		txt = append(txt, s)
	}
	keys := make([]string, 0, len(m.Meta))
	for k := range m.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := txtMeta + k + "=" + m.Meta[k]
		if len(s) > maxTXTString || strings.IndexByte(k, '=') >= 0 || !printableKey(txtMeta+k) {
			dropped = append(dropped, k)
			continue
		}
		txt = append(txt, s)
	}
	return txt, dropped, nil
}

// printableKey reports whether k can be a TXT key: printable US-ASCII
// except '=' (RFC 6763 §6.4).
func printableKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e || k[i] == '=' {
			return false
		}
	}
	return k != ""
}

// txtPairs is a TXT record read as RFC 6763 §6 says: key=value pairs, keys
// compared without case, the first occurrence of a key winning, a key
// without '=' having an empty value, and strings with an empty key
// ignored. Keys keep their case for metadata.
type txtPairs struct {
	keys []string          // as written, in order
	vals map[string]string // by lower-case key
}

func parseTXT(txt []string) txtPairs {
	p := txtPairs{vals: make(map[string]string, len(txt))}
	for _, s := range txt {
		k, v, _ := strings.Cut(s, "=")
		if k == "" || !printableKey(k) {
			continue
		}
		lk := strings.ToLower(k)
		if _, dup := p.vals[lk]; dup {
			continue
		}
		p.keys = append(p.keys, k)
		p.vals[lk] = v
	}
	return p
}

// get returns the value of key k, given in lower case.
func (p txtPairs) get(k string) (string, bool) {
	v, ok := p.vals[k]
	return v, ok
}

// meta returns the metadata a synthesized message carries. For a pir
// member, the m.KEY pairs, prefix removed; for foreign software, every
// pair. Values that are not UTF-8 have their bad bytes replaced by U+FFFD.
func (p txtPairs) meta(pir bool) map[string]string {
	var m map[string]string
	for _, k := range p.keys {
		key := k
		if pir {
			if len(k) <= len(txtMeta) || !strings.EqualFold(k[:len(txtMeta)], txtMeta) {
				continue
			}
			key = k[len(txtMeta):]
		}
		if m == nil {
			m = make(map[string]string)
		}
		v := p.vals[strings.ToLower(k)]
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "\uFFFD")
		}
		m[key] = v
	}
	return m
}
