package cli

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/transport"
)

// -foreign-health-hosts is the CLI's way to discovery.Config's
// ForeignHealthHosts (issue 12: "an option turns this off for unusual
// setups, and the CLI exposes it"); without it the safe default holds.
func TestForeignHealthHostsFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-foreign-health-hosts"}, true},
	} {
		var n NetFlags
		fs := flag.NewFlagSet("join", flag.ContinueOnError)
		n.Register(fs)
		require.NoError(t, fs.Parse(c.args))
		cfg, err := n.GroupConfig(hclog.NewNullLogger(), io.Discard)
		require.NoError(t, err)
		require.Equal(t, c.want, cfg.ForeignHealthHosts, "%v", c.args)
	}
}

// -ping and -self-check set the frugal engine's pings and self checks
// (discovery.Config's PingInterval and HealthInterval), 1 s and 2 s by default; 0
// turns them off, which the Config says with a negative duration.
func TestFrugalFlags(t *testing.T) {
	for _, c := range []struct {
		args       []string
		ping, self time.Duration
	}{
		{nil, time.Second, 2 * time.Second},
		{[]string{"-ping", "0"}, -1, 2 * time.Second},
		{[]string{"-self-check", "0"}, time.Second, -1},
		{[]string{"-ping", "500ms", "-self-check", "1s"}, 500 * time.Millisecond, time.Second},
	} {
		var n NetFlags
		fs := flag.NewFlagSet("join", flag.ContinueOnError)
		n.Register(fs)
		require.NoError(t, fs.Parse(c.args))
		cfg, err := n.GroupConfig(hclog.NewNullLogger(), io.Discard)
		require.NoError(t, err)
		require.Equal(t, c.ping, cfg.PingInterval, "%v", c.args)
		require.Equal(t, c.self, cfg.HealthInterval, "%v", c.args)
	}
}

// The adviser's transport wrapper keeps what the Group type-asserts: the
// mDNS transport's probers (without them `pir watch -mdns _http._tcp`
// drops every foreign service as bad_uri) and per-link sending.
func TestAdvisedTransportKeepsOptionalInterfaces(t *testing.T) {
	a := &Adviser{}
	for _, c := range []struct {
		name          string
		t             transport.Transport
		link, schemes bool
	}{
		{"plain", plainT{}, false, false},
		{"link", linkT{}, true, false},
		{"schemes", schemeT{}, false, true},
		{"both", bothT{}, true, true},
	} {
		w := a.Transport(c.t)
		_, link := w.(transport.LinkSender)
		_, schemes := w.(healthcheck.SchemeProvider)
		require.Equal(t, c.link, link, c.name)
		require.Equal(t, c.schemes, schemes, c.name)
		// A transport that says nothing: the wrapper says no.
		require.False(t, w.(transport.UniqueUnicast).UnicastIsUnique(), c.name)
		require.False(t, w.(transport.RefusalReporter).ReportsRefusals(), c.name)
		require.Nil(t, w.(transport.DefaultCodec).DefaultCodec(), c.name)
	}
	// The multicast transports' answers pass through: without them a
	// Group behind the wrapper never pinged, whatever -ping said, and
	// pirbench measured today's TCP probes instead.
	w := a.Transport(saysT{})
	require.True(t, w.(transport.UniqueUnicast).UnicastIsUnique())
	require.True(t, w.(transport.RefusalReporter).ReportsRefusals())
	require.Equal(t, pipe.Codec{}, w.(transport.DefaultCodec).DefaultCodec())
}

type plainT struct{ transport.Transport }
type linkT struct{ transport.Transport }
type schemeT struct{ transport.Transport }
type bothT struct{ transport.Transport }

func (linkT) Links() []transport.Link                  { return nil }
func (linkT) SendVia([]byte, transport.Link) error     { return nil }
func (schemeT) Probers() map[string]healthcheck.Prober { return nil }
func (bothT) Links() []transport.Link                  { return nil }
func (bothT) SendVia([]byte, transport.Link) error     { return nil }
func (bothT) Probers() map[string]healthcheck.Prober   { return nil }

type saysT struct{ transport.Transport }

func (saysT) UnicastIsUnique() bool     { return true }
func (saysT) ReportsRefusals() bool     { return true }
func (saysT) DefaultCodec() codec.Codec { return pipe.Codec{} }
