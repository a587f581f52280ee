package stress

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/multicast"
)

// toggle multicasts announcements of a real member, as a spoofer on the
// member's own host would (the health host is the source address), with
// its metadata changed in every one, as fast as it can until stop closes.
func toggle(t *testing.T, victim discovery.Peer, stop <-chan struct{}) (sent int) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netlab.LoopbackV4, 0)))
	require.NoError(t, err)
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(multicast.DefaultGroupV4, port))
	m := codec.Message{Kind: codec.Announce, Group: "web", ID: victim.ID,
		Health: victim.HealthURI.String(), Comms: victim.HealthURI.String()}
	// Twenty keys of 40 bytes: each change costs the old code a map of
	// its own in every queued event.
	m.Meta = map[string]string{}
	for k := range 20 {
		m.Meta["k"+strconv.Itoa(k)] = strings.Repeat("x", 40)
	}
	var buf []byte
	for i := 0; ; i++ {
		select {
		case <-stop:
			return sent
		default:
		}
		m.Meta["v"] = strconv.Itoa(i)
		buf, err = pipe.Codec{}.Encode(buf[:0], &m)
		require.NoError(t, err)
		if _, err := c.WriteToUDP(buf, dst); err == nil {
			sent++
		}
	}
}

// toggles is how many spoofed announcements TestListenerFlood's target
// receives.
const toggles = 20000

// TestListenerFlood plays attack 2 of docs/security.md ("listener flood"):
// one source toggles a real member's metadata as fast as it can while a
// listener of the target is blocked. The target's heap must stay bounded
// and Close must return within its bound.
func TestListenerFlood(t *testing.T) {
	netlab.Require(t)
	target, hsT := member(t, "target", nil)
	victim, hsV := member(t, "victim", nil)
	defer hsT.Close()
	defer hsV.Close()
	defer victim.Close()
	require.Eventually(t, func() bool { return len(target.Members()) == 1 }, 10*time.Second, 10*time.Millisecond)

	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()
	var seen atomic.Int64
	target.AddListener(func(e discovery.Event) bool {
		seen.Add(1)
		<-release // blocked until the test ends
		return true
	})
	base := heap()

	stop := make(chan struct{})
	sentc := make(chan int, 1)
	start, received := time.Now(), target.Stats().Received
	go func() { sentc <- toggle(t, victim.Self(), stop) }()
	// The attack lasts until pir has received 20,000 of the spoofed
	// announcements (about 5 s here, 15 s beside two CPU burners).
	require.Eventually(t, func() bool { return target.Stats().Received-received >= toggles },
		2*time.Minute, 10*time.Millisecond, "the toggles did not reach pir")
	close(stop)
	sent := <-sentc
	grown := int64(heap()) - int64(base)
	s := target.Stats()
	t.Logf("figures: %d spoofed announcements in %v; received %d; events %d, updates held %d; heap grew %d KiB",
		sent, time.Since(start).Round(time.Millisecond), s.Received-received, s.Events, s.UpdatesHeld, grown/1024)
	assert.Less(t, grown, int64(16<<20), "memory stays bounded while a listener is blocked")

	assert.Positive(t, s.UpdatesHeld, "changes beyond one Updated per half interval were held")
	assert.Positive(t, s.EventsMerged, "the blocked listener's queue merged the Updated events")

	// Shutdown gives up on the blocked listener when its bound ends, and
	// says so; Done closes once the listener returns.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- target.Shutdown(ctx) }()
	select {
	case err := <-closed:
		var se *discovery.ShutdownError
		require.ErrorAs(t, err, &se)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Len(t, se.Listeners, 1)
		assert.Contains(t, se.Listeners[0], "TestListenerFlood")
		assert.False(t, se.Internal)
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return with a listener blocked")
	}
	select {
	case <-target.Done():
		t.Fatal("Done before the listener returned")
	default:
	}
	unblock()
	<-target.Done()
	assert.LessOrEqual(t, seen.Load(), int64(1), "an abandoned listener gets no more events")
}
