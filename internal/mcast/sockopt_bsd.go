//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package mcast

import "syscall"

// SharedPort lets several sockets bind the group port and all
// receive its multicast: BSDs need both SO_REUSEADDR and SO_REUSEPORT, as
// Go's net.ListenMulticastUDP sets.
func SharedPort(_, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return
		}
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEPORT, 1)
	})
	if cerr != nil {
		return cerr
	}
	return err
}
