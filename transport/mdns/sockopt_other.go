//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd && !windows

package mdns

import "syscall"

// sharedPortControl sets nothing on this platform: a second socket on the
// mDNS port may fail to bind.
func sharedPortControl(_, _ string, _ syscall.RawConn) error { return nil }
