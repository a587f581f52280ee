package mcast

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// noticeBuf is the size of the Watcher's one read buffer. Notices are
// never parsed: any of them means "rescan", so a longer one is simply
// truncated by the read.
const noticeBuf = 512

// Watch subscribes to the kernel's notices of link changes and of IPv4 and
// IPv6 address changes: a NETLINK_ROUTE socket bound to RTMGRP_LINK,
// RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR, read through Go's poller by
// one goroutine, which Close ends at once. A notice of any kind, and an
// overflow of the socket's queue (ENOBUFS: notices were lost), make the
// Watcher signal on C.
func Watch() (*Watcher, error) {
	fd, err := subscribe()
	if err != nil {
		return nil, fmt.Errorf("watching interfaces: %w", err)
	}
	return start(fd), nil
}

// subscribe opens the notice socket, non-blocking.
func subscribe() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	sa := &unix.SockaddrNetlink{
		Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR,
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// start makes the Watcher that reads the socket fd, which it owns.
func start(fd int) *Watcher {
	// A non-blocking descriptor makes os.NewFile register it with the
	// poller, so that Close unblocks a Read in progress.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	w := &Watcher{c: make(chan struct{}, 1), stop: f.Close}
	w.wg.Add(1)
	go w.read(f)
	return w
}

// read signals a change for each notice read, until the socket is closed
// or fails.
func (w *Watcher) read(f *os.File) {
	defer w.wg.Done()
	defer close(w.c)
	buf := make([]byte, noticeBuf)
	for {
		if _, err := f.Read(buf); err != nil && !errors.Is(err, unix.ENOBUFS) {
			return
		}
		w.notify()
	}
}
