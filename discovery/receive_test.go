package discovery_test

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An original pir peer and ours see each other. In the legacy engine our
// member speaks the original's bytes from the start; in the frugal one its
// announcements carry ARGS (field 7), which originals drop, until it hears
// the original: then it announces plainly every second.
func TestOriginalPeerInterop(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { originalPeerInterop(t, e.set, e.name == "frugal") })
	}
}

func originalPeerInterop(t *testing.T, engine func(*discovery.Config), frugal bool) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		old := l.lan.Join() // speaks raw bytes, as an original pir peer
		t.Cleanup(func() { old.Close() })
		got := make(chan string, 16)
		go func() {
			buf := make([]byte, 2048)
			for {
				p, err := old.Receive(buf)
				if err != nil {
					close(got)
					return
				}
				got <- string(buf[:p.N])
			}
		}()
		b, _ := l.join("b", engine, func(c *discovery.Config) { c.AnnounceJitter = -1 })
		advance(time.Second)
		drain := func() []string {
			synctest.Wait()
			var out []string
			for {
				select {
				case d := <-got:
					out = append(out, d)
				default:
					return out
				}
			}
		}
		const plain = "web|b|tcp://b:1|tcp://b:1"
		if frugal {
			first := drain()
			require.NotEmpty(t, first)
			assert.True(t, strings.HasPrefix(first[0], plain+"|qry|"), "the query on join is an extension: %q", first[0])
			assert.NotContains(t, first, plain, "nothing plain before an original is heard")
		} else {
			assert.Equal(t, plain+"|qry|", <-got, "the query on join is an extension")
			assert.Equal(t, plain, <-got, "announcements are the original's bytes")
		}

		l.health.set("198.18.0.2:37821", up)
		require.NoError(t, old.Send([]byte("web|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80")))
		synctest.Wait()
		m, ok := b.Member("4972084b-10a3-4d9d-8523-7e25b7e50141")
		require.True(t, ok)
		assert.Equal(t, "tcp://10.1.1.1:80", m.CommsURI.String())
		assert.Equal(t, old.Addr(), m.Addr)
		if frugal {
			drain()
			advance(1100 * time.Millisecond)
			assert.Contains(t, drain(), plain, "once an original is heard, the original's bytes within a second")
		}
		require.NoError(t, old.Close())
		for range got {
		}
	})
}

func TestBadInputDroppedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, _ := l.join("b")
		bad := l.lan.Join()
		t.Cleanup(func() { bad.Close() })
		for _, d := range []string{
			"abc|x|%zz|y", // crashes the original pir
			"web|x|%zz|y",
			"\xff\xfe",
			"",
			"web|x|tcp://a:1",
			"web|x|gopher://a:1|tcp://a:1",    // no prober for gopher
			"web|x|tcp://[::1|tcp://a:1",      // does not parse
			"other|x|tcp://x:1|tcp://x:1",     // another group
			"web|b|tcp://evil:1|tcp://evil:1", // our own ID
		} {
			require.NoError(t, bad.Send([]byte(d)))
		}
		synctest.Wait()
		s := b.Stats()
		assert.Equal(t, uint64(5), s.Dropped[discovery.DropMalformed])
		assert.Equal(t, uint64(2), s.Dropped[discovery.DropBadURI])
		assert.Equal(t, uint64(1), s.Dropped[discovery.DropForeignGroup])
		assert.GreaterOrEqual(t, s.Dropped[discovery.DropSelf], uint64(2), "the forged one and our own loopback")
		assert.Empty(t, b.Members())
		assert.Zero(t, s.Pending)
	})
}

// rejecting is a codec that refuses everything for a reason of its own, as
// an authenticating codec refuses forgeries.
type rejecting struct{ pipe.Codec }

var errForged = errors.New("forged")

func (rejecting) Decode([]byte, *codec.Message) error { return errForged }

func TestCodecRejectionsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		a, _ := l.join("a", func(c *discovery.Config) { c.Codec = rejecting{} })
		l.join("b")
		synctest.Wait()
		assert.Empty(t, a.Members())
		assert.Positive(t, a.Stats().Dropped[discovery.DropRejected])
		assert.Zero(t, a.Stats().Dropped[discovery.DropMalformed])
	})
}

// refusalFirst hands its Group a refusal before every datagram, as a
// transport would whose unicasts keep being refused.
type refusalFirst struct {
	*mem.Endpoint
	mu   sync.Mutex
	held *transport.Packet
	data []byte
}

func (r *refusalFirst) Receive(buf []byte) (transport.Packet, error) {
	r.mu.Lock()
	if p := r.held; p != nil {
		r.held = nil
		p.N = copy(buf, r.data)
		r.mu.Unlock()
		return *p, nil
	}
	r.mu.Unlock()
	p, err := r.Endpoint.Receive(buf)
	if err != nil {
		return p, err
	}
	r.mu.Lock()
	r.held, r.data = &p, bytes.Clone(buf[:p.N])
	r.mu.Unlock()
	return transport.Packet{Refused: true, Src: netip.MustParseAddrPort("198.18.0.250:7946")}, nil
}

// A refusal is not a datagram: the receiver skips it, neither counting it
// as received nor as dropped. (Before the receiver skipped them, b counted
// twice the datagrams its endpoint received, half of them malformed.)
func TestRefusalsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.join("a")
		var ep *mem.Endpoint
		b, _ := l.join("b", func(c *discovery.Config) {
			ep = c.Transport.(*mem.Endpoint)
			c.Transport = &refusalFirst{Endpoint: ep}
		})
		advance(3 * time.Second)
		assert.Equal(t, []string{"a"}, ids(b.Members()))
		s := b.Stats()
		assert.Equal(t, ep.Stats().Received, s.Received, "only datagrams are counted as received")
		for r, n := range s.Dropped {
			if r != discovery.DropSelf {
				assert.Zero(t, n, "dropped as %v", r)
			}
		}
	})
}
