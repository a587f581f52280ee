package multicast

import (
	"fmt"
	"net/netip"

	"github.com/pirlan/pir/transport"
)

// readBufSize holds any UDP payload, so the socket never truncates: a
// datagram too long for the caller's buffer is detected when it is handed
// over.
const readBufSize = 1 << 16

// readBufs holds the read buffers no reader is using, at most
// maxFreeReadBufs of them. A sync.Pool would drop them at every other
// collection, and a buffer made again on freed heap comes zeroed, all
// 16 of its pages resident, where a kept one has only the pages its
// datagrams touched (one, for pir's): about 0.3 MiB of a member's
// resident memory after its first collections (docs/performance.md).
var readBufs = make(chan *[]byte, maxFreeReadBufs)

// maxFreeReadBufs bounds the free buffers kept: a Conn's readers (one per
// socket) hold one each, and Receive one more.
const maxFreeReadBufs = 16

// getReadBuf returns a free read buffer, or a new one.
func getReadBuf() *[]byte {
	select {
	case b := <-readBufs:
		return b
	default:
		b := make([]byte, readBufSize)
		return &b
	}
}

// datagram is what a reader goroutine hands to Receive: one datagram in a
// pooled buffer, or a read error.
type datagram struct {
	buf     *[]byte
	n       int
	src     netip.AddrPort
	dst     netip.Addr
	ifIndex int
	refused bool // a refusal by src, not a datagram; buf is nil
	err     error
}

func (d *datagram) release() {
	if d.buf != nil {
		select {
		case readBufs <- d.buf:
		default: // enough kept; the collector takes this one
		}
		d.buf = nil
	}
}

// receive waits for a datagram on rx and copies it into buf, until done is
// closed.
func receive(rx <-chan datagram, done <-chan struct{}, buf []byte) (transport.Packet, error) {
	select {
	case <-done:
		return transport.Packet{}, fmt.Errorf("multicast: receive: %w", transport.ErrClosed)
	default:
	}
	select {
	case <-done:
		return transport.Packet{}, fmt.Errorf("multicast: receive: %w", transport.ErrClosed)
	case d := <-rx:
		defer d.release()
		if d.err != nil {
			return transport.Packet{}, d.err
		}
		if d.refused {
			return transport.Packet{Src: d.src, Refused: true}, nil
		}
		if d.n > len(buf) {
			return transport.Packet{}, fmt.Errorf("multicast: %d-byte datagram from %s into a %d-byte buffer: %w",
				d.n, d.src, len(buf), transport.ErrTruncated)
		}
		return transport.Packet{N: copy(buf, (*d.buf)[:d.n]), Src: d.src, IfIndex: d.ifIndex, Dst: d.dst}, nil
	}
}
