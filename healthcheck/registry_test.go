package healthcheck_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/pirlan/pir/healthcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a Prober that records the target it was given and returns
// err.
func recorder(got *[]string, name string, err error) healthcheck.Prober {
	return healthcheck.ProberFunc(func(_ context.Context, u *url.URL) error {
		*got = append(*got, name+" "+u.String())
		return err
	})
}

func TestRegistry(t *testing.T) {
	t.Run("BuiltIns", func(t *testing.T) {
		r := healthcheck.NewRegistry()
		for _, s := range []string{"tcp", "udp", "http", "TCP"} {
			assert.True(t, r.Supports(s), s)
		}
		assert.False(t, r.Supports("ftp"))
		// https needs the application's TLS config (HTTPConfig.DialTLS).
		assert.False(t, r.Supports("https"))
		p, ok := r.Lookup("tcp")
		require.True(t, ok)
		assert.IsType(t, &healthcheck.TCPProber{}, p)
		p, _ = r.Lookup("udp")
		assert.IsType(t, &healthcheck.UDPProber{}, p)
		p, _ = r.Lookup("http")
		assert.IsType(t, &healthcheck.HTTPProber{}, p)
	})
	t.Run("DispatchByScheme", func(t *testing.T) {
		var got []string
		r := healthcheck.NewRegistry()
		r.Register("tcp", recorder(&got, "A", nil))
		r.Register("udp", recorder(&got, "B", nil))
		require.NoError(t, r.Probe(context.Background(), &url.URL{Scheme: "udp", Host: "h:1"}))
		require.NoError(t, r.Probe(context.Background(), &url.URL{Scheme: "TCP", Host: "h:2"}))
		assert.Equal(t, []string{"B udp://h:1", "A TCP://h:2"}, got)
	})
	t.Run("ErrorPassedThrough", func(t *testing.T) {
		var got []string
		boom := errors.New("boom")
		r := healthcheck.NewRegistry()
		r.Register("x", recorder(&got, "X", boom))
		require.ErrorIs(t, r.Probe(context.Background(), &url.URL{Scheme: "x", Host: "h:1"}), boom)
	})
	t.Run("UnknownScheme", func(t *testing.T) {
		r := healthcheck.NewRegistry()
		err := r.Probe(context.Background(), &url.URL{Scheme: "gopher", Host: "h:70"})
		require.ErrorIs(t, err, healthcheck.ErrUnsupportedScheme)
		assert.Contains(t, err.Error(), "gopher")
	})
	t.Run("NilTarget", func(t *testing.T) {
		require.ErrorIs(t, healthcheck.NewRegistry().Probe(context.Background(), nil), healthcheck.ErrInvalidTarget)
	})
	t.Run("RegisterOverrides", func(t *testing.T) {
		var got []string
		r := healthcheck.NewRegistry()
		r.Register("tcp", recorder(&got, "first", nil))
		r.Register("Tcp", recorder(&got, "second", nil))
		require.NoError(t, r.Probe(context.Background(), &url.URL{Scheme: "tcp", Host: "h:1"}))
		assert.Equal(t, []string{"second tcp://h:1"}, got)
	})
}
