package transporttest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/transport"
)

// MakeLAN returns n transports that are members of one group on one
// network: a Send from any reaches every one (including, possibly, the
// sender itself: the suite tolerates both), and a SendTo to the Src of a
// received packet reaches that member. The suite closes them; MakeLAN
// registers any other cleanup with t.Cleanup.
type MakeLAN func(t *testing.T, n int) []transport.Transport

// timeout bounds every wait of the suite: for a datagram, for Receive to
// return after Close, for sending goroutines to finish.
const timeout = 5 * time.Second

// tooBig is the size of the datagram every transport must refuse: more than
// any UDP datagram can hold.
const tooBig = 70000

// recvBufLen is the receive buffer used wherever truncation is not tested:
// room for any datagram.
const recvBufLen = 1 << 16

// Run runs the conformance suite against the transports mk makes, each
// check in its own subtest with its own transports.
func Run(t *testing.T, mk MakeLAN) {
	t.Helper()
	tests := []struct {
		name string
		n    int
		run  func(*lan)
	}{
		{"Multicast", 3, testMulticast},
		{"Unicast", 3, testUnicast},
		{"SenderBufferReuse", 2, testSenderBufferReuse},
		{"Truncated", 2, testTruncated},
		{"MaxDatagram", 2, testMaxDatagram},
		{"EmptyDatagram", 2, testEmptyDatagram},
		{"Close", 2, testClose},
		{"CloseWhileBusy", 2, testCloseWhileBusy},
		{"ConcurrentSend", 2, testConcurrentSend},
		{"Refusals", 2, testRefusals},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(newLAN(t, mk, tt.n))
		})
	}
}

// lan is one subtest's set of transports, with the tag its datagrams carry
// and the goroutines it started.
type lan struct {
	t   *testing.T
	tr  []transport.Transport
	tag [8]byte
	wg  sync.WaitGroup

	// refusals is set once the subtest has sent to a closed member:
	// until then, a Packet with Refused set fails it.
	refusals bool
}

func newLAN(t *testing.T, mk MakeLAN, n int) *lan {
	t.Helper()
	trs := mk(t, n)
	require.Len(t, trs, n, "MakeLAN returned the wrong number of transports")
	l := &lan{t: t, tr: trs}
	binary.BigEndian.PutUint64(l.tag[:], rand.Uint64())
	t.Cleanup(func() {
		for i, tr := range trs {
			assert.NoError(t, tr.Close(), "closing member %d", i)
		}
		if !waitGroup(&l.wg, timeout) {
			t.Errorf("goroutines of the suite still running %v after every member was closed: "+
				"Close did not unblock Receive, or Send blocks", timeout)
		}
	})
	return l
}

// waitGroup waits for wg, for at most d. It reports whether wg finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return waitChan(done, d)
}

// waitChan waits for ch to be closed, for at most d. It reports whether it
// was.
func waitChan(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// spawn runs f in a goroutine the cleanup waits for, and returns a channel
// closed when f returns.
func (l *lan) spawn(f func()) <-chan struct{} {
	done := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(done)
		f()
	}()
	return done
}

// kind says what a datagram of the suite is for.
type kind byte

const (
	kindData kind = iota + 1
	kindHello
	kindMarker
	kindUnicast
	kindReply
	kindTooLarge
)

func (k kind) String() string {
	switch k {
	case kindData:
		return "data"
	case kindHello:
		return "hello"
	case kindMarker:
		return "marker"
	case kindUnicast:
		return "unicast"
	case kindReply:
		return "reply"
	case kindTooLarge:
		return "too-large"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// key identifies a datagram of the suite.
type key struct {
	from int
	kind kind
	seq  uint32
}

func (k key) String() string { return fmt.Sprintf("%v #%d from member %d", k.kind, k.seq, k.from) }

// The header of a datagram of the suite: magic, the subtest's tag, the
// sender, the kind, the sequence number and the datagram's length.
const (
	offTag    = 4
	offFrom   = offTag + 8
	offKind   = offFrom + 2
	offSeq    = offKind + 1
	offLen    = offSeq + 4
	headerLen = offLen + 4
)

var magic = []byte("pirT")

// payload returns a datagram of size bytes (at least headerLen) for k.
func (l *lan) payload(k key, size int) []byte {
	b := make([]byte, size)
	l.fill(b, k)
	return b
}

// fill writes the datagram for k into all of b.
func (l *lan) fill(b []byte, k key) {
	copy(b, magic)
	copy(b[offTag:], l.tag[:])
	binary.BigEndian.PutUint16(b[offFrom:], uint16(k.from))
	b[offKind] = byte(k.kind)
	binary.BigEndian.PutUint32(b[offSeq:], k.seq)
	binary.BigEndian.PutUint32(b[offLen:], uint32(len(b)))
	for i := headerLen; i < len(b); i++ {
		b[i] = filler(k, i)
	}
}

// filler is the byte at offset i of the datagram for k: different for
// every offset within 256 bytes and for neighbouring keys.
func filler(k key, i int) byte {
	return byte(i) ^ byte(i>>8)*7 ^ byte(k.seq)*13 ^ byte(k.seq>>8)*3 ^ byte(k.from)*31 ^ byte(k.kind)*101
}

// parse identifies a received datagram. ours is false for a datagram the
// subtest did not send. An error reports a datagram of the subtest that
// was cut, torn or overwritten.
func (l *lan) parse(b []byte) (k key, ours bool, err error) {
	if len(b) < offFrom || !bytes.Equal(b[:offTag], magic) || !bytes.Equal(b[offTag:offFrom], l.tag[:]) {
		return key{}, false, nil
	}
	if len(b) < headerLen {
		return key{}, true, fmt.Errorf("%d-byte datagram is shorter than the suite's %d-byte header", len(b), headerLen)
	}
	k = key{
		from: int(binary.BigEndian.Uint16(b[offFrom:])),
		kind: kind(b[offKind]),
		seq:  binary.BigEndian.Uint32(b[offSeq:]),
	}
	if sent := binary.BigEndian.Uint32(b[offLen:]); int(sent) != len(b) {
		return k, true, fmt.Errorf("%v: received %d bytes of a %d-byte datagram", k, len(b), sent)
	}
	for i := headerLen; i < len(b); i++ {
		if b[i] != filler(k, i) {
			return k, true, fmt.Errorf("%v: byte %d of %d is %#02x, sent %#02x", k, i, len(b), b[i], filler(k, i))
		}
	}
	return k, true, nil
}

// received is the outcome of one Receive.
type received struct {
	p    transport.Packet
	data []byte // a copy of the datagram
	err  error
}

// receiveAsync calls Receive once on member m with a buffer of size bytes,
// in a goroutine, and returns a channel that gets the outcome.
func (l *lan) receiveAsync(m, size int) <-chan received {
	ch := make(chan received, 1)
	tr := l.tr[m]
	l.spawn(func() {
		buf := make([]byte, size)
		p, err := tr.Receive(buf)
		r := received{p: p, err: err}
		if err == nil && p.N >= 0 && p.N <= len(buf) {
			r.data = bytes.Clone(buf[:p.N])
		}
		ch <- r
	})
	return ch
}

// receive calls Receive once on member m with a buffer of size bytes and
// returns the outcome. It fails the test if Receive does not return within
// timeout, or returns a Packet that does not describe what it copied.
func (l *lan) receive(m, size int, waitingFor string) received {
	l.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-l.receiveAsync(m, size):
		if r.err == nil {
			require.Falsef(l.t, r.p.Refused && !l.refusals,
				"member %d: Receive reported a refusal by %v, though nothing was sent to a closed member", m, r.p.Src)
			require.Truef(l.t, r.p.N >= 0 && r.p.N <= size, "member %d: Receive reported N=%d for a %d-byte buffer", m, r.p.N, size)
			require.Truef(l.t, r.p.Src.IsValid() && r.p.Src.Port() != 0, "member %d: Receive reported no source (Src=%v)", m, r.p.Src)
		}
		return r
	case <-timer.C:
		l.t.Fatalf("member %d: nothing received within %v while waiting for %s", m, timeout, waitingFor)
		return received{}
	}
}

// next receives on member m until a datagram of the subtest arrives that m
// did not send itself, checks that it is intact, and returns it.
func (l *lan) next(m int, waitingFor string) (key, received) {
	l.t.Helper()
	for {
		r := l.receive(m, recvBufLen, waitingFor)
		require.NoErrorf(l.t, r.err, "member %d: Receive while waiting for %s", m, waitingFor)
		k, ours, err := l.parse(r.data)
		require.NoErrorf(l.t, err, "member %d: datagram from %v", m, r.p.Src)
		switch {
		case !ours:
			l.t.Logf("member %d: ignoring a %d-byte datagram from %v that this subtest did not send", m, r.p.N, r.p.Src)
		case k.from == m:
			// Its own multicast, looped back.
		default:
			return k, r
		}
	}
}

// await receives on member m until every datagram in want has arrived, in
// any order, and returns the packets that carried them. It fails the test
// if a datagram for which forbid reports true arrives first. Other
// datagrams, such as duplicates of earlier ones, are ignored.
func (l *lan) await(m int, want []key, forbid func(key) bool) map[key]transport.Packet {
	l.t.Helper()
	missing := make(map[key]bool, len(want))
	for _, k := range want {
		missing[k] = true
	}
	got := make(map[key]transport.Packet, len(want))
	for len(missing) > 0 {
		k, r := l.next(m, describe(missing))
		if forbid != nil && forbid(k) {
			l.t.Fatalf("member %d received %v (source %v), which was not meant for it", m, k, r.p.Src)
		}
		if missing[k] {
			delete(missing, k)
			got[k] = r.p
			continue
		}
		if _, dup := got[k]; !dup {
			l.t.Logf("member %d: ignoring %v", m, k)
		}
	}
	return got
}

// describe lists the keys of a set, for a failure message.
func describe(keys map[key]bool) string {
	var b bytes.Buffer
	for k := range keys {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String())
	}
	return b.String()
}

// hello makes member from multicast a hello and member to receive it, and
// returns the source to reach from by.
func (l *lan) hello(from, to int) netip.AddrPort {
	l.t.Helper()
	k := key{from: from, kind: kindHello}
	require.NoError(l.t, l.tr[from].Send(l.payload(k, 64)), "member %d: Send", from)
	return l.await(to, []key{k}, nil)[k].Src
}

// testMulticast: every member multicasts; every member receives every other
// member's datagram intact.
func testMulticast(l *lan) {
	n := len(l.tr)
	for i := range n {
		require.NoError(l.t, l.tr[i].Send(l.payload(key{from: i, kind: kindData}, 100+50*i)), "member %d: Send", i)
	}
	for m := range n {
		var want []key
		for i := range n {
			if i != m {
				want = append(want, key{from: i, kind: kindData})
			}
		}
		for k, p := range l.await(m, want, nil) {
			l.t.Logf("member %d received %v, source %v, interface %d", m, k, p.Src, p.IfIndex)
		}
	}
}

// testUnicast: a SendTo to the source of a received packet reaches that
// member and no other.
func testUnicast(l *lan) {
	src1 := l.hello(1, 0)

	uni := key{from: 0, kind: kindUnicast}
	mark := key{from: 0, kind: kindMarker}
	require.NoError(l.t, l.tr[0].SendTo(l.payload(uni, 80), src1), "member 0: SendTo %v", src1)
	require.NoError(l.t, l.tr[0].Send(l.payload(mark, 80)), "member 0: Send")

	got := l.await(1, []key{uni, mark}, nil)
	// Member 2 gets the marker, sent after the unicast, and not the unicast.
	l.await(2, []key{mark}, func(k key) bool { return k.kind == kindUnicast })

	// Replies to the source of the unicast and of the multicast both reach
	// member 0, and only member 0.
	reply0 := key{from: 1, kind: kindReply, seq: 0}
	reply1 := key{from: 1, kind: kindReply, seq: 1}
	mark1 := key{from: 1, kind: kindMarker}
	require.NoError(l.t, l.tr[1].SendTo(l.payload(reply0, 90), got[uni].Src), "member 1: SendTo %v", got[uni].Src)
	require.NoError(l.t, l.tr[1].SendTo(l.payload(reply1, 90), got[mark].Src), "member 1: SendTo %v", got[mark].Src)
	require.NoError(l.t, l.tr[1].Send(l.payload(mark1, 90)), "member 1: Send")
	l.await(0, []key{reply0, reply1, mark1}, nil)
	l.await(2, []key{mark1}, func(k key) bool { return k.kind == kindReply })
}

// testSenderBufferReuse: the sender overwrites its buffer as soon as Send
// and SendTo return; receivers get what was sent.
func testSenderBufferReuse(l *lan) {
	src1 := l.hello(1, 0)
	b := make([]byte, 300)
	k0 := key{from: 0, kind: kindData, seq: 0}
	k1 := key{from: 0, kind: kindData, seq: 1}
	l.fill(b, k0)
	require.NoError(l.t, l.tr[0].Send(b), "member 0: Send")
	overwrite(b, 0xAA)
	l.fill(b, k1)
	require.NoError(l.t, l.tr[0].SendTo(b, src1), "member 0: SendTo")
	overwrite(b, 0x55)
	l.await(1, []key{k0, k1}, nil)
}

func overwrite(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// testTruncated: a datagram one byte longer than the receive buffer is
// refused with ErrTruncated, and the next one, which fits exactly, arrives
// whole.
func testTruncated(l *lan) {
	const bufLen = 299
	big := key{from: 0, kind: kindData, seq: 0}
	fits := key{from: 0, kind: kindData, seq: 1}
	require.NoError(l.t, l.tr[0].Send(l.payload(big, bufLen+1)), "member 0: Send")
	require.NoError(l.t, l.tr[0].Send(l.payload(fits, bufLen)), "member 0: Send")

	truncated := 0
	for {
		r := l.receive(1, bufLen, "the datagram that fits")
		if r.err != nil {
			require.ErrorIsf(l.t, r.err, transport.ErrTruncated,
				"member 1: receiving %d bytes into a %d-byte buffer", bufLen+1, bufLen)
			truncated++
			require.LessOrEqual(l.t, truncated, 10, "member 1: Receive keeps failing")
			continue
		}
		k, ours, err := l.parse(r.data)
		require.NoError(l.t, err, "member 1: a datagram was cut to fit the buffer instead of refused")
		if !ours || k.from == 1 {
			continue
		}
		require.Equal(l.t, fits, k, "member 1: received the wrong datagram")
		break
	}
	require.Positive(l.t, truncated, "member 1: a datagram longer than the buffer did not make Receive fail")
}

// testMaxDatagram: transport.MaxDatagram bytes are carried intact; 70000
// bytes are refused by the sender and never partly delivered.
func testMaxDatagram(l *lan) {
	src1 := l.hello(1, 0)
	full := key{from: 0, kind: kindData}
	require.NoError(l.t, l.tr[0].Send(l.payload(full, transport.MaxDatagram)), "member 0: Send of %d bytes", transport.MaxDatagram)
	p := l.await(1, []key{full}, nil)[full]
	require.Equal(l.t, transport.MaxDatagram, p.N)

	huge := l.payload(key{from: 0, kind: kindTooLarge}, tooBig)
	err := l.tr[0].Send(huge)
	require.Errorf(l.t, err, "member 0: Send of %d bytes succeeded", tooBig)
	l.t.Logf("Send of %d bytes: %v", tooBig, err)
	err = l.tr[0].SendTo(huge, src1)
	require.Errorf(l.t, err, "member 0: SendTo of %d bytes succeeded", tooBig)
	l.t.Logf("SendTo of %d bytes: %v", tooBig, err)

	mark := key{from: 0, kind: kindMarker}
	require.NoError(l.t, l.tr[0].Send(l.payload(mark, 64)), "member 0: Send")
	l.await(1, []key{mark}, func(k key) bool { return k.kind == kindTooLarge })
}

// testEmptyDatagram: a zero-length datagram is either refused by Send or
// delivered with N == 0. UDP delivers it.
func testEmptyDatagram(l *lan) {
	if err := l.tr[0].Send(nil); err != nil {
		l.t.Logf("Send of an empty datagram: %v", err)
		return
	}
	mark := key{from: 0, kind: kindMarker}
	require.NoError(l.t, l.tr[0].Send(l.payload(mark, 64)), "member 0: Send")
	empty := false
	for !empty {
		r := l.receive(1, recvBufLen, "the empty datagram")
		require.NoError(l.t, r.err, "member 1: Receive")
		if r.p.N == 0 {
			empty = true
			continue
		}
		k, ours, err := l.parse(r.data)
		require.NoError(l.t, err, "member 1: datagram from %v", r.p.Src)
		require.Falsef(l.t, ours && k == mark, "member 1: received the marker but not the empty datagram sent before it")
	}
}

// testClose: Close unblocks Receive, is idempotent, and every later call
// fails with ErrClosed.
func testClose(l *lan) {
	src1 := l.hello(1, 0)
	tr := l.tr[0]

	// Receive until an error, so that a duplicate of the hello does not
	// stand in for the error Close must cause.
	var recvErr error
	done := l.spawn(func() {
		buf := make([]byte, recvBufLen)
		for recvErr == nil {
			_, recvErr = tr.Receive(buf)
		}
	})
	require.NoError(l.t, tr.Close(), "Close")
	if !waitChan(done, timeout) {
		l.t.Fatalf("Receive did not return within %v of Close", timeout)
	}
	requireClosed(l.t, recvErr, "Receive pending during Close")

	require.NoError(l.t, tr.Close(), "second Close")
	requireClosed(l.t, tr.Send(l.payload(key{kind: kindData}, 64)), "Send after Close")
	requireClosed(l.t, tr.SendTo(l.payload(key{kind: kindData}, 64), src1), "SendTo after Close")
	requireClosed(l.t, l.receive(0, recvBufLen, "an error").err, "Receive after Close")
}

func requireClosed(t *testing.T, err error, what string) {
	t.Helper()
	require.ErrorIsf(t, err, transport.ErrClosed, "%s", what)
	require.ErrorIsf(t, err, net.ErrClosed, "%s", what)
}

// testCloseWhileBusy: Close while goroutines send and receive makes each of
// them fail with ErrClosed.
func testCloseWhileBusy(l *lan) {
	src0 := l.hello(0, 1)
	tr := l.tr[1]
	stop := make(chan struct{})
	defer close(stop)
	errStopped := errors.New("still succeeding after Close")

	started := make(chan struct{}, 3)
	errs := make([]error, 3)
	sender := func(i int, send func([]byte) error) func() {
		return func() {
			b := l.payload(key{from: 1, kind: kindData, seq: uint32(i)}, 64)
			for n := 0; ; n++ {
				errs[i] = send(b)
				if n == 0 {
					started <- struct{}{}
				}
				if errs[i] != nil {
					return
				}
				select {
				case <-stop:
					errs[i] = errStopped
					return
				default:
				}
			}
		}
	}
	dones := []<-chan struct{}{
		l.spawn(sender(0, tr.Send)),
		l.spawn(sender(1, func(b []byte) error { return tr.SendTo(b, src0) })),
		l.spawn(func() {
			started <- struct{}{}
			buf := make([]byte, recvBufLen)
			for errs[2] == nil {
				_, errs[2] = tr.Receive(buf)
			}
		}),
	}
	for range 3 {
		timer := time.NewTimer(timeout)
		select {
		case <-started:
			timer.Stop()
		case <-timer.C:
			l.t.Fatalf("goroutines did not start within %v", timeout)
		}
	}

	require.NoError(l.t, tr.Close(), "Close")
	for i, done := range dones {
		if !waitChan(done, timeout) {
			l.t.Fatalf("goroutine %d still sending or receiving %v after Close", i, timeout)
		}
	}
	for i, what := range []string{"Send", "SendTo", "Receive"} {
		requireClosed(l.t, errs[i], what+" racing with Close")
	}
}

// testConcurrentSend: goroutines Send and SendTo at once from one member
// while another goroutine receives on another; every datagram arrives
// intact.
func testConcurrentSend(l *lan) {
	const senders, perSender = 4, 25
	src1 := l.hello(1, 0)
	tr := l.tr[0]

	// The receiver, started first so that it receives while they send.
	// Room for every datagram twice, as a dual-stack transport may deliver.
	results := make(chan received, 2*senders*perSender+16)
	l.spawn(func() {
		buf := make([]byte, recvBufLen)
		for range cap(results) {
			p, err := l.tr[1].Receive(buf)
			r := received{p: p, err: err}
			if err == nil && p.N >= 0 && p.N <= len(buf) {
				r.data = bytes.Clone(buf[:p.N])
			}
			results <- r
			if err != nil {
				return
			}
		}
	})

	errs := make([]error, senders)
	var dones []<-chan struct{}
	for g := range senders {
		dones = append(dones, l.spawn(func() {
			b := make([]byte, 0, 600)
			for i := range perSender {
				k := key{from: 0, kind: kindData, seq: uint32(g*1000 + i)}
				b = b[:headerLen+(g*131+i*37)%500]
				l.fill(b, k)
				if g%2 == 0 {
					errs[g] = tr.Send(b)
				} else {
					errs[g] = tr.SendTo(b, src1)
				}
				if errs[g] != nil {
					return
				}
			}
		}))
	}
	for g, done := range dones {
		require.Truef(l.t, waitChan(done, timeout), "sender %d did not finish within %v", g, timeout)
		require.NoErrorf(l.t, errs[g], "sender %d", g)
	}

	missing := make(map[key]bool)
	for g := range senders {
		for i := range perSender {
			missing[key{from: 0, kind: kindData, seq: uint32(g*1000 + i)}] = true
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(missing) > 0 {
		select {
		case r := <-results:
			require.NoError(l.t, r.err, "member 1: Receive")
			k, ours, err := l.parse(r.data)
			require.NoError(l.t, err, "member 1: a datagram sent concurrently with others arrived damaged")
			if ours {
				delete(missing, k)
			}
		case <-timer.C:
			l.t.Fatalf("member 1: %d of %d datagrams missing after %v: %s",
				len(missing), senders*perSender, timeout, describe(missing))
		}
	}
}

// testRefusals, for transports that report refusals (a
// transport.RefusalReporter whose ReportsRefusals is true; skipped for
// others): a unicast to a member that listens is answered and never
// refused; once that member is closed, a unicast to its address comes back
// as a Packet with Refused set, N 0 and Src that address, not as an error.
func testRefusals(l *lan) {
	for i, tr := range l.tr {
		if rr, ok := tr.(transport.RefusalReporter); !ok || !rr.ReportsRefusals() {
			l.t.Skipf("member %d (%T) does not report refusals", i, tr)
		}
	}
	src1 := l.hello(1, 0)

	// Open: answered, and the answer is the first thing member 0 gets
	// (receive fails on a refusal until l.refusals is set).
	uni := key{from: 0, kind: kindUnicast}
	require.NoError(l.t, l.tr[0].SendTo(l.payload(uni, 64), src1), "member 0: SendTo %v", src1)
	got := l.await(1, []key{uni}, nil)
	reply := key{from: 1, kind: kindReply}
	require.NoError(l.t, l.tr[1].SendTo(l.payload(reply, 64), got[uni].Src), "member 1: SendTo %v", got[uni].Src)
	l.await(0, []key{reply}, nil)

	// Closed: refused.
	require.NoError(l.t, l.tr[1].Close(), "closing member 1")
	l.refusals = true
	require.NoError(l.t, l.tr[0].SendTo(l.payload(key{from: 0, kind: kindData}, 64), src1), "member 0: SendTo %v", src1)
	for {
		r := l.receive(0, recvBufLen, "the refusal of a unicast to closed member 1 at "+src1.String())
		require.NoError(l.t, r.err, "member 0: a refusal must be a packet, not a Receive error")
		if !r.p.Refused {
			k, ours, err := l.parse(r.data)
			require.NoError(l.t, err)
			l.t.Logf("member 0: ignoring %v (ours: %v) from %v", k, ours, r.p.Src)
			continue
		}
		require.Equal(l.t, src1, r.p.Src, "member 0: the refusal names the closed member's address")
		require.Zero(l.t, r.p.N, "member 0: a refusal carries no bytes")
		return
	}
}
