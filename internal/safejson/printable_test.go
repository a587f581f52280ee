package safejson

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Whatever string encoding/json encodes, JSON's output prints throughout
// and decodes to the same string.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"plain", "\u009b31m", "\u202egnp.exe", "\x7f", "😀", "<script>", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		out := Printable(b)
		for _, r := range string(out) {
			assert.True(t, strconv.IsPrint(r), "%q does not print in %q", r, out)
		}
		var back string
		require.NoError(t, json.Unmarshal(out, &back))
		want := ""
		require.NoError(t, json.Unmarshal(b, &want))
		assert.Equal(t, want, back)
	})
}
