//go:build !linux

package mcast

import (
	"errors"
	"net/netip"
)

// ConfirmNeighbour is Linux's only (MSG_CONFIRM): elsewhere it does
// nothing and says so.
func (s *Socket) ConfirmNeighbour(netip.AddrPort) error { return errors.ErrUnsupported }
