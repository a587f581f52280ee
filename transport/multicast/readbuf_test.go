package multicast

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A released read buffer is reused after collections: a sync.Pool drops
// its buffers at every other collection, and a buffer made again comes
// zeroed, every page of it resident.
func TestReadBufsSurviveCollections(t *testing.T) {
	for len(readBufs) > 0 { // other tests' buffers
		<-readBufs
	}
	d := datagram{buf: getReadBuf()}
	kept := d.buf
	d.release()
	assert.Nil(t, d.buf)
	runtime.GC()
	runtime.GC()
	runtime.GC()
	assert.Same(t, kept, getReadBuf(), "the buffer was not kept")
}

// At most maxFreeReadBufs buffers are kept free.
func TestReadBufsBounded(t *testing.T) {
	for len(readBufs) > 0 {
		<-readBufs
	}
	bufs := make([]*[]byte, 3*maxFreeReadBufs)
	for i := range bufs {
		bufs[i] = getReadBuf()
	}
	for _, b := range bufs {
		d := datagram{buf: b}
		d.release()
	}
	assert.Equal(t, maxFreeReadBufs, len(readBufs))
}
