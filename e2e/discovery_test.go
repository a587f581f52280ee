package e2e

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
	"github.com/pirlan/pir/internal/nslan/pircli"
)

const lanHosts = 5

// TestDiscovery starts a member on every host of a LAN and checks that
// every one lists every other, reached over the family asked for, at the
// address of the other's own eth0.
func TestDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name string
		lab  nslan.Config
		args []string
		v6   bool // members meet over IPv6
	}{
		{"IPv4", nslan.Config{IPv4: true, IPv6: true}, []string{"-4"}, false},
		{"IPv6", nslan.Config{IPv4: true, IPv6: true}, []string{"-6"}, true},
		// No IPv4 address anywhere: the default flags must still work.
		{"IPv6-only LAN, default flags", nslan.Config{IPv6: true}, nil, true},
		// No IPv6 at all, not even link-local: the default flags must
		// fall back to IPv4.
		{"IPv4-only LAN, default flags", nslan.Config{IPv4: true}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.lab.Hosts = lanHosts
			l := newLab(t, tc.lab)
			var peers []*pircli.Peer
			byID := make(map[string]*nslan.Host)
			for _, h := range l.Hosts() {
				peers = append(peers, join(t, h, tc.args...))
				byID[peerID(h)] = h
			}
			seen := requireMesh(t, peers, peers, nil)

			for o, events := range seen {
				for id, e := range events {
					h := byID[id]
					addr, err := netip.ParseAddrPort(e.Addr)
					require.NoError(t, err, "%s: %s", o.Name(), e.Line.Text)
					health := hostOf(t, e.HealthURI)
					if tc.v6 {
						assert.True(t, addr.Addr().Is6() && !addr.Addr().Is4In6(), "%s heard %s from %s", o.Name(), id, addr)
						assert.True(t, health == h.IPv6 || (health.IsLinkLocalUnicast() && health.Zone() != ""),
							"%s: %s's health URI %s: want [%s] or a link-local address with its zone", o.Name(), id, e.HealthURI, h.IPv6)
					} else {
						assert.Equal(t, h.IPv4, addr.Addr().Unmap(), "%s heard %s from %s", o.Name(), id, addr)
						assert.Equal(t, h.IPv4, health, "%s: %s's health URI %s", o.Name(), id, e.HealthURI)
					}
					assert.Equal(t, "healthy", e.Verdict, e.Line.Text)
					assert.Equal(t, e.HealthURI, e.CommsURI, "the comms URI defaults to the health URI")
				}
			}
			requireOnlyMembers(t, peers, ids(peers)...)
		})
	}
}

// TestWatch checks that "pir watch" lists the members of a group, old and
// new, without becoming one.
func TestWatch(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: lanHosts})
	hosts := l.Hosts()
	members := []*pircli.Peer{join(t, hosts[0]), join(t, hosts[1]), join(t, hosts[2], "-meta", "role=db")}
	requireMesh(t, members, members, nil)

	w := watch(t, hosts[3])
	seen := requireMesh(t, []*pircli.Peer{w}, members, nil)
	assert.Equal(t, map[string]string{"role": "db"}, seen[w][peerID(hosts[2])].Meta)

	// A member joining later sees the others, not the watcher, and the
	// watcher sees it.
	from := mark(slices.Concat(members, []*pircli.Peer{w})...)
	late := join(t, hosts[4])
	members = append(members, late)
	requireMesh(t, members, []*pircli.Peer{late}, from)
	requireMesh(t, []*pircli.Peer{late}, members, nil)
	requireMesh(t, []*pircli.Peer{w}, []*pircli.Peer{late}, from)

	requireOnlyMembers(t, slices.Concat(members, []*pircli.Peer{w}), ids(members)...)
}

// TestSelfCheckIPv4Only: on hosts without IPv6 (not even ::1), pir join
// listens on [::] for its health checks, which serves IPv4 alone there.
// When it checked itself over loopback, checked at [::1], every
// self-check failed and each member reported itself dead: the others
// printed a health event 50 ms after the mesh formed and removed it
// about 3 s later. pir join now asks its server in process
// (Config.SelfCheck); a Group that probes its own URI checks [::] over
// 127.0.0.1 there (discovery's TestSelfTargetWithoutIPv6). Here every
// member checks itself every 50 ms, and over 40 checks no member's
// health changes anywhere.
func TestSelfCheckIPv4Only(t *testing.T) {
	l := newLab(t, nslan.Config{Hosts: 3, IPv4: true})
	var peers []*pircli.Peer
	for _, h := range l.Hosts() {
		peers = append(peers, join(t, h, "-self-check", "50ms"))
	}
	requireMesh(t, peers, peers, nil)
	from := mark(peers...)
	// The window is the claim: 40 self-checks of each member. Any event
	// ends it early.
	ctx, cancel := context.WithTimeout(context.Background(), 40*50*time.Millisecond)
	defer cancel()
	e, err := peers[0].WaitEvent(ctx, from[peers[0]], func(pircli.Event) bool { return true })
	require.ErrorIs(t, err, context.DeadlineExceeded, "%s: %s", peers[0].Name(), e.Line.Text)
	for _, p := range peers {
		events, err := p.Events()
		require.NoError(t, err)
		for _, e := range events {
			assert.Less(t, e.Index, from[p], "%s: %s", p.Name(), e.Line.Text)
		}
	}
}
