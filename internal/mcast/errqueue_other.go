//go:build !linux

package mcast

import (
	"errors"
	"net/netip"
	"syscall"
)

// refusalsSupported: only Linux reports ICMP errors to an unconnected
// socket.
const refusalsSupported = false

func setRecvErr(syscall.RawConn, bool) error { return errors.ErrUnsupported }

func pendingError(error) bool { return false }

func (s *Socket) errQueued() bool { return false }

// readQueued is never called where refusals are not supported.
func (s *Socket) readQueued([]byte) (int, netip.AddrPort, netip.Addr, int, error) {
	return 0, netip.AddrPort{}, netip.Addr{}, 0, errors.ErrUnsupported
}
