package mdns

import (
	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/transport"
)

var _ transport.DefaultCodec = (*Conn)(nil)

// DefaultCodec returns pipe.Codec{}: the only codec whose messages the Conn
// turns into DNS-SD records (see the package documentation).
func (c *Conn) DefaultCodec() codec.Codec { return pipe.Codec{} }
