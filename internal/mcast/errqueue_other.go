//go:build !linux

package mcast

import (
	"errors"
	"syscall"
)

// refusalsSupported: only Linux reports ICMP errors to an unconnected
// socket.
const refusalsSupported = false

func setRecvErr(syscall.RawConn, bool) error { return errors.ErrUnsupported }

func pendingError(error) bool { return false }

func (s *Socket) errQueued() bool { return false }

// nextQueued is never called where refusals are not supported.
func (s *Socket) nextQueued() (*QueuedError, error) { return nil, nil }
