package netlab

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func TestNamespaceHasOnlyLoopback(t *testing.T) {
	Require(t)
	require.True(t, Available())

	ifs, err := net.Interfaces()
	require.NoError(t, err)
	require.Len(t, ifs, 1, "a fresh namespace has only lo")
	lo := ifs[0]
	assert.Equal(t, Loopback, lo.Name)
	want := net.FlagUp | net.FlagLoopback | net.FlagMulticast
	assert.Equal(t, want, lo.Flags&want, "lo flags: %v", lo.Flags)
	assert.True(t, hasAddr(&lo, LoopbackV4), "lo lacks %s", LoopbackV4)
}

func TestEnterOnlyOnce(t *testing.T) {
	Require(t)
	require.True(t, Inside())
	// Main called Enter already; a second setup would fail ("ip route add:
	// File exists").
	ok, reason := Enter()
	assert.True(t, ok)
	assert.Empty(t, reason)
}

func TestMulticastIPv4OnLoopback(t *testing.T) {
	Require(t)
	for _, group := range []string{"224.0.0.1", "239.255.70.1"} {
		t.Run(group, func(t *testing.T) {
			roundTrip(t, "udp4", netip.MustParseAddr(group), LoopbackV4)
		})
	}
}

func TestMulticastIPv6OnLoopback(t *testing.T) {
	RequireIPv6(t)
	roundTrip(t, "udp6", netip.MustParseAddr("ff02::1"), LoopbackV6)
}

func TestIPRefusesOutsideTheNamespace(t *testing.T) {
	if Available() {
		t.Skip("inside the namespace: IP works there")
	}
	_, err := IP("link", "show")
	require.ErrorIs(t, err, ErrUnavailable)
}

// roundTrip sends one datagram to group on lo and checks that a socket
// joined to it there receives it from wantSrc.
func roundTrip(t *testing.T, network string, group, wantSrc netip.Addr) {
	t.Helper()
	lo, err := net.InterfaceByName(Loopback)
	require.NoError(t, err)
	rx, err := net.ListenMulticastUDP(network, lo, &net.UDPAddr{IP: group.AsSlice()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rx.Close() })
	port := rx.LocalAddr().(*net.UDPAddr).Port

	dst := netip.AddrPortFrom(group, uint16(port))
	if group.Is6() {
		dst = netip.AddrPortFrom(group.WithZone(Loopback), uint16(port))
	}
	tx, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(dst))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Close() })
	payload := []byte("hello " + group.String())
	_, err = tx.Write(payload)
	require.NoError(t, err)

	require.NoError(t, rx.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 256)
	n, src, err := rx.ReadFromUDPAddrPort(buf)
	require.NoError(t, err, "multicast to %s on %s never arrived", dst, Loopback)
	assert.Equal(t, payload, buf[:n])
	assert.Equal(t, wantSrc, src.Addr().Unmap().WithZone(""))
}
