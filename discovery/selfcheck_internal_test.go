package discovery

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A member whose health URI names every address checks itself over the
// loopback address of that family (on a host with ::1).
func TestSelfTarget(t *testing.T) {
	defer func(f func() bool) { hasIPv6Loopback = f }(hasIPv6Loopback)
	hasIPv6Loopback = func() bool { return true }
	for in, want := range map[string]string{
		"tcp://0.0.0.0:8080":        "tcp://127.0.0.1:8080",
		"http://[::]:8080/healthz":  "http://[::1]:8080/healthz",
		"tcp://198.18.0.7:8080":     "tcp://198.18.0.7:8080",
		"http://db.example:80/ping": "http://db.example:80/ping",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		assert.Equal(t, want, selfTarget(u).String(), in)
	}
}

// A health URI naming every address is checked over the loopback address
// of its family; [::] over 127.0.0.1 on a host without ::1 (IPv6
// disabled), where a server on [::] serves IPv4 alone. e2e's
// TestSelfCheckIPv4Only runs it on such a host.
func TestSelfTargetWithoutIPv6(t *testing.T) {
	defer func(f func() bool) { hasIPv6Loopback = f }(hasIPv6Loopback)
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		require.NoError(t, err)
		return u
	}
	for _, ipv6 := range []bool{true, false} {
		hasIPv6Loopback = func() bool { return ipv6 }
		want6 := "tcp://[::1]:4000"
		if !ipv6 {
			want6 = "tcp://127.0.0.1:4000"
		}
		assert.Equal(t, want6, selfTarget(parse("tcp://[::]:4000")).String(), "IPv6 loopback: %v", ipv6)
		assert.Equal(t, "tcp://127.0.0.1:4000", selfTarget(parse("tcp://0.0.0.0:4000")).String())
		assert.Equal(t, "tcp://198.18.0.7:4000", selfTarget(parse("tcp://198.18.0.7:4000")).String())
	}
}
