package mdns

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport"
)

// TestMDNSRescan: an interface that appears is joined (the kernel lists
// the mDNS groups on it) and used, with its addresses and on-link
// prefixes; an address added to it is seen at the next rescan; an
// interface that goes away is dropped. The rescan is internal/mcast's
// Membership, one per family, merged into the Conn's links.
func TestMDNSRescan(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	v6 := netlab.AvailableIPv6()
	cfg := Config{Group: "web", Port: freePort(t), Interfaces: []string{netlab.Loopback, "pirm0"}, RescanInterval: -1, SilentClose: true}
	if !v6 {
		cfg.Network = "udp4"
	}
	c, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	onlyLo := []string{netlab.Loopback}
	if v6 {
		onlyLo = append(onlyLo, netlab.Loopback)
	}
	assert.Equal(t, onlyLo, names(c.Links()))

	ifi := addPirm0(t)

	require.NoError(t, c.Rescan())
	want := []string{netlab.Loopback, "pirm0"}
	if v6 {
		want = append(want, netlab.Loopback, "pirm0")
	}
	assert.Equal(t, want, names(c.Links()))
	for _, l := range c.Links() {
		if l.Name != "pirm0" {
			continue
		}
		if l.Addr.Is4() {
			assert.Equal(t, netip.MustParseAddr("198.18.7.1"), l.Addr)
		} else {
			assert.Equal(t, netip.MustParseAddr("fd42:7::1"), l.Addr)
		}
	}
	groups := netlab.MustIP(t, "maddr", "show", "dev", "pirm0")
	assert.Contains(t, groups, GroupV4.String())
	if v6 {
		assert.Contains(t, groups, GroupV6.String())
	}
	l := c.link(ifi.Index)
	require.NotNil(t, l)
	assert.Equal(t, [2]bool{true, v6}, l.on)
	assert.True(t, l.onLink(netip.MustParseAddr("198.18.7.99")))
	assert.False(t, l.onLink(netip.MustParseAddr("198.18.8.5")))

	netlab.MustIP(t, "addr", "add", "198.18.8.1/24", "dev", "pirm0")
	require.NoError(t, c.Rescan())
	l = c.link(ifi.Index)
	require.NotNil(t, l)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.8.1")}, l.v4)
	assert.True(t, l.onLink(netip.MustParseAddr("198.18.8.5")), "the new prefix is on-link")

	netlab.MustIP(t, "link", "del", "pirm0")
	require.NoError(t, c.Rescan())
	assert.Equal(t, onlyLo, names(c.Links()))
	assert.Nil(t, c.link(ifi.Index))
}

// TestMDNSRescanOnNotice: on Linux the Conn rescans when the kernel
// reports a link or address change, though its RescanInterval is an hour:
// an interface that appears is joined (the kernel lists the mDNS groups on
// it) and used with its address, an address added is seen, and the
// interface is dropped when deleted, all without a Rescan call; Close then
// returns at once and leaves no goroutine.
func TestMDNSRescanOnNotice(t *testing.T) {
	netlab.Require(t)
	if runtime.GOOS != "linux" {
		t.Skip("the Conn watches interface changes on Linux only")
	}
	leakCheck(t)
	v6 := netlab.AvailableIPv6()
	cfg := Config{Group: "web", Port: freePort(t), Interfaces: []string{netlab.Loopback, "pirm0"}, RescanInterval: time.Hour, SilentClose: true, Logger: testLogger(t)}
	if !v6 {
		cfg.Network = "udp4"
	}
	c, err := New(cfg)
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})
	onlyLo := []string{netlab.Loopback}
	if v6 {
		onlyLo = append(onlyLo, netlab.Loopback)
	}
	require.Equal(t, onlyLo, names(c.Links()))

	ifi := addPirm0(t)

	want := []string{netlab.Loopback, "pirm0"}
	if v6 {
		want = append(want, netlab.Loopback, "pirm0")
	}
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, want, names(c.Links())) },
		timeout, 5*time.Millisecond)
	groups := netlab.MustIP(t, "maddr", "show", "dev", "pirm0")
	assert.Contains(t, groups, GroupV4.String())
	if v6 {
		assert.Contains(t, groups, GroupV6.String())
	}

	netlab.MustIP(t, "addr", "add", "198.18.8.1/24", "dev", "pirm0")
	require.Eventually(t, func() bool {
		l := c.link(ifi.Index)
		return l != nil && l.onLink(netip.MustParseAddr("198.18.8.5"))
	}, timeout, 5*time.Millisecond, "the new prefix is not on-link")

	netlab.MustIP(t, "link", "del", "pirm0")
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, onlyLo, names(c.Links())) },
		timeout, 5*time.Millisecond)

	errc := make(chan error, 1)
	go func() { errc <- c.Close() }()
	select {
	case err := <-errc:
		closed = true
		require.NoError(t, err)
	case <-time.After(timeout):
		t.Fatalf("Close still blocks after %v", timeout)
	}
}

func names(ls []transport.Link) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

// addPirm0 makes the veth pair pirm0-pirm1 in the test's namespace, gives
// pirm0 an IPv4 and an IPv6 address, sets both ends up and returns
// pirm0; the pair is deleted when the test ends.
func addPirm0(t *testing.T) *net.Interface {
	t.Helper()
	if out, err := netlab.IP("link", "add", "pirm0", "type", "veth", "peer", "name", "pirm1"); err != nil {
		t.Skipf("cannot make a veth pair in the namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = netlab.IP("link", "del", "pirm0") })
	netlab.MustIP(t, "addr", "add", "198.18.7.1/24", "dev", "pirm0")
	netlab.MustIP(t, "-6", "addr", "add", "fd42:7::1/64", "dev", "pirm0", "nodad")
	netlab.MustIP(t, "link", "set", "pirm0", "up")
	netlab.MustIP(t, "link", "set", "pirm1", "up")
	ifi, err := net.InterfaceByName("pirm0")
	require.NoError(t, err)
	return ifi
}
