//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd && !windows

package mcast

import "syscall"

// SharedPort sets nothing on this platform: a second socket on the
// group port may fail to bind.
func SharedPort(_, _ string, _ syscall.RawConn) error { return nil }
