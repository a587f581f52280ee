package cli

import (
	"context"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ReaderGone returns a channel closed when w is a pipe whose reader has
// gone away (pir watch | head -1 after head exits), or nil when w is not
// a pipe. Without it pir would learn that only at its next write, which
// for a quiet group may never come. It stops watching when ctx is done.
func ReaderGone(ctx context.Context, w io.Writer) <-chan struct{} {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return nil
	}
	gone := make(chan struct{})
	fd := int(f.Fd())
	go func() {
		// The write end of a pipe reports POLLERR once the read end is
		// closed. Poll in short rounds so that the goroutine ends with ctx.
		fds := []unix.PollFd{{Fd: int32(fd)}}
		for ctx.Err() == nil {
			fds[0].Revents = 0
			n, err := unix.Poll(fds, 200)
			if err != nil && err != unix.EINTR {
				return
			}
			if n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
				close(gone)
				return
			}
		}
	}()
	return gone
}
