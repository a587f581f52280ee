package pipe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
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
	tokPing     = "png"
	tokAck      = "ack"
	tokOffer    = "offer"
	tokPull     = "pull"
	tokPage     = "page"
)

// transferKinds are the kinds of the ping protocol and the state transfer
// whose messages end at ARGS, by their tokens.
var transferKinds = map[string]codec.Kind{tokPing: codec.Ping, tokAck: codec.Ack, tokOffer: codec.Offer, tokPull: codec.Pull}

// entryFields is the number of fields of one entry of a page:
// MID|ADDR|HEALTH|COMMS|ARGS.
const entryFields = 5

// maxAgeMs bounds the durations of Confirm and Evidence messages on the
// wire, in milliseconds: about 24 days, far beyond any use.
const maxAgeMs = 1<<31 - 1

// Codec is the pipe format: GROUP|ID|HEALTH-URI|COMMS-URI, the format of the
// original pir, plus extension messages of six fields or more that an
// original peer ignores. docs/wire.md gives it byte by byte. The zero value
// is ready to use.
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
// and no terminator, unless m.Extended asks for the extension form or m
// sets an argument of field 7. Every other message is an extension of six
// fields, GROUP|ID|HEALTH|COMMS|KIND|META; an Announce or a Query that sets
// Pings, Version, HealthFails or Interval adds field 7, ARGS, and a Page its
// entries. A '|' inside a URI is written as %7C so that framing never
// breaks.
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
	switch m.Kind {
	case codec.Ping, codec.Ack, codec.Offer, codec.Pull, codec.Page:
		return c.encodeTransfer(dst, m)
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
	if err := validMeta(m.Meta); err != nil {
		return dst, err
	}
	args := m.Kind != codec.Goodbye && hasArgs(m)
	if args && (m.HealthFails < 0 || m.HealthFails > maxCount) {
		return dst, fmt.Errorf("%w: HealthFails %d: want 0 to %d", codec.ErrInvalid, m.HealthFails, maxCount)
	}

	start := len(dst)
	dst = append(dst, m.Group...)
	dst = append(dst, '|')
	dst = append(dst, m.ID...)
	dst = append(dst, '|')
	dst = append(dst, health...)
	dst = append(dst, '|')
	dst = append(dst, comms...)
	if !(m.Kind == codec.Announce && !m.Extended && !args && len(m.Meta) == 0 && legacySafe(health, comms)) {
		dst = append(dst, '|')
		dst = append(dst, tok...)
		dst = append(dst, '|')
		dst = appendMeta(dst, m.Meta)
	}
	if args {
		dst = append(dst, '|')
		dst = appendArgs(dst, m)
	}
	return c.checkSize(dst, start)
}

// checkSize returns dst, or dst[:start] and ErrTooLarge when what Encode
// appended after start is longer than the limit.
func (c Codec) checkSize(dst []byte, start int) ([]byte, error) {
	if n := len(dst) - start; n > c.maxSize() {
		return dst[:start], fmt.Errorf("%w: %d bytes, limit %d", codec.ErrTooLarge, n, c.maxSize())
	}
	return dst, nil
}

// maxCount bounds the counts and seconds of ARGS: 31 bits, as maxAgeMs.
const maxCount = 1<<31 - 1

// hasArgs reports whether m sets a field that field 7 (ARGS) of an ann or
// a qry carries. Without one, field 7 is not written, and the message is
// byte for byte what pir wrote before ARGS existed.
func hasArgs(m *codec.Message) bool {
	return m.Pings || m.Version != 0 || m.HealthFails != 0 || m.Interval > 0
}

// appendArgs writes field 7 of an ann or a qry: the keys that are set,
// sorted; a key that is absent means zero.
func appendArgs(dst []byte, m *codec.Message) []byte {
	sep := ""
	if m.Interval > 0 {
		// Rounded up: a receiver that expires the sender after some
		// multiple of it never does so early.
		s := m.Interval / time.Second
		if m.Interval%time.Second != 0 {
			s++
		}
		s = min(s, maxCount)
		dst = append(dst, "ai="...)
		dst = strconv.AppendInt(dst, int64(s), 10)
		sep = "&"
	}
	if m.HealthFails != 0 {
		dst = append(dst, sep+"h="...)
		dst = strconv.AppendInt(dst, int64(m.HealthFails), 10)
		sep = "&"
	}
	if m.Pings {
		dst = append(dst, sep+"p=1"...)
		sep = "&"
	}
	if m.Version != 0 {
		dst = append(dst, sep+"v="...)
		dst = strconv.AppendUint(dst, uint64(m.Version), 10)
	}
	return dst
}

// encodeTransfer encodes the kinds of the ping protocol and the state
// transfer: GROUP|ID|||KIND|ARGS, and for a page its entries after ARGS,
// five fields each.
func (c Codec) encodeTransfer(dst []byte, m *codec.Message) ([]byte, error) {
	switch m.Kind {
	case codec.Offer:
		if m.Pages < 0 || m.Pages > codec.MaxPages {
			return dst, fmt.Errorf("%w: Pages %d: want 0 to %d", codec.ErrInvalid, m.Pages, codec.MaxPages)
		}
	case codec.Pull:
		if m.Page < 0 || m.Page >= codec.MaxPages {
			return dst, fmt.Errorf("%w: Page %d: want 0 to %d", codec.ErrInvalid, m.Page, codec.MaxPages-1)
		}
	case codec.Page:
		if m.Pages < 1 || m.Pages > codec.MaxPages || m.Page < 0 || m.Page >= m.Pages {
			return dst, fmt.Errorf("%w: page %d of %d: want 0 <= Page < Pages <= %d", codec.ErrInvalid, m.Page, m.Pages, codec.MaxPages)
		}
		if len(m.Entries) > codec.MaxEntries {
			return dst, fmt.Errorf("%w: %d entries, limit %d", codec.ErrTooLarge, len(m.Entries), codec.MaxEntries)
		}
		for i := range m.Entries {
			if err := validEntry(&m.Entries[i]); err != nil {
				return dst, fmt.Errorf("%w: entry %d: %v", codec.ErrInvalid, i, err)
			}
		}
	}
	start := len(dst)
	dst = append(dst, m.Group...)
	dst = append(dst, '|')
	dst = append(dst, m.ID...)
	dst = append(dst, "|||"...)
	switch m.Kind {
	case codec.Ping, codec.Ack:
		tok := tokPing
		if m.Kind == codec.Ack {
			tok = tokAck
		}
		dst = append(dst, tok+"|n="...)
		dst = appendHex(dst, uint64(m.Nonce), 8)
		dst = append(dst, "&v="...)
		dst = strconv.AppendUint(dst, uint64(m.Version), 10)
		if m.Kind == codec.Ack && m.Who {
			dst = append(dst, "&who=1"...)
		}
	case codec.Offer:
		dst = append(dst, tokOffer+"|c="...)
		dst = appendCookie(dst, m.Cookie)
		dst = append(dst, "&pages="...)
		dst = strconv.AppendInt(dst, int64(m.Pages), 10)
	case codec.Pull:
		dst = append(dst, tokPull+"|c="...)
		dst = appendCookie(dst, m.Cookie)
		dst = append(dst, "&page="...)
		dst = strconv.AppendInt(dst, int64(m.Page), 10)
	case codec.Page:
		dst = append(dst, tokPage+"|c="...)
		dst = appendCookie(dst, m.Cookie)
		dst = append(dst, "&page="...)
		dst = strconv.AppendInt(dst, int64(m.Page), 10)
		dst = append(dst, "&pages="...)
		dst = strconv.AppendInt(dst, int64(m.Pages), 10)
		for i := range m.Entries {
			if len(dst)-start > c.maxSize() {
				break // too large already: checkSize says so
			}
			dst = appendEntry(dst, &m.Entries[i])
		}
	}
	return c.checkSize(dst, start)
}

// appendEntry writes one entry of a page, its leading '|' included:
// |MID|ADDR|HEALTH|COMMS|ARGS. ARGS holds h, p, s, v and x when set and
// the metadata as m.KEY=VALUE, sorted by key.
func appendEntry(dst []byte, e *codec.Entry) []byte {
	dst = append(dst, '|')
	dst = append(dst, e.ID...)
	dst = append(dst, '|')
	if e.Addr.IsValid() {
		dst = e.Addr.AppendTo(dst)
	}
	dst = append(dst, '|')
	dst = append(dst, escapePipe(e.Health)...)
	dst = append(dst, '|')
	dst = append(dst, escapePipe(e.Comms)...)
	dst = append(dst, '|')
	start := len(dst)
	sep := func() {
		if len(dst) > start {
			dst = append(dst, '&')
		}
	}
	if e.HealthFails != 0 {
		dst = append(dst, "h="...)
		dst = strconv.AppendInt(dst, int64(e.HealthFails), 10)
	}
	// "m." sorts after "h" and before "p": the metadata goes here.
	if len(e.Meta) > 0 {
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sep()
			dst = append(dst, "m."...)
			dst = append(dst, url.QueryEscape(k)...)
			dst = append(dst, '=')
			dst = append(dst, url.QueryEscape(e.Meta[k])...)
		}
	}
	if e.Pings {
		sep()
		dst = append(dst, "p=1"...)
	}
	if e.Suspect {
		sep()
		dst = append(dst, "s=1"...)
	}
	if e.Version != 0 {
		sep()
		dst = append(dst, "v="...)
		dst = strconv.AppendUint(dst, uint64(e.Version), 10)
	}
	if e.Extended {
		sep()
		dst = append(dst, "x=1"...)
	}
	return dst
}

// validEntry reports why Encode cannot write e.
func validEntry(e *codec.Entry) error {
	if err := validID(e.ID); err != nil {
		return fmt.Errorf("id: %v", err)
	}
	if e.Addr.IsValid() {
		if err := validAddr(e.Addr.String()); err != nil {
			return fmt.Errorf("addr: %v", err)
		}
	}
	if err := validURI(escapePipe(e.Health)); err != nil {
		return fmt.Errorf("health URI: %v", err)
	}
	if err := validURI(escapePipe(e.Comms)); err != nil {
		return fmt.Errorf("comms URI: %v", err)
	}
	if e.HealthFails < 0 || e.HealthFails > maxCount {
		return fmt.Errorf("HealthFails %d: want 0 to %d", e.HealthFails, maxCount)
	}
	return metaProblem(e.Meta)
}

// validAddr checks an entry's ADDR field as written: printable ASCII
// without space or '|' (an IPv6 zone is the one part a sender chooses).
func validAddr(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '|' {
			return fmt.Errorf("byte %#x at %d", c, i)
		}
	}
	return nil
}

// validMeta reports why Encode cannot write meta, wrapping ErrInvalid.
func validMeta(meta map[string]string) error {
	if err := metaProblem(meta); err != nil {
		return fmt.Errorf("%w: %v", codec.ErrInvalid, err)
	}
	return nil
}

// metaProblem reports why meta cannot be written: keys must be non-empty
// UTF-8, values UTF-8.
func metaProblem(meta map[string]string) error {
	for k, v := range meta {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("metadata %q: keys must be non-empty UTF-8, values UTF-8", k)
		}
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendHex writes the n low nibbles of v as lower-case hex digits.
func appendHex(dst []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[v>>(4*uint(i))&0xf])
	}
	return dst
}

func appendCookie(dst []byte, c [8]byte) []byte {
	for _, b := range c {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	return dst
}

// parseHex reads exactly n lower-case hex digits.
func parseHex(s string, n int) (uint64, bool) {
	if len(s) != n {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
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
		if m.Failed {
			dst = append(dst, "failed=1"...)
			sep = "&"
		}
		if m.Heard >= 0 {
			dst = append(dst, sep+"heard="...)
			dst = strconv.AppendInt(dst, ageMs(m.Heard), 10)
			sep = "&"
		}
		if m.Probed >= 0 {
			dst = append(dst, sep+"probed="...)
			dst = strconv.AppendInt(dst, ageMs(m.Probed), 10)
		}
	case codec.Obituary:
		dst = append(dst, tokObituary+"|"...)
		// An obituary of the older rule carries no since: a zero Since
		// keeps today's bytes.
		if ms := ageMs(m.Since); ms > 0 {
			dst = append(dst, "since="...)
			dst = strconv.AppendInt(dst, ms, 10)
		}
	}
	return c.checkSize(dst, start)
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
		case m.Kind == codec.Evidence && k == "failed":
			m.Failed = v == "1"
			continue
		case m.Kind == codec.Obituary && k == "since":
			dst = &m.Since
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
// announcement and the six-field extensions. Field 7 of an ann or a qry is
// ARGS; a page's entries follow its sixth field; other fields after the
// sixth are ignored, so that later versions can add some. A message of six
// fields or more sets m.Extended: no original pir peer writes one. Decode
// allocates one string for the whole datagram, a map when the message
// carries metadata, and for a page its entries.
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
	more := false // a '|' ends the sixth field: s holds the fields after it
	for n < len(f) {
		i := strings.IndexByte(s, '|')
		if i < 0 {
			f[n], s = s, ""
			n++
			break
		}
		f[n], s = s[:i], s[i+1:]
		n++
		more = n == len(f)
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
		case tokPing, tokAck, tokOffer, tokPull:
			m.Kind = transferKinds[f[4]]
			return decodeTransfer(m, f[2], f[3], f[5], "")
		case tokPage:
			m.Kind = codec.Page
			if !more {
				return decodeTransfer(m, f[2], f[3], f[5], "")
			}
			if s == "" {
				return fmt.Errorf("%w: page: an empty field after ARGS", codec.ErrMalformed)
			}
			return decodeTransfer(m, f[2], f[3], f[5], s)
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
		// a passive query: "who is there?" from a watcher
	default:
		if err := validURI(m.Health); err != nil {
			return fmt.Errorf("%w: health URI: %v", codec.ErrMalformed, err)
		}
		if err := validURI(m.Comms); err != nil {
			return fmt.Errorf("%w: comms URI: %v", codec.ErrMalformed, err)
		}
	}
	if more {
		args, _, _ := strings.Cut(s, "|")
		return decodeArgs(m, args)
	}
	return nil
}

// decodeArgs reads field 7 (ARGS) of an ann or a qry. Keys it does not
// know are ignored, as are pairs without '=' (an older pir ignored the
// whole field); a key it knows with a value that is not what it writes is
// malformed.
func decodeArgs(m *codec.Message, args string) error {
	for args != "" {
		var pair string
		pair, args, _ = strings.Cut(args, "&")
		k, v, _ := strings.Cut(pair, "=")
		var err error
		switch k {
		case "ai":
			var sec uint64
			sec, err = strconv.ParseUint(v, 10, 31)
			m.Interval = time.Duration(sec) * time.Second
		case "h":
			var h uint64
			h, err = strconv.ParseUint(v, 10, 31)
			m.HealthFails = int(h)
		case "p":
			m.Pings = v == "1"
		case "v":
			var ver uint64
			ver, err = strconv.ParseUint(v, 10, 32)
			m.Version = uint32(ver)
		}
		if err != nil {
			return fmt.Errorf("%w: %v argument %.16q: want a decimal number", codec.ErrMalformed, m.Kind, pair)
		}
	}
	return nil
}

// decodeTransfer fills the fields of the kinds of the ping protocol and
// the state transfer from fields 3, 4 and 6, and for a page its entries
// (the fields after the sixth, entries != "" only for a page). Arguments
// it does not know are ignored; the nonce and the cookie are required,
// and so are a page's numbers.
func decodeTransfer(m *codec.Message, health, comms, args, entries string) error {
	if health != "" || comms != "" {
		return fmt.Errorf("%w: fields 3 and 4 of a %v must be empty", codec.ErrMalformed, m.Kind)
	}
	var haveNonce, haveCookie, havePage, havePages bool
	for args != "" {
		var pair string
		pair, args, _ = strings.Cut(args, "&")
		k, v, _ := strings.Cut(pair, "=")
		ok := true
		switch {
		case k == "n" && (m.Kind == codec.Ping || m.Kind == codec.Ack):
			var n uint64
			n, ok = parseHex(v, 8)
			m.Nonce, haveNonce = uint32(n), ok
		case k == "v" && (m.Kind == codec.Ping || m.Kind == codec.Ack):
			ver, err := strconv.ParseUint(v, 10, 32)
			m.Version, ok = uint32(ver), err == nil
		case k == "who" && m.Kind == codec.Ack:
			m.Who = v == "1"
		case k == "c" && (m.Kind == codec.Offer || m.Kind == codec.Pull || m.Kind == codec.Page):
			var c uint64
			c, ok = parseHex(v, 16)
			binary.BigEndian.PutUint64(m.Cookie[:], c)
			haveCookie = ok
		case k == "page" && (m.Kind == codec.Pull || m.Kind == codec.Page):
			p, err := strconv.ParseUint(v, 10, 31)
			ok = err == nil && p < codec.MaxPages
			m.Page, havePage = int(p), ok
		case k == "pages" && (m.Kind == codec.Offer || m.Kind == codec.Page):
			p, err := strconv.ParseUint(v, 10, 31)
			ok = err == nil && p <= codec.MaxPages
			m.Pages, havePages = int(p), ok
		}
		if !ok {
			return fmt.Errorf("%w: %v argument %.24q", codec.ErrMalformed, m.Kind, pair)
		}
	}
	switch m.Kind {
	case codec.Ping, codec.Ack:
		if !haveNonce {
			return fmt.Errorf("%w: %v without a nonce", codec.ErrMalformed, m.Kind)
		}
		return nil
	case codec.Offer:
		if !haveCookie || !havePages {
			return fmt.Errorf("%w: offer without a cookie or pages", codec.ErrMalformed)
		}
		return nil
	case codec.Pull:
		if !haveCookie || !havePage {
			return fmt.Errorf("%w: pull without a cookie or page", codec.ErrMalformed)
		}
		return nil
	}
	// A page.
	if !haveCookie || !havePage || !havePages || m.Page >= m.Pages {
		return fmt.Errorf("%w: page without a cookie, or page %d of %d", codec.ErrMalformed, m.Page, m.Pages)
	}
	if entries == "" {
		return nil
	}
	nf := strings.Count(entries, "|") + 1
	if nf%entryFields != 0 {
		return fmt.Errorf("%w: page: %d fields after ARGS, not %d per entry", codec.ErrMalformed, nf, entryFields)
	}
	if nf/entryFields > codec.MaxEntries {
		return fmt.Errorf("%w: %d entries, limit %d", codec.ErrMalformed, nf/entryFields, codec.MaxEntries)
	}
	m.Entries = make([]codec.Entry, nf/entryFields)
	for i := range m.Entries {
		var ef [entryFields]string
		for j := range ef {
			ef[j], entries, _ = strings.Cut(entries, "|")
		}
		if err := decodeEntry(&m.Entries[i], ef); err != nil {
			return fmt.Errorf("%w: entry %d: %v", codec.ErrMalformed, i, err)
		}
	}
	return nil
}

// decodeEntry reads one entry of a page: MID|ADDR|HEALTH|COMMS|ARGS.
func decodeEntry(e *codec.Entry, f [entryFields]string) error {
	e.ID, e.Health, e.Comms = f[0], f[2], f[3]
	if err := validID(e.ID); err != nil {
		return fmt.Errorf("id: %v", err)
	}
	if f[1] != "" {
		if err := validAddr(f[1]); err != nil {
			return fmt.Errorf("addr: %v", err)
		}
		a, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return fmt.Errorf("addr: %v", err)
		}
		e.Addr = a
	}
	if err := validURI(e.Health); err != nil {
		return fmt.Errorf("health URI: %v", err)
	}
	if err := validURI(e.Comms); err != nil {
		return fmt.Errorf("comms URI: %v", err)
	}
	for args := f[4]; args != ""; {
		var pair string
		pair, args, _ = strings.Cut(args, "&")
		k, v, _ := strings.Cut(pair, "=")
		var err error
		switch {
		case k == "h":
			var h uint64
			h, err = strconv.ParseUint(v, 10, 31)
			e.HealthFails = int(h)
		case k == "p":
			e.Pings = v == "1"
		case k == "s":
			e.Suspect = v == "1"
		case k == "v":
			var ver uint64
			ver, err = strconv.ParseUint(v, 10, 32)
			e.Version = uint32(ver)
		case k == "x":
			e.Extended = v == "1"
		case strings.HasPrefix(k, "m."):
			var key, val string
			if key, err = url.QueryUnescape(k[2:]); err != nil {
				break
			}
			if val, err = url.QueryUnescape(v); err != nil {
				break
			}
			if key == "" || !utf8.ValidString(key) || !utf8.ValidString(val) {
				return fmt.Errorf("metadata %.24q: keys must be non-empty UTF-8, values UTF-8", pair)
			}
			if e.Meta == nil {
				e.Meta = make(map[string]string)
			}
			e.Meta[key] = val
		}
		if err != nil {
			return fmt.Errorf("argument %.24q: %v", pair, err)
		}
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
