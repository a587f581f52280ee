package stress

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/netlab"
)

// spoofer sends UDP datagrams from any port of lo's address
// (netlab.LoopbackV4, where every member of these tests lives), through a
// raw socket: an off-path forger's datagrams, from a member's very
// address and port, without binding that port (a dead member's port stays
// closed, and the kernel still refuses pings to it).
type spoofer struct{ raw net.PacketConn }

func newSpoofer(t *testing.T) *spoofer {
	t.Helper()
	raw, err := net.ListenPacket("ip4:udp", netlab.LoopbackV4.String())
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	return &spoofer{raw: raw}
}

// send sends b from src to dst. The UDP checksum is 0: none, which IPv4
// allows.
func (s *spoofer) send(b []byte, src, dst netip.AddrPort) error {
	if src.Addr().Unmap() != netlab.LoopbackV4 {
		return fmt.Errorf("spoofer: source %v is not on lo's address", src)
	}
	d := make([]byte, 8+len(b))
	binary.BigEndian.PutUint16(d[0:], src.Port())
	binary.BigEndian.PutUint16(d[2:], dst.Port())
	binary.BigEndian.PutUint16(d[4:], uint16(len(d)))
	copy(d[8:], b)
	_, err := s.raw.WriteTo(d, &net.IPAddr{IP: dst.Addr().Unmap().AsSlice()})
	return err
}

// spray sends what next returns every millisecond until stop is closed,
// catching up after a late tick, so that about 1,000 go a second; each
// call of next may send several. It returns the count sent.
func spray(stop <-chan struct{}, next func() int) int {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start, n, calls := time.Now(), 0, 0
	for {
		select {
		case <-stop:
			return n
		case <-tick.C:
		}
		for due := int(time.Since(start) / time.Millisecond); calls < due; calls++ {
			n += next()
		}
	}
}

// TestForgedAck plays the forged ack of docs/design/frugal.md (section 4):
// a member crashes (no goodbye, its unicast port and health server
// closed), and a forger sprays the other members with acks under its ID,
// with random nonces, from its very address and port (a raw socket), at
// 1,000 a second to each. An ack counts only when it echoes the nonce of a
// ping in flight, and nothing else from the dead member's address may pass
// for a sign of life: the member is removed by all as without the spray,
// by the kernel's refusals of the pings, within the bound of
// TestKilledFoundByRefusalOnSockets (8 s; about 1 s is usual).
func TestForgedAck(t *testing.T) {
	netlab.Require(t)
	const bound = 8 * time.Second
	for i, sprayed := range []bool{false, true} {
		name := "no spray"
		if sprayed {
			name = "spray"
		}
		t.Run(name, func(t *testing.T) {
			p := uint16(9570 + i)
			dead, hsDead := lanMember(t, "m1", p)
			var gs []*discovery.Group
			for k := range 3 {
				g, _ := lanMember(t, fmt.Sprintf("m%d", k+2), p)
				gs = append(gs, g)
			}
			require.Eventually(t, func() bool {
				for _, g := range append(gs, dead) {
					if len(g.Members()) != 3 {
						return false
					}
				}
				return true
			}, 10*time.Second, 5*time.Millisecond, "the group forms")
			m, ok := gs[0].Member("m1")
			require.True(t, ok)
			deadAddr := m.Addr
			var targets []netip.AddrPort
			for _, id := range []string{"m2", "m3", "m4"} {
				m, ok := dead.Member(id)
				require.True(t, ok)
				targets = append(targets, m.Addr)
			}
			var left atomic.Int64
			for _, g := range gs {
				g.AddListener(func(e discovery.Event) bool {
					if e.Type == discovery.Left && e.Member.ID == "m1" {
						left.Add(1)
					}
					return true
				})
			}
			spoofed := func() (n uint64) {
				for _, g := range gs {
					n += g.Stats().Dropped[discovery.DropSpoofed]
				}
				return n
			}
			before := spoofed()

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var sent atomic.Int64
			var sendErr atomic.Value
			if sprayed {
				sp := newSpoofer(t)
				wg.Go(func() {
					sent.Store(int64(spray(stop, func() int {
						n := 0
						for _, dst := range targets {
							a := codec.Message{Kind: codec.Ack, Group: "web", ID: "m1", Nonce: rand.Uint32(), Version: 1}
							b, err := pipe.Codec{}.Encode(nil, &a)
							if err == nil {
								err = sp.send(b, deadAddr, dst)
							}
							if err != nil {
								sendErr.Store(err)
								continue
							}
							n++
						}
						return n
					})))
				})
				// The spray is under way before the crash.
				require.Eventually(t, func() bool { return spoofed()-before >= 100 }, 10*time.Second, time.Millisecond,
					"the forged acks reach the members (send error: %v)", sendErr.Load())
			}
			require.NoError(t, dead.Close())
			require.NoError(t, hsDead.Close())
			crashed := time.Now()
			removed := assert.Eventually(t, func() bool { return left.Load() == 3 }, bound, 5*time.Millisecond,
				"the dead member removed by all 3 others within %v", bound)
			took := time.Since(crashed)
			close(stop)
			wg.Wait()
			var refused, obits uint64
			for _, g := range gs {
				s := g.Stats()
				refused, obits = refused+s.PingsRefused, obits+s.Obituaries
			}
			t.Logf("figures: %s: removed by all %v after the crash (removed: %v); %d forged acks sent, %d counted spoofed; %d pings refused, %d obituaries",
				name, took.Round(time.Millisecond), removed, sent.Load(), spoofed()-before, refused, obits)
			if sprayed {
				// Most of them: a loaded machine's sockets may overflow.
				assert.GreaterOrEqual(t, spoofed()-before, uint64(sent.Load())/2, "the forged acks counted spoofed")
			}
		})
	}
}
