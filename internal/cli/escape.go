package cli

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable returns s with everything a terminal could act on escaped as
// strconv.Quote would inside a quoted string: control characters (\r,
// \x1b, \u0085...), other runes that do not print (format characters such
// as U+202E, which reverses the text after it; line and paragraph
// separators), bytes that are not UTF-8 (\xff), and the backslash itself,
// so that the escaping is unambiguous. Everything that came off the network
// goes through it before it is printed as text: a forged member ID or
// metadata value cannot move the cursor, erase a line or draw one of its
// own.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[s[i]>>4])
			b.WriteByte("0123456789abcdef"[s[i]&0xf])
		case r == '\\':
			b.WriteString(`\\`)
		case needsEscape(r, n):
			q := strconv.QuoteRune(r) // 'x', with x escaped
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// needsEscape reports whether the rune r, n bytes long, must be escaped.
func needsEscape(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return true
	}
	return r == '\\' || !strconv.IsPrint(r)
}
