package cli

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/internal/netlab"
	"github.com/pirlan/pir/transport/mdns"
)

// "pir watch -mdns TYPE" lists every instance of TYPE, pir members of any
// group among them, and says it watches the service, not group "pir";
// with -group it lists that group's members and says so.
func TestWatchMDNSServiceType(t *testing.T) {
	netlab.Require(t)
	needBinary(t)
	c, err := mdns.New(mdns.Config{Group: "other", Network: "udp4", Interfaces: []string{netlab.Loopback}})
	require.NoError(t, err)
	defer c.Close()
	u := fmt.Sprintf("tcp://%s:%d", netlab.LoopbackV4, closedPort(t))
	b, err := c.DefaultCodec().Encode(nil, &codec.Message{Kind: codec.Announce, Group: "other", ID: "m-other", Health: u, Comms: u})
	require.NoError(t, err)
	require.NoError(t, c.Send(b))

	w := start(t, "watch", "-4", "-iface", "lo", "-mdns", "_pir._udp")
	w.stdout.waitFor(t, "watching service _pir._udp over mDNS")
	w.stdout.waitFor(t, "m-other joined")
	assert.Equal(t, 0, w.stop(t))
	assert.Zero(t, w.stdout.count(`group "pir"`), "%q", w.stdout.lines())

	w = start(t, "watch", "-4", "-iface", "lo", "-mdns", "_pir._udp", "-group", "other")
	w.stdout.waitFor(t, `watching group "other" over mDNS, service _pir._udp`)
	w.stdout.waitFor(t, "m-other joined")
	assert.Equal(t, 0, w.stop(t))
}
