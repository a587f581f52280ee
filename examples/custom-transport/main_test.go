package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/transporttest"
)

// The conformance suite every pir transport passes, run on this one with
// real sockets on 127.0.0.1.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
		var out []transport.Transport
		var all []*Static
		for range n {
			s, err := ListenStatic("127.0.0.1:0")
			require.NoError(t, err)
			all = append(all, s)
			out = append(out, s)
		}
		for _, s := range all {
			for _, o := range all {
				s.SetPeers(append(s.peers, o.Addr()))
			}
		}
		return out
	})
}

func Example_main() {
	main()
	// Output:
	// member-1 sees member-2
	// member-1 sees member-3
}
