package multicast

import (
	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/transport"
)

var (
	_ transport.DefaultCodec = (*Conn)(nil)
	_ transport.DefaultCodec = (*Dual)(nil)
)

// DefaultCodec returns pipe.Codec{}: the group address and port are those
// of the original pir, whose format is the pipe format.
func (c *Conn) DefaultCodec() codec.Codec { return pipe.Codec{} }

// DefaultCodec returns pipe.Codec{}, as Conn.DefaultCodec does.
func (d *Dual) DefaultCodec() codec.Codec { return pipe.Codec{} }
