package discovery

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
)

// A Decode error is counted under the reason its codec names
// (codec.DropReasoner), however deeply wrapped; an error that names no
// reason, or one the Group does not know, counts as rejected. The engine
// imports no codec: this test is what keeps the names codec/auth gives its
// errors in step with the DropReasons.
func TestDropReasonFromCodecErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want DropReason
	}{
		{codec.ErrMalformed, DropMalformed},
		{codec.ErrTooLarge, DropOversize},
		{auth.ErrUnauthenticated, DropUnauthenticated},
		{auth.ErrBadTag, DropBadTag},
		{auth.ErrUnknownKey, DropUnknownKey},
		{auth.ErrReplay, DropReplay},
		{auth.ErrDuplicate, DropDuplicate},
		{auth.ErrStale, DropStale},
		{errors.New("some codec's own refusal"), DropRejected},
		{codec.NewDropError("no_such_reason", "x"), DropRejected},
	} {
		wrapped := fmt.Errorf("outer: %w", fmt.Errorf("%w: detail", tc.err))
		assert.Equal(t, tc.want, dropReason(wrapped), "%v", tc.err)
	}
}

// Every reason's name maps back to it, so that a codec may name any.
func TestDropReasonNamesRoundTrip(t *testing.T) {
	for r := DropReason(0); r < numDropReasons; r++ {
		assert.NotEmpty(t, dropNames[r], "reason %d has no name", r)
		assert.Equal(t, r, dropReasons[r.String()])
	}
}
