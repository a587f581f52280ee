package cli

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/discovery"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"db-primary":             "db-primary",
		"héllo wörld ✓":          "héllo wörld ✓",
		"a\r\x1b[2K+ db-primary": `a\r\x1b[2K+ db-primary`,
		"tab\tnl\nbell\a":        `tab\tnl\nbell\a`,
		"del\x7f c1\u009b":       `del\x7f c1\u009b`,
		"rlo\u202eevil":          `rlo\u202eevil`,
		"bad \xff utf8":          `bad \xff utf8`,
		`back\slash`:             `back\\slash`,
		"nbsp\u00a0zwsp\u200b":   `nbsp\u00a0zwsp\u200b`,
		"line\u2028para\u2029":   `line\u2028para\u2029`,
		"quote\"stays'":          `quote"stays'`,
	} {
		assert.Equal(t, want, Printable(in), "Printable(%q)", in)
	}
}

// FuzzPrintable checks that Printable's output never holds a rune a
// terminal could act on, and that it loses nothing: unquoted, it gives the
// input back.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "db", "\r\x1b[2K+ db-primary joined", "\xff\xfe", `\x1b`, "\u202e", "a\"b", "\u0085", "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Printable(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Printable(%q) = %q: not UTF-8", s, out)
		}
		for i, r := range out {
			if !strconv.IsPrint(r) {
				t.Fatalf("Printable(%q) = %q: rune %U at %d does not print", s, out, r, i)
			}
		}
		back, err := strconv.Unquote(`"` + strings.ReplaceAll(out, `"`, `\"`) + `"`)
		if err != nil || back != s {
			t.Fatalf("Printable(%q) = %q, which unquotes to %q (%v)", s, out, back, err)
		}
	})
}

// JSON output holds no rune that does not print, and decodes to the same
// values.
func TestJSONPrintable(t *testing.T) {
	meta := map[string]string{"k\x7f": "\r\x1b[2K\u009b31m\u202e\U000e0001 \u2028"}
	var out bytes.Buffer
	p := NewPrinter(&out, true)
	p.event("", discovery.Event{Type: discovery.Joined, Member: discovery.Member{Peer: discovery.Peer{ID: "x", Meta: meta}}})
	line := strings.TrimSuffix(out.String(), "\n")
	for _, r := range line {
		assert.True(t, strconv.IsPrint(r), "raw %U in %q", r, line)
	}
	var e jsonEvent
	require.NoError(t, json.Unmarshal([]byte(line), &e))
	assert.Equal(t, meta, e.Meta)
}
