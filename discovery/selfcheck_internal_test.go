package discovery

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A member whose health URI names every address checks itself over the
// loopback address of that family.
func TestSelfTarget(t *testing.T) {
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
