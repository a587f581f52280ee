package mdns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/transport"
)

// Codec is the message boundary of a Conn: a Group over mDNS encodes its
// messages with it, Send reads them, and Receive returns messages the Conn
// made (from DNS-SD records, or sent opaquely by another Conn) in its
// format. It is the Conn's DefaultCodec, so a discovery.Config over mDNS
// needs no Codec. Its bytes are a private envelope between a Group and its
// Conn, and between Conns (inside the opaque records, see the package
// doc): no other software reads them, and they may change between
// versions of pir together with the Conn.
//
// The envelope: the bytes "pM", a version byte (1), a flags byte (bit 0
// Probe, bit 1 "a foreign service": see Decode), the Kind, then Group,
// ID, Health, Comms and Target, each a uvarint length and the bytes, Since,
// Heard and Probed in nanoseconds as varints, and the metadata as a
// uvarint count of key and value strings.
//
// A Codec is a value and safe for concurrent use.
type Codec struct {
	// MaxSize is the largest message, in bytes, Encode produces and Decode
	// accepts. Zero means MaxRaw (8909), what a Conn carries opaquely.
	MaxSize int
}

var (
	_ codec.Codec            = Codec{}
	_ codec.NameChecker      = Codec{}
	_ transport.DefaultCodec = (*Conn)(nil)
)

// DefaultCodec returns Codec{}: a Group over mDNS speaks to its Conn in
// the Conn's own format, whatever pir's other transports speak.
func (c *Conn) DefaultCodec() codec.Codec { return Codec{} }

// Limits on the fields a Codec carries, which the TXT record also bounds
// (a string of at most 255 bytes, "g=" or "id=" included).
const (
	// MaxGroupLen is the longest group name, in bytes.
	MaxGroupLen = 253
	// MaxIDLen is the longest member ID, in bytes, as pir's pipe format
	// allows, so that a member keeps its ID across transports.
	MaxIDLen = 128
)

const (
	envMagic0, envMagic1, envVersion = 'p', 'M', 1

	flagProbe   = 1 << 0
	flagForeign = 1 << 1 // synthesized from a foreign service's records
)

// ErrNotMessage reports bytes given to Send that are not a message of
// Codec: a Group with another codec (codec/auth, say) over a Conn that
// does not carry opaque bytes (see Config.Opaque).
var ErrNotMessage = errors.New("mdns: not a message of mdns.Codec")

func (c Codec) maxSize() int {
	if c.MaxSize > 0 {
		return c.MaxSize
	}
	return MaxRaw
}

// CheckGroup reports why name cannot be the group of a Conn: it must be 1
// to MaxGroupLen bytes of UTF-8 without control characters or '|'.
func (Codec) CheckGroup(name string) error { return validGroup(name) }

// CheckID reports why id cannot be a member's ID: it must be 1 to MaxIDLen
// bytes of printable ASCII without space or '|'.
func (Codec) CheckID(id string) error {
	if !validID(id) {
		return fmt.Errorf("want 1 to %d bytes of printable ASCII without '|' or spaces", MaxIDLen)
	}
	return nil
}

// Encode appends m in the envelope to dst. It refuses, with an error
// wrapping codec.ErrInvalid, a message with no kind, a group or ID that
// CheckGroup or CheckID refuse, an announcement or active query with one
// URI but not the other, or an empty metadata key; with codec.ErrTooLarge
// one longer than MaxSize.
func (c Codec) Encode(dst []byte, m *codec.Message) ([]byte, error) {
	return c.encode(dst, m, false)
}

// encode is Encode; foreign marks an announcement the Conn synthesized for
// a foreign service, which Decode reports with Extended false.
func (c Codec) encode(dst []byte, m *codec.Message, foreign bool) ([]byte, error) {
	if err := check(m); err != nil {
		return dst, err
	}
	start := len(dst)
	var flags byte
	if m.Probe {
		flags |= flagProbe
	}
	if foreign && m.Kind == codec.Announce {
		flags |= flagForeign
	}
	dst = append(dst, envMagic0, envMagic1, envVersion, flags, byte(m.Kind))
	for _, s := range []string{m.Group, m.ID, m.Health, m.Comms, m.Target} {
		dst = appendString(dst, s)
	}
	for _, d := range []time.Duration{m.Since, m.Heard, m.Probed} {
		dst = binary.AppendVarint(dst, int64(d))
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Meta)))
	for k, v := range m.Meta {
		dst = appendString(appendString(dst, k), v)
	}
	if n := len(dst) - start; n > c.maxSize() {
		return dst[:start], fmt.Errorf("%w: %d bytes, at most %d", codec.ErrTooLarge, n, c.maxSize())
	}
	return dst, nil
}

func check(m *codec.Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{codec.ErrInvalid}, args...)...)
	}
	if m.Kind < codec.Announce || m.Kind > codec.Obituary {
		return bad("kind %d", m.Kind)
	}
	if err := validGroup(m.Group); err != nil {
		return bad("group %q: %v", m.Group, err)
	}
	if !validID(m.ID) {
		return bad("id %q", m.ID)
	}
	if m.Kind.HasTarget() && !validID(m.Target) {
		return bad("target %q", m.Target)
	}
	if m.Kind == codec.Announce && (m.Health == "" || m.Comms == "") ||
		m.Kind == codec.Query && (m.Health == "") != (m.Comms == "") {
		return bad("an announcement needs both URIs")
	}
	if !utf8.ValidString(m.Health) || !utf8.ValidString(m.Comms) {
		return bad("a URI is not UTF-8")
	}
	for k := range m.Meta {
		if k == "" {
			return bad("empty metadata key")
		}
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// Decode parses one envelope into m. It never panics; bytes that are not
// an envelope, or whose fields Encode would refuse, fail with an error
// wrapping codec.ErrMalformed, and a message longer than MaxSize with one
// wrapping codec.ErrTooLarge. m.Extended is true for every message but
// an announcement a Conn synthesized for a foreign service (DNS-SD
// software that is not pir, which cannot answer pir's confirmations).
func (c Codec) Decode(b []byte, m *codec.Message) error {
	if len(b) > c.maxSize() {
		return fmt.Errorf("%w: %d bytes, at most %d", codec.ErrTooLarge, len(b), c.maxSize())
	}
	bad := func(what string) error { return fmt.Errorf("%w: mdns envelope: %s", codec.ErrMalformed, what) }
	if len(b) < 5 || b[0] != envMagic0 || b[1] != envMagic1 || b[2] != envVersion {
		return bad("no header")
	}
	flags, kind := b[3], codec.Kind(b[4])
	if flags&^(flagProbe|flagForeign) != 0 {
		return bad("unknown flags")
	}
	r := reader{b: b[5:]}
	var out codec.Message
	out.Kind = kind
	out.Probe = flags&flagProbe != 0
	out.Extended = flags&flagForeign == 0
	for _, p := range []*string{&out.Group, &out.ID, &out.Health, &out.Comms, &out.Target} {
		*p = r.str()
	}
	for _, p := range []*time.Duration{&out.Since, &out.Heard, &out.Probed} {
		*p = time.Duration(r.varint())
	}
	n := r.uvarint()
	if n > uint64(len(r.b)/2) {
		return bad("metadata count")
	}
	if n > 0 {
		out.Meta = make(map[string]string, n)
		for range n {
			k := r.str()
			out.Meta[k] = r.str()
		}
		if uint64(len(out.Meta)) != n {
			return bad("duplicate metadata key")
		}
	}
	if r.err || len(r.b) != 0 {
		return bad("truncated or trailing bytes")
	}
	if flags&flagForeign != 0 && out.Kind != codec.Announce {
		return bad("foreign flag on a message other than an announcement")
	}
	if err := check(&out); err != nil {
		return fmt.Errorf("%w: %v", codec.ErrMalformed, err)
	}
	*m = out
	return nil
}

// reader reads the envelope's fields; err is set, and every later read
// returns zero, once one runs past the end.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
