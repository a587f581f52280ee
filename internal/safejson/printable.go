// Package safejson makes text that came off the network safe to show:
// JSON whose every rune prints, for cmd/pir's -json lines and the agent's
// HTTP API alike.
package safejson

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Printable escapes, as \uXXXX, the runes encoding/json leaves raw that do not
// print: DEL, the C1 controls (U+009B is a terminal's CSI), format
// characters such as U+202E. Outside strings, JSON from encoding/json is
// ASCII that prints, so every such rune is inside a string, where the
// escape means the same rune. b is returned as it is when nothing needs
// escaping.
func Printable(b []byte) []byte {
	s := string(b)
	if !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return b
	}
	var out strings.Builder
	for _, r := range s {
		switch {
		case strconv.IsPrint(r):
			out.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return []byte(out.String())
}
