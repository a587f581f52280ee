package mem_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
	"github.com/pirlan/pir/transport/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newLAN(t *testing.T, cfg mem.Config) *mem.LAN {
	t.Helper()
	lan, err := mem.NewLAN(cfg)
	require.NoError(t, err)
	return lan
}

// join adds n endpoints to lan and closes them when the test ends.
func join(t *testing.T, lan *mem.LAN, n int) []*mem.Endpoint {
	t.Helper()
	eps := make([]*mem.Endpoint, n)
	for i := range eps {
		eps[i] = lan.Join()
		t.Cleanup(func() { _ = eps[i].Close() })
	}
	return eps
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mem.Config
	}{
		{"Loopback", mem.Config{}},
		{"NoLoopback", mem.Config{NoLoopback: true}},
		{"Refusals", mem.Config{Refusals: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
				lan := newLAN(t, tc.cfg)
				trs := make([]transport.Transport, n)
				for i := range trs {
					trs[i] = lan.Join()
				}
				return trs
			})
		})
	}
}

// recv receives one datagram that must already be queued: with a LAN,
// delivery is done when Send returns.
func recv(t *testing.T, e *mem.Endpoint) (string, transport.Packet) {
	t.Helper()
	require.Positive(t, queued(e), "%v: nothing queued", e)
	buf := make([]byte, mem.MaxUDP)
	p, err := e.Receive(buf)
	require.NoError(t, err)
	return string(buf[:p.N]), p
}

// queued is how many datagrams wait in e's queue.
func queued(e *mem.Endpoint) uint64 {
	s := e.Stats()
	return s.Delivered - s.Received - s.Truncated
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   mem.Config
		wants []string
	}{
		{"zero", mem.Config{}, nil},
		{"defaults", mem.DefaultConfig(), nil},
		{"largest", mem.Config{QueueLen: 1, MaxDatagram: mem.MaxUDP}, nil},
		{"negative queue", mem.Config{QueueLen: -1}, []string{"QueueLen -1"}},
		{"negative max", mem.Config{MaxDatagram: -1}, []string{"MaxDatagram -1"}},
		{"max too large", mem.Config{MaxDatagram: mem.MaxUDP + 1}, []string{"MaxDatagram 65508"}},
		{"every problem at once", mem.Config{QueueLen: -5, MaxDatagram: 70000}, []string{"QueueLen -5", "MaxDatagram 70000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, newErr := mem.NewLAN(tc.cfg)
			if tc.wants == nil {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.Error(t, newErr)
			assert.ErrorIs(t, err, mem.ErrInvalidConfig)
			assert.ErrorIs(t, newErr, mem.ErrInvalidConfig)
			for _, w := range tc.wants {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 300)
	assert.Equal(t, netip.MustParseAddrPort("198.18.0.1:7946"), eps[0].Addr())
	assert.Equal(t, netip.MustParseAddrPort("198.18.0.2:7946"), eps[1].Addr())
	assert.Equal(t, netip.MustParseAddrPort("198.18.1.0:7946"), eps[255].Addr())
	assert.Equal(t, "198.18.1.44:7946", eps[299].String())
	benchmarking := netip.MustParsePrefix("198.18.0.0/15")
	seen := make(map[netip.AddrPort]bool)
	for _, e := range eps {
		require.True(t, benchmarking.Contains(e.Addr().Addr()), "%v", e)
		require.False(t, seen[e.Addr()], "%v twice", e)
		seen[e.Addr()] = true
	}

	// A closed endpoint's address is not handed out again.
	require.NoError(t, eps[299].Close())
	next := lan.Join()
	t.Cleanup(func() { _ = next.Close() })
	assert.Equal(t, netip.MustParseAddrPort("198.18.1.45:7946"), next.Addr())
}

func TestPacketDescribesSender(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	require.NoError(t, eps[0].Send([]byte("hello")))
	got, p := recv(t, eps[1])
	assert.Equal(t, "hello", got)
	assert.Equal(t, transport.Packet{N: 5, Src: eps[0].Addr(), IfIndex: 1, Dst: mem.GroupAddr()}, p)

	require.NoError(t, eps[0].SendTo([]byte("hi"), eps[1].Addr()))
	_, p = recv(t, eps[1])
	assert.Equal(t, transport.Packet{N: 2, Src: eps[0].Addr(), IfIndex: 1, Dst: eps[1].Addr().Addr()}, p, "a unicast names its receiver")
}

func TestLoopbackAddresses(t *testing.T) {
	lan := newLAN(t, mem.Config{Loopback: true})
	eps := join(t, lan, 2)
	assert.Equal(t, netip.MustParseAddrPort("127.0.0.1:7946"), eps[0].Addr())
	assert.Equal(t, netip.MustParseAddrPort("127.0.0.2:7946"), eps[1].Addr())
}

func TestLoopback(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	require.NoError(t, eps[0].Send([]byte("me")))
	got, p := recv(t, eps[0])
	assert.Equal(t, "me", got)
	assert.Equal(t, eps[0].Addr(), p.Src)

	// SendTo one's own address works too, as UDP does.
	require.NoError(t, eps[0].SendTo([]byte("self"), eps[0].Addr()))
	got, _ = recv(t, eps[0])
	assert.Equal(t, "self", got)

	quiet := newLAN(t, mem.Config{NoLoopback: true})
	qs := join(t, quiet, 2)
	require.NoError(t, qs[0].Send([]byte("me")))
	assert.Zero(t, qs[0].Stats().Delivered, "a LAN without loopback sent the sender its own datagram")
	assert.Equal(t, uint64(1), qs[1].Stats().Delivered)
}

func TestSendToMappedAddress(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	a := eps[1].Addr()
	mapped := netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	require.NoError(t, eps[0].SendTo([]byte("v4-mapped"), mapped))
	got, _ := recv(t, eps[1])
	assert.Equal(t, "v4-mapped", got)
}

func TestSendToUnknown(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	closed := eps[2].Addr()
	require.NoError(t, eps[2].Close())

	for _, dst := range []netip.AddrPort{
		closed,
		netip.MustParseAddrPort("198.18.0.200:7946"),
		netip.MustParseAddrPort("198.18.0.2:7947"),
		{},
	} {
		require.NoError(t, eps[0].SendTo([]byte("nobody"), dst), "%v", dst)
	}
	assert.Equal(t, mem.Stats{Sent: 4, Unknown: 4}, eps[0].Stats())
	assert.Zero(t, eps[1].Stats().Delivered)
	assert.Equal(t, uint64(4), lan.Stats().Unknown)
}

func TestTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		want int
	}{
		{"default", 0, transport.MaxDatagram},
		{"configured", 100, 100},
		{"largest", mem.MaxUDP, mem.MaxUDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lan := newLAN(t, mem.Config{MaxDatagram: tc.max, NoLoopback: true})
			eps := join(t, lan, 2)
			require.NoError(t, eps[0].Send(make([]byte, tc.want)))
			require.NoError(t, eps[0].SendTo(make([]byte, tc.want), eps[1].Addr()))
			require.ErrorIs(t, eps[0].Send(make([]byte, tc.want+1)), transport.ErrTooLarge)
			require.ErrorIs(t, eps[0].SendTo(make([]byte, tc.want+1), eps[1].Addr()), transport.ErrTooLarge)
			assert.Equal(t, uint64(2), eps[0].Stats().Sent, "refused datagrams counted as sent")
			assert.Equal(t, uint64(2), eps[1].Stats().Delivered)
		})
	}
}

func TestTruncatedNamesSender(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	require.NoError(t, eps[0].Send([]byte("0123456789")))
	p, err := eps[1].Receive(make([]byte, 9))
	require.ErrorIs(t, err, transport.ErrTruncated)
	assert.Equal(t, transport.Packet{Src: eps[0].Addr(), IfIndex: 1, Dst: mem.GroupAddr()}, p)
	assert.Equal(t, uint64(1), eps[1].Stats().Truncated)
	assert.Zero(t, queued(eps[1]), "the datagram was not dropped")
}

func TestEmptyDatagram(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	require.NoError(t, eps[0].Send(nil))
	p, err := eps[1].Receive(nil)
	require.NoError(t, err)
	assert.Equal(t, transport.Packet{N: 0, Src: eps[0].Addr(), IfIndex: 1, Dst: mem.GroupAddr()}, p)
}

// Receivers get their own copy: one receiver writing into its buffer does
// not change what another receives.
func TestReceiversDoNotShareBuffers(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	require.NoError(t, eps[0].Send([]byte("original")))
	buf := make([]byte, 64)
	p, err := eps[1].Receive(buf)
	require.NoError(t, err)
	copy(buf[:p.N], "CHANGED!")
	got, _ := recv(t, eps[2])
	assert.Equal(t, "original", got)
	got, _ = recv(t, eps[0])
	assert.Equal(t, "original", got)
}

func TestOrderFromOneSender(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	for i := range 100 {
		require.NoError(t, eps[0].Send(fmt.Appendf(nil, "%d", i)))
	}
	for i := range 100 {
		got, _ := recv(t, eps[1])
		require.Equal(t, fmt.Sprint(i), got)
	}
}

func TestLossAll(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	lan.SetLoss(1)
	for range 100 {
		require.NoError(t, eps[0].Send([]byte("x")))
	}
	for _, e := range eps[1:] {
		assert.Equal(t, mem.Stats{Lost: 100}, e.Stats(), "%v", e)
	}
	// Loopback never crosses the wire, so loss does not strike it.
	assert.Equal(t, mem.Stats{Sent: 100, Delivered: 100}, eps[0].Stats())

	lan.SetLoss(0)
	require.NoError(t, eps[0].Send([]byte("x")))
	assert.Equal(t, uint64(1), eps[1].Stats().Delivered)
}

func TestLossClamped(t *testing.T) {
	lan := newLAN(t, mem.Config{NoLoopback: true})
	eps := join(t, lan, 2)
	for _, tc := range []struct {
		p    float64
		lost bool
	}{{2, true}, {-1, false}, {1e9, true}, {nan(), false}} {
		before := eps[1].Stats().Lost
		lan.SetLoss(tc.p)
		require.NoError(t, eps[0].Send([]byte("x")))
		assert.Equal(t, tc.lost, eps[1].Stats().Lost > before, "loss %v", tc.p)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// deliveredOfHalf sends 1000 datagrams across a LAN seeded with seed and
// losing half, and returns how many arrived.
func deliveredOfHalf(t *testing.T, seed uint64) uint64 {
	t.Helper()
	lan := newLAN(t, mem.Config{Seed: seed, NoLoopback: true})
	eps := join(t, lan, 2)
	lan.SetLoss(0.5)
	for range 1000 {
		require.NoError(t, eps[0].Send([]byte("x")))
	}
	s := eps[1].Stats()
	require.Equal(t, uint64(1000), s.Delivered+s.Lost)
	return s.Delivered
}

func TestLossHalfIsReproducible(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42} {
		n := deliveredOfHalf(t, seed)
		assert.InDelta(t, 500, n, 100, "seed %d", seed)
		assert.Equal(t, n, deliveredOfHalf(t, seed), "seed %d gave different losses", seed)
	}
}

func TestLinkLoss(t *testing.T) {
	lan := newLAN(t, mem.Config{NoLoopback: true})
	eps := join(t, lan, 3)
	a, b, c := eps[0], eps[1], eps[2]
	lan.SetLinkLoss(a, b, 1)

	require.NoError(t, a.Send([]byte("a")))
	require.NoError(t, a.SendTo([]byte("a"), b.Addr()))
	require.NoError(t, b.Send([]byte("b")))
	assert.Equal(t, mem.Stats{Sent: 1, Lost: 2, Delivered: 0}, b.Stats(), "a to b must be lost")
	assert.Equal(t, uint64(1), a.Stats().Delivered, "loss is one-way: b to a must arrive")
	assert.Equal(t, uint64(2), c.Stats().Delivered, "only the link a to b loses")

	lan.SetLinkLoss(a, b, 0)
	require.NoError(t, a.Send([]byte("a")))
	assert.Equal(t, uint64(1), b.Stats().Delivered)
}

func TestLinkLossAddsToLANLoss(t *testing.T) {
	lan := newLAN(t, mem.Config{NoLoopback: true})
	eps := join(t, lan, 2)
	lan.SetLoss(0.5)
	lan.SetLinkLoss(eps[0], eps[1], 0.5)
	for range 1000 {
		require.NoError(t, eps[0].Send([]byte("x")))
	}
	// Three quarters lost: (1 - 0.5) * (1 - 0.5) survive.
	assert.InDelta(t, 250, eps[1].Stats().Delivered, 80)
}

// reached sends from e and returns the endpoints that received it.
func reached(t *testing.T, e *mem.Endpoint, all []*mem.Endpoint) []*mem.Endpoint {
	t.Helper()
	before := make([]uint64, len(all))
	for i, x := range all {
		before[i] = x.Stats().Delivered
	}
	require.NoError(t, e.Send([]byte("hi")))
	var got []*mem.Endpoint
	for i, x := range all {
		if x.Stats().Delivered > before[i] {
			got = append(got, x)
		}
	}
	return got
}

func TestPartitionAndHeal(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 5)
	a, b, c, d, e := eps[0], eps[1], eps[2], eps[3], eps[4]
	lan.Partition([]*mem.Endpoint{a, b}, []*mem.Endpoint{c})

	// d and e, named in no group, form a group of their own.
	assert.Equal(t, []*mem.Endpoint{a, b}, reached(t, a, eps))
	assert.Equal(t, []*mem.Endpoint{c}, reached(t, c, eps))
	assert.Equal(t, []*mem.Endpoint{d, e}, reached(t, d, eps))
	require.NoError(t, a.SendTo([]byte("across"), c.Addr()))
	// c missed a's and d's multicasts and a's unicast.
	assert.Equal(t, uint64(3), c.Stats().Partitioned)
	// a's multicast missed 3, c's 4, d's 3, and a's unicast 1.
	assert.Equal(t, uint64(3+4+3+1), lan.Stats().Partitioned)

	// Endpoints that join later are in the unnamed group.
	f := lan.Join()
	t.Cleanup(func() { _ = f.Close() })
	all := append(eps, f)
	assert.Equal(t, []*mem.Endpoint{d, e, f}, reached(t, f, all))

	lan.Heal()
	assert.Equal(t, all, reached(t, a, all))
	assert.Equal(t, all, reached(t, c, all))
}

func TestPartitionReplaced(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	a, b, c := eps[0], eps[1], eps[2]
	lan.Partition([]*mem.Endpoint{a})
	lan.Partition([]*mem.Endpoint{c})
	assert.Equal(t, []*mem.Endpoint{a, b}, reached(t, a, eps))
	// Named twice: the last group wins.
	lan.Partition([]*mem.Endpoint{a, b}, []*mem.Endpoint{b, c})
	assert.Equal(t, []*mem.Endpoint{a}, reached(t, a, eps))
	assert.Equal(t, []*mem.Endpoint{b, c}, reached(t, b, eps))
}

func TestSetDown(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	a, b, c := eps[0], eps[1], eps[2]

	require.NoError(t, b.SendTo([]byte("before"), a.Addr()))
	a.SetDown(true)

	// Sends still succeed, and vanish: not even the loopback copy arrives.
	require.NoError(t, a.Send([]byte("lost")))
	require.NoError(t, a.SendTo([]byte("lost"), b.Addr()))
	assert.Empty(t, reached(t, a, eps))
	// Nothing reaches a.
	assert.Equal(t, []*mem.Endpoint{b, c}, reached(t, b, eps))
	require.NoError(t, c.SendTo([]byte("lost"), a.Addr()))
	assert.Equal(t, uint64(4), a.Stats().Down, "two loopback copies of a's own, one from b, one from c")

	// What was queued before the cable was pulled can still be received.
	got, _ := recv(t, a)
	assert.Equal(t, "before", got)
	assert.Zero(t, queued(a))

	a.SetDown(false)
	assert.Equal(t, eps, reached(t, a, eps))
	assert.Equal(t, eps, reached(t, c, eps))
}

func TestQueueFull(t *testing.T) {
	lan := newLAN(t, mem.Config{QueueLen: 4, NoLoopback: true})
	eps := join(t, lan, 2)
	a, b := eps[0], eps[1]
	for i := range 10 {
		// Never blocks: the test would hang here otherwise.
		require.NoError(t, a.Send(fmt.Appendf(nil, "%d", i)))
	}
	assert.Equal(t, mem.Stats{Delivered: 4, QueueFull: 6}, b.Stats())
	for i := range 4 {
		got, _ := recv(t, b)
		assert.Equal(t, fmt.Sprint(i), got, "the oldest datagrams stay queued")
	}

	// Room again once received.
	require.NoError(t, a.Send([]byte("again")))
	got, _ := recv(t, b)
	assert.Equal(t, "again", got)
	assert.Equal(t, mem.Stats{Delivered: 5, Received: 5, QueueFull: 6}, b.Stats())
}

// Filling and draining a queue many times over keeps its order and its
// bound: the queue behaves like a model that drops what does not fit.
func TestQueueWrapsAround(t *testing.T) {
	const queueLen = 3
	lan := newLAN(t, mem.Config{QueueLen: queueLen, NoLoopback: true})
	eps := join(t, lan, 2)
	a, b := eps[0], eps[1]
	var model []string
	sent, dropped := 0, 0
	for round := range 60 {
		// Send 0 to 3 datagrams, then receive 0 to 2.
		for range round % 4 {
			msg := fmt.Sprint(sent)
			sent++
			require.NoError(t, a.Send([]byte(msg)))
			if len(model) < queueLen {
				model = append(model, msg)
			} else {
				dropped++
			}
		}
		for range round % 3 {
			if len(model) == 0 {
				break
			}
			got, _ := recv(t, b)
			require.Equal(t, model[0], got, "round %d", round)
			model = model[1:]
		}
		require.Equal(t, uint64(len(model)), queued(b), "round %d", round)
	}
	require.Positive(t, dropped)
	assert.Equal(t, uint64(dropped), b.Stats().QueueFull)
}

func TestStatsAddUp(t *testing.T) {
	lan := newLAN(t, mem.Config{QueueLen: 2, Seed: 7})
	eps := join(t, lan, 4)
	lan.SetLoss(0.3)
	lan.Partition([]*mem.Endpoint{eps[3]})
	eps[2].SetDown(true)
	for i := range 20 {
		require.NoError(t, eps[i%4].Send([]byte("x")))
	}
	require.NoError(t, eps[0].SendTo([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1")))
	_, err := eps[1].Receive(make([]byte, 1))
	require.NoError(t, err)
	_, err = eps[0].Receive(nil)
	require.ErrorIs(t, err, transport.ErrTruncated)

	s := lan.Stats()
	assert.Equal(t, uint64(21), s.Sent)
	assert.Equal(t, uint64(1), s.Unknown)
	assert.Equal(t, uint64(20*4), s.Delivered+s.Lost+s.Partitioned+s.Down+s.QueueFull, "%+v", s)
	assert.Equal(t, uint64(1), s.Received)
	assert.Equal(t, uint64(1), s.Truncated)
	for _, n := range []uint64{s.Delivered, s.Lost, s.Partitioned, s.Down, s.QueueFull} {
		assert.Positive(t, n, "every way of dropping happened: %+v", s)
	}

	var sum mem.Stats
	for _, e := range eps {
		es := e.Stats()
		sum.Sent += es.Sent
		sum.Delivered += es.Delivered
		sum.Received += es.Received
		sum.Truncated += es.Truncated
		sum.Lost += es.Lost
		sum.Partitioned += es.Partitioned
		sum.Down += es.Down
		sum.QueueFull += es.QueueFull
		sum.Unknown += es.Unknown
	}
	assert.Equal(t, s, sum, "the LAN's stats are the sum of its endpoints'")
}

func TestCloseRemovesEndpoint(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 3)
	a, b, c := eps[0], eps[1], eps[2]
	require.NoError(t, b.Send([]byte("queued")))
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())

	assert.Equal(t, []*mem.Endpoint{a, c}, reached(t, a, eps))
	require.NoError(t, a.SendTo([]byte("gone"), b.Addr()))
	assert.Equal(t, uint64(1), a.Stats().Unknown)

	_, err := b.Receive(make([]byte, 64))
	require.ErrorIs(t, err, transport.ErrClosed, "queued datagrams are discarded on Close")
	require.ErrorIs(t, b.Send(nil), transport.ErrClosed)
	require.ErrorIs(t, b.SendTo(nil, a.Addr()), transport.ErrClosed)
	// Faults on a closed endpoint are harmless.
	b.SetDown(true)
	lan.SetLinkLoss(a, b, 1)
	lan.Partition([]*mem.Endpoint{b})
	assert.Equal(t, []*mem.Endpoint{a, c}, reached(t, a, eps))
}

// In a synctest bubble, a Receive waiting for a datagram is durably
// blocked, so the test sees exactly when it returns.
func TestReceiveBlocksUntilSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN(t, mem.Config{})
		eps := join(t, lan, 2)
		done := make(chan string, 1)
		go func() {
			buf := make([]byte, 64)
			p, err := eps[1].Receive(buf)
			if err != nil {
				done <- err.Error()
				return
			}
			done <- string(buf[:p.N])
		}()
		synctest.Wait()
		select {
		case got := <-done:
			t.Fatalf("Receive returned %q before anything was sent", got)
		default:
		}
		require.NoError(t, eps[0].Send([]byte("wake")))
		synctest.Wait()
		select {
		case got := <-done:
			assert.Equal(t, "wake", got)
		default:
			t.Fatal("Receive still blocked after Send")
		}
	})
}

func TestCloseUnblocksPendingReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN(t, mem.Config{})
		e := lan.Join()
		done := make(chan error, 1)
		go func() {
			_, err := e.Receive(make([]byte, 64))
			done <- err
		}()
		synctest.Wait() // Receive is now certainly waiting.
		require.Empty(t, done)
		require.NoError(t, e.Close())
		synctest.Wait()
		select {
		case err := <-done:
			assert.ErrorIs(t, err, transport.ErrClosed)
		default:
			t.Fatal("Receive still blocked after Close")
		}
	})
}

// Several goroutines receiving on one endpoint share its datagrams: each
// datagram goes to exactly one of them and none is stranded.
func TestConcurrentReceivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN(t, mem.Config{NoLoopback: true})
		eps := join(t, lan, 2)
		const receivers, n = 4, 200
		got := make(chan string, n)
		var wg sync.WaitGroup
		for range receivers {
			wg.Go(func() {
				buf := make([]byte, 16)
				for {
					p, err := eps[1].Receive(buf)
					if err != nil {
						return
					}
					got <- string(buf[:p.N])
				}
			})
		}
		synctest.Wait()
		for i := range n {
			require.NoError(t, eps[0].Send(fmt.Appendf(nil, "%d", i)))
		}
		synctest.Wait() // Every receiver is blocked again: the queue is empty.
		require.Len(t, got, n)
		require.Zero(t, queued(eps[1]))
		seen := make(map[string]bool)
		for range n {
			s := <-got
			require.False(t, seen[s], "%s received twice", s)
			seen[s] = true
		}
		require.NoError(t, eps[1].Close())
		wg.Wait()
	})
}

// Faults change while traffic flows: the race detector checks the locking.
func TestFaultsWhileTrafficFlows(t *testing.T) {
	lan := newLAN(t, mem.Config{QueueLen: 8})
	eps := join(t, lan, 4)
	var receivers, senders sync.WaitGroup
	for _, e := range eps {
		receivers.Go(func() {
			buf := make([]byte, 64)
			for {
				if _, err := e.Receive(buf); errors.Is(err, transport.ErrClosed) {
					return
				}
			}
		})
	}
	for i, e := range eps {
		senders.Go(func() {
			for j := range 300 {
				if j%2 == 0 {
					assert.NoError(t, e.Send([]byte("m")))
				} else {
					assert.NoError(t, e.SendTo([]byte("u"), eps[(i+1)%len(eps)].Addr()))
				}
				if j%50 == 0 {
					_ = e.Stats()
				}
			}
		})
	}
	senders.Go(func() {
		for j := range 300 {
			lan.SetLoss(float64(j%3) / 4)
			lan.SetLinkLoss(eps[0], eps[1], float64(j%2))
			if j%2 == 0 {
				lan.Partition(eps[:2], eps[2:])
			} else {
				lan.Heal()
			}
			eps[j%4].SetDown(j%5 == 0)
			_ = lan.Stats()
		}
	})
	senders.Wait()
	for _, e := range eps {
		require.NoError(t, e.Close())
	}
	receivers.Wait()
	s := lan.Stats()
	assert.Equal(t, uint64(4*300), s.Sent)
	assert.Equal(t, uint64(4*150*4+4*150), s.Delivered+s.Lost+s.Partitioned+s.Down+s.QueueFull)
}

func TestErrorsWrapSentinels(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	e := lan.Join()
	require.NoError(t, e.Close())
	err := e.Send(nil)
	assert.True(t, errors.Is(err, transport.ErrClosed))
	assert.Contains(t, err.Error(), e.Addr().String())
}

func TestLogsDrops(t *testing.T) {
	var out bytes.Buffer
	lan := newLAN(t, mem.Config{
		NoLoopback: true,
		Logger:     hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace}),
	})
	eps := join(t, lan, 2)
	lan.Partition([]*mem.Endpoint{eps[0]})
	require.NoError(t, eps[0].Send([]byte("x")))
	require.NoError(t, eps[0].SendTo([]byte("x"), netip.MustParseAddrPort("192.0.2.1:1")))
	log := out.String()
	assert.Contains(t, log, "endpoint joined: addr=198.18.0.2:7946")
	assert.Contains(t, log, "datagram dropped: from=198.18.0.1:7946 to=198.18.0.2:7946 reason=partition")
	assert.Contains(t, log, "datagram dropped: from=198.18.0.1:7946 to=192.0.2.1:1 reason=\"unknown destination\"")
	require.NoError(t, eps[1].Close())
	assert.Contains(t, out.String(), "endpoint left: addr=198.18.0.2:7946")
}

// next receives the next queued packet, which must be there already.
func next(t *testing.T, e *mem.Endpoint, what string) (string, transport.Packet) {
	t.Helper()
	done := make(chan struct{})
	var (
		p   transport.Packet
		err error
		buf = make([]byte, mem.MaxUDP)
	)
	go func() {
		defer close(done)
		p, err = e.Receive(buf)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = e.Close() // unblocks the Receive
		<-done
		t.Fatalf("%v: nothing queued while waiting for %s", e, what)
	}
	require.NoError(t, err)
	return string(buf[:p.N]), p
}

func TestRefusals(t *testing.T) {
	lan := newLAN(t, mem.Config{Refusals: true})
	eps := join(t, lan, 3)
	a := eps[0]
	closed := eps[2].Addr()
	require.NoError(t, eps[2].Close())
	assert.True(t, a.ReportsRefusals())
	assert.True(t, a.UnicastIsUnique())

	never := netip.MustParseAddrPort("198.18.0.200:7946")
	for _, dst := range []netip.AddrPort{closed, never, netip.AddrPortFrom(netip.AddrFrom16(closed.Addr().As16()), closed.Port())} {
		require.NoError(t, a.SendTo([]byte("anyone?"), dst), "%v", dst)
		_, p := next(t, a, "the refusal of "+dst.String())
		assert.Equal(t, transport.Packet{Refused: true, Src: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())}, p)
	}
	assert.Equal(t, uint64(3), a.Stats().Refused)
	assert.Equal(t, uint64(3), a.Stats().Unknown)

	// An open endpoint receives the datagram; the sender gets no refusal
	// (the loopback copy of the marker, sent after, comes first).
	require.NoError(t, a.SendTo([]byte("hello"), eps[1].Addr()))
	got, _ := recv(t, eps[1])
	assert.Equal(t, "hello", got)
	require.NoError(t, a.Send([]byte("marker")))
	got, p := next(t, a, "the marker")
	assert.Equal(t, "marker", got)
	assert.False(t, p.Refused)

	// A sender that is down sends nothing, and nothing is refused.
	a.SetDown(true)
	require.NoError(t, a.SendTo([]byte("anyone?"), closed))
	a.SetDown(false)
	require.NoError(t, a.Send([]byte("marker")))
	got, _ = next(t, a, "the marker")
	assert.Equal(t, "marker", got)
	assert.Equal(t, uint64(3), lan.Stats().Refused)
}

// Without Config.Refusals, nothing changes: a datagram to a closed endpoint
// vanishes.
func TestNoRefusalsByDefault(t *testing.T) {
	lan := newLAN(t, mem.Config{})
	eps := join(t, lan, 2)
	a := eps[0]
	closed := eps[1].Addr()
	require.NoError(t, eps[1].Close())
	assert.False(t, a.ReportsRefusals())
	require.NoError(t, a.SendTo([]byte("anyone?"), closed))
	require.NoError(t, a.Send([]byte("marker")))
	got, p := next(t, a, "the marker")
	assert.Equal(t, "marker", got)
	assert.False(t, p.Refused)
	assert.Zero(t, a.Stats().Refused)
}

// A refusal works inside a synctest bubble at once: it is queued when
// SendTo returns.
func TestRefusalInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN(t, mem.Config{Refusals: true})
		a, b := lan.Join(), lan.Join()
		defer a.Close()
		dst := b.Addr()
		require.NoError(t, b.Close())
		start := time.Now()
		require.NoError(t, a.SendTo([]byte("anyone?"), dst))
		p, err := a.Receive(make([]byte, 64))
		require.NoError(t, err)
		assert.True(t, p.Refused)
		assert.Equal(t, dst, p.Src)
		assert.Zero(t, time.Since(start))
	})
}
