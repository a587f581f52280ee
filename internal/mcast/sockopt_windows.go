package mcast

import "syscall"

// SharedPort lets several sockets bind the group port
// (SO_REUSEADDR, as Go's net.ListenMulticastUDP sets).
func SharedPort(_, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if cerr != nil {
		return cerr
	}
	return err
}
