package pipe_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
)

// evd failed=1 with heard and probed: the arguments are joined by '&' and
// each decodes back.
func TestEvidenceFailedWire(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		m    codec.Message
		wire string
	}{
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: 120 * ms, Probed: 30 * ms},
			"web|c|b||evd|failed=1&heard=120&probed=30"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: 120 * ms, Probed: -1},
			"web|c|b||evd|failed=1&heard=120"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: -1, Probed: 30 * ms},
			"web|c|b||evd|failed=1&probed=30"},
		{codec.Message{Kind: codec.Evidence, Group: "web", ID: "c", Target: "b", Failed: true, Heard: -1, Probed: -1},
			"web|c|b||evd|failed=1"},
	}
	for _, tc := range cases {
		b, err := pipe.Codec{}.Encode(nil, &tc.m)
		require.NoError(t, err)
		assert.Equal(t, tc.wire, string(b))
		var got codec.Message
		require.NoError(t, pipe.Codec{}.Decode(b, &got))
		tc.m.Extended = true
		assert.Equal(t, tc.m, got, "%q", b)
	}
}
