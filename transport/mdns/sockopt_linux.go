package mdns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// sharedPortControl lets several sockets bind the mDNS port (SO_REUSEADDR
// and SO_REUSEPORT, as avahi, python-zeroconf and Go's
// net.ListenMulticastUDP set one or both), and makes the socket receive
// only the groups it joined itself: by default Linux delivers to a socket
// bound to the wildcard address the multicast of every group any socket on
// the host joined on that port.
func sharedPortControl(network, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return
		}
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return
		}
		// Best effort: IPV6_MULTICAST_ALL needs Linux 4.20.
		switch network {
		case "udp4":
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		case "udp6":
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
