package pipe

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pirlan/pir/codec"
)

// Limits on single fields. A datagram is bounded by MaxSize as a whole; these
// keep one field from being absurd within it.
const (
	// MaxGroupLen is the longest group name, in bytes.
	MaxGroupLen = 255
	// MaxIDLen is the longest peer ID, in bytes. A UUID takes 36.
	MaxIDLen = 128
)

// Kind tokens of extension messages (field 5).
const (
	tokAnnounce = "ann"
	tokQuery    = "qry"
	tokGoodbye  = "bye"
	tokConfirm  = "cfm"
	tokEvidence = "evd"
	tokObituary = "obit"
)

// maxAgeMs bounds the durations of Confirm and Evidence messages on the
// wire, in milliseconds: about 24 days, far beyond any use.
const maxAgeMs = 1<<31 - 1

// Codec is the pipe format: GROUP|ID|HEALTH-URI|COMMS-URI, the format of the
// original pir, plus extension messages of six fields that an original peer
// ignores. docs/wire.md gives it byte by byte. The zero value is ready to
// use.
type Codec struct {
	// MaxSize is the largest datagram, in bytes, that Encode produces and
	// Decode accepts. Zero means codec.MaxDatagram (1452), which fits
	// a 1500-byte MTU over IPv6.
	MaxSize int
}

var (
	_ codec.Codec       = Codec{}
	_ codec.NameChecker = Codec{}
)

// CheckGroup reports why name cannot be a group name: it must be 1 to
// MaxGroupLen bytes of UTF-8 without control characters or '|'.
func (Codec) CheckGroup(name string) error { return validGroup(name) }

// CheckID reports why id cannot be a member ID: it must be 1 to MaxIDLen
// bytes of printable ASCII without space or '|'.
func (Codec) CheckID(id string) error { return validID(id) }

func (c Codec) maxSize() int {
	if c.MaxSize > 0 {
		return c.MaxSize
	}
	return codec.MaxDatagram
}

// Encode appends the encoding of m to dst.
//
// An Announce with no metadata whose health URI is tcp:// and whose URIs
// both parse is encoded exactly as the original pir encodes it, four fields
// and no terminator, unless m.Extended asks for the extension form. Every other message is an extension of six fields:
// GROUP|ID|HEALTH|COMMS|KIND|META. A '|' inside a URI is written as %7C so
// that framing never breaks.
func (c Codec) Encode(dst []byte, m *codec.Message) ([]byte, error) {
	if err := validGroup(m.Group); err != nil {
		return dst, fmt.Errorf("%w: group: %v", codec.ErrInvalid, err)
	}
	if err := validID(m.ID); err != nil {
		return dst, fmt.Errorf("%w: id: %v", codec.ErrInvalid, err)
	}
	if m.Kind.HasTarget() {
		return c.encodeTargeted(dst, m)
	}
	health := escapePipe(m.Health)
	comms := escapePipe(m.Comms)
	var tok string
	switch m.Kind {
	case codec.Announce, codec.Query:
		tok = tokAnnounce
		if m.Kind == codec.Query {
			tok = tokQuery
		}
		passiveQuery := m.Kind == codec.Query && health == "" && comms == ""
		if !passiveQuery {
			if err := validURI(health); err != nil {
				return dst, fmt.Errorf("%w: health URI: %v", codec.ErrInvalid, err)
			}
			if err := validURI(comms); err != nil {
				return dst, fmt.Errorf("%w: comms URI: %v", codec.ErrInvalid, err)
			}
		}
	case codec.Goodbye:
		tok = tokGoodbye
		health, comms = "", ""
	default:
		return dst, fmt.Errorf("%w: kind %v", codec.ErrInvalid, m.Kind)
	}
	for k, v := range m.Meta {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return dst, fmt.Errorf("%w: metadata %q: keys must be non-empty UTF-8, values UTF-8", codec.ErrInvalid, k)
		}
	}

	start := len(dst)
	dst = append(dst, m.Group...)
	dst = append(dst, '|')
	dst = append(dst, m.ID...)
	dst = append(dst, '|')
	dst = append(dst, health...)
	dst = append(dst, '|')
	dst = append(dst, comms...)
	if !(m.Kind == codec.Announce && !m.Extended && len(m.Meta) == 0 && legacySafe(health, comms)) {
		dst = append(dst, '|')
		dst = append(dst, tok...)
		dst = append(dst, '|')
		dst = appendMeta(dst, m.Meta)
	}
	if n := len(dst) - start; n > c.maxSize() {
		return dst[:start], fmt.Errorf("%w: %d bytes, limit %d", codec.ErrTooLarge, n, c.maxSize())
	}
	return dst, nil
}

// encodeTargeted encodes the kinds about another member:
// GROUP|ID|TARGET||KIND|ARGS, the arguments written like metadata.
func (c Codec) encodeTargeted(dst []byte, m *codec.Message) ([]byte, error) {
	if err := validID(m.Target); err != nil {
		return dst, fmt.Errorf("%w: target: %v", codec.ErrInvalid, err)
	}
	start := len(dst)
	dst = append(dst, m.Group...)
	dst = append(dst, '|')
	dst = append(dst, m.ID...)
	dst = append(dst, '|')
	dst = append(dst, m.Target...)
	dst = append(dst, "||"...)
	switch m.Kind {
	case codec.Confirm:
		dst = append(dst, tokConfirm+"|"...)
		if m.Probe {
			dst = append(dst, "probe=1&"...)
		}
		dst = append(dst, "since="...)
		dst = strconv.AppendInt(dst, ageMs(m.Since), 10)
	case codec.Evidence:
		dst = append(dst, tokEvidence+"|"...)
		sep := ""
		if m.Heard >= 0 {
			dst = append(dst, "heard="...)
			dst = strconv.AppendInt(dst, ageMs(m.Heard), 10)
			sep = "&"
		}
		if m.Probed >= 0 {
			dst = append(dst, sep+"probed="...)
			dst = strconv.AppendInt(dst, ageMs(m.Probed), 10)
		}
	case codec.Obituary:
		dst = append(dst, tokObituary+"|"...)
	}
	if n := len(dst) - start; n > c.maxSize() {
		return dst[:start], fmt.Errorf("%w: %d bytes, limit %d", codec.ErrTooLarge, n, c.maxSize())
	}
	return dst, nil
}

// ageMs is d in whole milliseconds, within [0, maxAgeMs].
func ageMs(d time.Duration) int64 {
	return min(max(d.Milliseconds(), 0), maxAgeMs)
}

// decodeTargeted fills the fields of the kinds about another member from
// fields 3, 4 and 6 of the datagram. Arguments it does not know are
// ignored, so that later versions can add some.
func decodeTargeted(m *codec.Message, target, empty, args string) error {
	if err := validID(target); err != nil {
		return fmt.Errorf("%w: target: %v", codec.ErrMalformed, err)
	}
	if empty != "" {
		return fmt.Errorf("%w: field 4 of a %v must be empty", codec.ErrMalformed, m.Kind)
	}
	m.Target, m.Health, m.Comms = target, "", ""
	m.Heard, m.Probed = -1, -1
	for args != "" {
		var pair string
		pair, args, _ = strings.Cut(args, "&")
		k, v, _ := strings.Cut(pair, "=")
		var dst *time.Duration
		switch {
		case m.Kind == codec.Confirm && k == "since":
			dst = &m.Since
		case m.Kind == codec.Confirm && k == "probe":
			m.Probe = v == "1"
			continue
		case m.Kind == codec.Evidence && k == "heard":
			dst = &m.Heard
		case m.Kind == codec.Evidence && k == "probed":
			dst = &m.Probed
		default:
			continue
		}
		ms, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return fmt.Errorf("%w: %v argument %.16q: want milliseconds", codec.ErrMalformed, m.Kind, pair)
		}
		*dst = time.Duration(ms) * time.Millisecond
	}
	return nil
}

// Decode parses one datagram into m. It accepts the original four-field
// announcement and the six-field extensions; fields after the sixth are
// ignored, so that later versions can add some. A six-field message sets
// m.Extended: no original pir peer writes one. Decode allocates one string
// for the whole datagram, and a map when the message carries metadata.
func (c Codec) Decode(b []byte, m *codec.Message) error {
	if len(b) > c.maxSize() {
		return fmt.Errorf("%w: %d bytes, limit %d", codec.ErrTooLarge, len(b), c.maxSize())
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty datagram", codec.ErrMalformed)
	}
	// One string for the whole datagram; the fields are slices of it.
	s := string(b)
	var f [6]string
	n := 0
	for ; n < len(f); n++ {
		i := strings.IndexByte(s, '|')
		if i < 0 {
			f[n] = s
			n++
			break
		}
		f[n], s = s[:i], s[i+1:]
	}
	// n is now the number of fields, counting any after the sixth as one.
	if n != 4 && n != 6 {
		return fmt.Errorf("%w: %d fields", codec.ErrMalformed, n)
	}
	*m = codec.Message{Kind: codec.Announce, Group: f[0], ID: f[1], Health: f[2], Comms: f[3]}
	if err := validGroup(m.Group); err != nil {
		return fmt.Errorf("%w: group: %v", codec.ErrMalformed, err)
	}
	if err := validID(m.ID); err != nil {
		return fmt.Errorf("%w: id: %v", codec.ErrMalformed, err)
	}
	if n == 6 {
		m.Extended = true
		switch f[4] {
		case tokAnnounce:
		case tokQuery:
			m.Kind = codec.Query
		case tokGoodbye:
			m.Kind = codec.Goodbye
		case tokConfirm:
			m.Kind = codec.Confirm
			return decodeTargeted(m, f[2], f[3], f[5])
		case tokEvidence:
			m.Kind = codec.Evidence
			return decodeTargeted(m, f[2], f[3], f[5])
		case tokObituary:
			m.Kind = codec.Obituary
			return decodeTargeted(m, f[2], f[3], f[5])
		default:
			return fmt.Errorf("%w: unknown kind %.16q", codec.ErrMalformed, f[4])
		}
		meta, err := parseMeta(f[5])
		if err != nil {
			return fmt.Errorf("%w: metadata: %v", codec.ErrMalformed, err)
		}
		m.Meta = meta
	}
	switch {
	case m.Kind == codec.Goodbye:
		m.Health, m.Comms = "", ""
		return nil
	case m.Kind == codec.Query && m.Health == "" && m.Comms == "":
		return nil // a passive query: "who is there?" from a watcher
	}
	if err := validURI(m.Health); err != nil {
		return fmt.Errorf("%w: health URI: %v", codec.ErrMalformed, err)
	}
	if err := validURI(m.Comms); err != nil {
		return fmt.Errorf("%w: comms URI: %v", codec.ErrMalformed, err)
	}
	return nil
}

// legacySafe reports whether an original pir peer can take a four-field
// announcement with these URIs without crashing: it parses both with
// url.Parse and insists on a tcp:// health URI.
func legacySafe(health, comms string) bool {
	h, err := url.Parse(health)
	if err != nil || h.Scheme != "tcp" || h.Host == "" {
		return false
	}
	_, err = url.Parse(comms)
	return err == nil
}

func escapePipe(s string) string {
	if strings.IndexByte(s, '|') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "|", "%7C")
}

func validGroup(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > MaxGroupLen:
		return fmt.Errorf("longer than %d bytes", MaxGroupLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '|' {
			return fmt.Errorf("control character or '|'")
		}
	}
	return nil
}

func validID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > MaxIDLen:
		return fmt.Errorf("longer than %d bytes", MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '|' {
			return fmt.Errorf("byte %#x at %d: want printable ASCII, no '|'", c, i)
		}
	}
	return nil
}

// validURI checks the shape of a URI without allocating: a scheme, a colon,
// then printable ASCII with well-formed percent escapes. The receiver parses
// it fully with url.Parse before using it.
func validURI(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	colon := strings.IndexByte(s, ':')
	if colon < 1 {
		return fmt.Errorf("no scheme")
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return fmt.Errorf("bad scheme")
		}
	}
	for i := colon + 1; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '|' {
			return fmt.Errorf("byte %#x at %d", c, i)
		}
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("bad percent escape at %d", i)
			}
			i += 2
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendMeta writes metadata as a URL query string with keys sorted, so that
// one map always encodes to the same bytes.
func appendMeta(dst []byte, meta map[string]string) []byte {
	if len(meta) == 0 {
		return dst
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, url.QueryEscape(k)...)
		dst = append(dst, '=')
		dst = append(dst, url.QueryEscape(meta[k])...)
	}
	return dst
}

// parseMeta reads what appendMeta writes. Keys must be non-empty; a key given
// twice keeps its last value.
func parseMeta(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	meta := make(map[string]string, strings.Count(s, "&")+1)
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("pair without '='")
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, fmt.Errorf("empty key")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(key) || !utf8.ValidString(val) {
			return nil, fmt.Errorf("not UTF-8")
		}
		meta[key] = val
	}
	return meta, nil
}
