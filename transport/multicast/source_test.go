package multicast

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
)

// SendVia sends from the link's address, not the one the kernel would
// pick (the interface's first address for IPv4, link-local or loopback for
// IPv6), so that receivers see the address a per-link announcement carries
// as its source; Packet.Dst tells a multicast from a unicast.
func TestSendViaSourceAndDst(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		group         netip.Addr
		extra         netip.Addr // an address of lo the kernel would not choose
		prefix        string
	}{
		{"IPv4", "udp4", DefaultGroupV4, netip.MustParseAddr("198.18.254.9"), "/32"},
		{"IPv6", "udp6", DefaultGroupV6, netip.MustParseAddr("fd42::9"), "/128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network == "udp6" {
				netlab.RequireIPv6(t)
			} else {
				netlab.Require(t)
			}
			leakCheck(t)
			args := []string{"addr", "add", tc.extra.String() + tc.prefix, "dev", netlab.Loopback}
			if tc.network == "udp6" {
				args = append(args, "nodad")
			}
			netlab.IP(args...) // may exist already
			// Gone again after the test: it would change lo's Link.Addr.
			t.Cleanup(func() { netlab.IP("addr", "del", tc.extra.String()+tc.prefix, "dev", netlab.Loopback) })
			port := freePort(t, tc.network)
			cfg := Config{Network: tc.network, Interfaces: []string{netlab.Loopback},
				Group: netip.AddrPortFrom(tc.group, port), RescanInterval: -1}
			a, b := open(t, cfg), open(t, cfg)
			got := pump(t, b)
			links := a.Links()
			require.Len(t, links, 1)
			l := links[0]
			l.Addr = tc.extra
			require.NoError(t, a.SendVia([]byte("via"), l))
			r := next(t, got, "via")
			assert.Equal(t, tc.extra, r.p.Src.Addr().WithZone(""), "the link's address is the source")
			assert.Equal(t, tc.group, r.p.Dst.WithZone(""), "sent to the group")

			// Send, to every link, sends from the address Links reports,
			// as SendVia does: a receiver that knows a member by its
			// announcements' source takes its vouches and obituaries,
			// which go by Send, from the same address. On the code before,
			// the kernel chose (IPv6: ::1 on lo, where Links says fd42::9),
			// and members known by a global IPv6 address had their vouches
			// dropped.
			require.NoError(t, a.Send([]byte("all")))
			r = next(t, got, "all")
			assert.Equal(t, links[0].Addr.WithZone(""), r.p.Src.Addr().WithZone(""), "the link's address is the source")

			require.NoError(t, a.SendTo([]byte("direct"), b.LocalAddr()))
			r = next(t, got, "direct")
			assert.False(t, r.p.Dst.IsMulticast(), "a unicast: Dst %s", r.p.Dst)
			assert.True(t, r.p.Dst.IsValid())
		})
	}
}

// next returns the first datagram from ch whose payload is want.
func next(t *testing.T, ch <-chan rx, want string) rx {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-ch:
			if r.err == nil && string(r.data) == want {
				return r
			}
		case <-deadline:
			t.Fatalf("no %q datagram", want)
		}
	}
}
