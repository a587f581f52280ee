package mdns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names used on the wire. Names are kept in the presentation format
// github.com/miekg/dns uses: fully qualified, with '.', ' ' and the other
// special bytes of a label escaped by a backslash and bytes outside
// printable ASCII as \DDD.
const (
	// DefaultService is the DNS-SD service type of pir members when
	// Config.Service is empty.
	DefaultService = "_pir._udp"
	// localDomain is the mDNS domain (RFC 6762 §3).
	localDomain = "local."
	// enumName is the DNS-SD service type enumeration name (RFC 6763 §9).
	enumName = "_services._dns-sd._udp.local."
	// rawName owns the private record that carries opaque datagrams.
	rawName = "_pir-raw._udp.local."
)

// Limits from RFC 6763 and RFC 1035.
const (
	maxLabel       = 63 // bytes in one DNS label
	maxServiceName = 15 // bytes in a service name, without its underscore (RFC 6763 §7.2)
	maxTXTString   = 255
)

// serviceType is a parsed DNS-SD service type such as "_http._tcp".
type serviceType struct {
	name  string // "http", without the underscore
	proto string // "tcp" or "udp"
}

// String returns the type as "_name._proto".
func (s serviceType) String() string { return "_" + s.name + "._" + s.proto }

// fqdn returns "_name._proto.local.".
func (s serviceType) fqdn() string { return s.String() + "." + localDomain }

// parseServiceType parses "_name._tcp" or "_name._udp", with or without a
// trailing ".local" or ".local.". The service name follows RFC 6763 §7.2:
// 1 to 15 letters, digits and hyphens, at least one letter, beginning and
// ending with a letter or digit, no two hyphens in a row.
func parseServiceType(s string) (serviceType, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(s, "."), ".local")
	name, proto, ok := strings.Cut(t, ".")
	if !ok || strings.Contains(proto, ".") {
		return serviceType{}, fmt.Errorf("service type %q: want _name._tcp or _name._udp", s)
	}
	switch proto {
	case "_tcp", "_udp":
	default:
		return serviceType{}, fmt.Errorf("service type %q: protocol must be _tcp or _udp", s)
	}
	n, ok := strings.CutPrefix(name, "_")
	if !ok || n == "" || len(n) > maxServiceName {
		return serviceType{}, fmt.Errorf("service type %q: the service name must be '_' and 1 to %d characters", s, maxServiceName)
	}
	letter := false
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		case '0' <= c && c <= '9':
		case c == '-':
			if i == 0 || i == len(n)-1 || n[i-1] == '-' {
				return serviceType{}, fmt.Errorf("service type %q: a hyphen may not begin or end the service name or follow another", s)
			}
		default:
			return serviceType{}, fmt.Errorf("service type %q: the service name may hold only letters, digits and hyphens", s)
		}
	}
	if !letter {
		return serviceType{}, fmt.Errorf("service type %q: the service name needs a letter", s)
	}
	return serviceType{name: n, proto: proto[1:]}, nil
}

// groupSubtype returns the subtype label for group g (RFC 6763 §7.1): "_"
// then g with every byte other than an ASCII letter, digit or hyphen
// replaced by '-', in lower case. When that loses information (g had other
// bytes, or upper case) or is longer than a label allows, the label is cut
// and ends with '-' and eight hex digits of g's SHA-256, so that distinct
// groups still get distinct labels. The TXT key "g" carries the exact name.
func groupSubtype(g string) string {
	var b strings.Builder
	b.WriteByte('_')
	lossy := false
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			b.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
			lossy = true
		default:
			b.WriteByte('-')
			lossy = true
		}
	}
	s := b.String()
	if !lossy && len(s) <= maxLabel {
		return s
	}
	const suffix = 9 // '-' and 8 hex digits
	if len(s) > maxLabel-suffix {
		s = s[:maxLabel-suffix]
	}
	return s + "-" + shortHash(g)
}

// shortHash is 8 hex digits of the SHA-256 of s.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// escapeLabel writes one raw label in presentation format: the bytes
// that delimit or quote in master files (dot, space, apostrophe, '@',
// ';', '(', ')', '"' and backslash) escaped by a backslash, bytes outside
// printable ASCII as \DDD. github.com/miekg/dns writes labels the same way.
func escapeLabel(raw string) string {
	return string(appendEscaped(nil, raw))
}

// appendEscaped appends raw, one label, in presentation format.
func appendEscaped[T string | []byte](dst []byte, raw T) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '.' || c == ' ' || c == '\'' || c == '@' || c == ';' || c == '(' || c == ')' || c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < ' ' || c > '~':
			dst = append(dst, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// errBadEscape reports a presentation-format string with a broken escape.
var errBadEscape = errors.New("bad escape")

// firstLabel splits a presentation-format name into its first label,
// unescaped, and the rest of the name after the dot that ends it.
func firstLabel(name string) (label, rest string, err error) {
	label, rest, _, err = cutLabel(name)
	return label, rest, err
}

// cutLabel is firstLabel, also reporting whether a dot ended the label.
// A label without escapes is a slice of name.
func cutLabel(name string) (label, rest string, dot bool, err error) {
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch c {
		case '.':
			if b == nil {
				return name[:i], name[i+1:], true, nil
			}
			return string(b), name[i+1:], true, nil
		case '\\':
			if b == nil {
				b = append(make([]byte, 0, len(name)), name[:i]...)
			}
			v, n, ok := unescapeAt(name, i)
			if !ok {
				return "", "", false, errBadEscape
			}
			b = append(b, v)
			i += n - 1
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	if b == nil {
		return name, "", false, nil
	}
	return string(b), "", false, nil
}

// unescapeAt decodes the escape that starts at s[i] ('\\'): \DDD or \X. It
// returns the byte and the escape's length.
func unescapeAt(s string, i int) (byte, int, bool) {
	if i+1 >= len(s) {
		return 0, 0, false
	}
	if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		v, _ := strconv.Atoi(s[i+1 : i+4])
		if v > 255 {
			return 0, 0, false
		}
		return byte(v), 4, true
	}
	return s[i+1], 2, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// renamed returns the instance or host label to try after a conflict: RFC
// 6763 §9 style "name (2)", "name (3)"... for instances; "name-2",
// "name-3"... for host names, which must stay valid host names. n counts
// the conflicts so far (n >= 1).
func renamed(base string, n int, host bool) string {
	suffix := " (" + strconv.Itoa(n+1) + ")"
	if host {
		suffix = "-" + strconv.Itoa(n+1)
	}
	return truncateUTF8(base, maxLabel-len(suffix)) + suffix
}

// hostLabel turns s into a valid host name label: letters, digits and
// hyphens, lower case, no leading or trailing hyphen, at most max bytes.
func hostLabel(s string, max int) string {
	var b []byte
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b = append(b, c)
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		default:
			if len(b) > 0 && b[len(b)-1] != '-' {
				b = append(b, '-')
			}
		}
	}
	return strings.Trim(string(b), "-")
}

// foreignID derives a stable pir ID for an instance that carries none in
// its TXT record: its label made printable (letters, digits, '.', '_' and
// '-'; anything else becomes '-'), cut to 40 bytes, then '-' and eight hex
// digits of the SHA-256 of the whole instance name in lower case, so that
// instances whose labels print alike still get distinct IDs.
func foreignID(label, fullName string) string {
	var b []byte
	for i := 0; i < len(label) && len(b) < 40; i++ {
		c := label[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			b = append(b, c)
		default:
			b = append(b, '-')
		}
	}
	return string(b) + "-" + shortHash(strings.ToLower(fullName))
}
