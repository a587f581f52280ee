package discovery_test

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
)

// Knows is true for the address a joined member was heard from, in any
// form of it, and false for a pending peer, which no probe vouched for.
func TestKnows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a")
		_, epB := l.join("b")
		l.health.set("ghost:1", silent)
		ghost := l.listen(func(*codec.Message) {})
		b, err := pipe.Codec{}.Encode(nil, announce("web", "ghost"))
		require.NoError(t, err)
		require.NoError(t, ghost.Send(b))
		synctest.Wait()
		require.Equal(t, []string{"b"}, ids(a.Members()))
		require.Equal(t, 1, a.Stats().Pending, "the ghost is tracked, not joined")

		addrB := epB.Addr().Addr()
		assert.True(t, a.Knows(addrB))
		if addrB.Is4() {
			assert.True(t, a.Knows(netip.AddrFrom16(addrB.As16())), "IPv4-mapped")
		}
		assert.False(t, a.Knows(ghost.Addr().Addr()), "a pending peer is not known")
		assert.False(t, a.Knows(netip.MustParseAddr("192.0.2.1")))
		assert.False(t, a.Knows(netip.Addr{}))
	})
}
