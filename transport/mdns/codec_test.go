package mdns

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/internal/netlab"
)

// The Conn's codec passes the codec conformance suite.
func TestMDNSCodecConformance(t *testing.T) {
	codectest.Run(t, Codec{})
}

// An announcement synthesized for a foreign service decodes with Extended
// false (it cannot answer pir's confirmations); every other message with
// Extended true.
func TestMDNSCodecExtended(t *testing.T) {
	m := codectest.Messages()[0]
	for _, foreign := range []bool{false, true} {
		b, err := Codec{}.encode(nil, &m, foreign)
		require.NoError(t, err)
		var got codec.Message
		require.NoError(t, Codec{}.Decode(b, &got))
		assert.Equal(t, !foreign, got.Extended)
	}
	q := codectest.Messages()[3]
	b, err := Codec{}.encode(nil, &q, true)
	require.NoError(t, err)
	var got codec.Message
	require.NoError(t, Codec{}.Decode(b, &got))
	assert.True(t, got.Extended, "only an announcement is marked foreign")
}

// Send refuses bytes that are not messages of the Conn's codec (a Group
// with another codec, pipe's or auth's), so that such a Group fails to
// Join instead of publishing nothing; with Config.Opaque it carries them.
func TestMDNSSendRefusesOtherCodecs(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	m := member("m1", 4000)
	b, err := pipe.Codec{}.Encode(nil, &m)
	require.NoError(t, err)
	cfg := Config{Group: "test", Port: freePort(t), Interfaces: []string{netlab.Loopback}, Network: "udp4"}
	c, err := New(cfg)
	require.NoError(t, err)
	defer c.Close()
	assert.ErrorIs(t, c.Send(b), ErrNotMessage)
	assert.ErrorIs(t, c.SendTo(b, c.LocalAddr(false)), ErrNotMessage)

	cfg.Opaque = true
	o, err := New(cfg)
	require.NoError(t, err)
	defer o.Close()
	assert.NoError(t, o.Send(b), "Opaque carries it")
}
