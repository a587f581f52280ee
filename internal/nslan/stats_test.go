package nslan

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLinkStats(t *testing.T) {
	out := `[{"ifindex":2,"ifname":"br0","stats64":{"rx":{"bytes":1,"packets":2},"tx":{"bytes":3,"packets":4}}},
	{"ifindex":3,"ifname":"sw-h0","link":"eth0","stats64":{"rx":{"bytes":1000,"packets":10,"errors":0},"tx":{"bytes":5000,"packets":50,"errors":0}}}]`
	got, err := parseLinkStats([]byte(out))
	require.NoError(t, err)
	assert.Equal(t, map[string]Counters{
		"br0":   {TxPackets: 2, TxBytes: 1, RxPackets: 4, RxBytes: 3},
		"sw-h0": {TxPackets: 10, TxBytes: 1000, RxPackets: 50, RxBytes: 5000},
	}, got, "what a port received, its host sent")

	for _, bad := range []string{
		``,
		`{}`,
		`[{"ifname":"sw-h0"}]`,
		`[{"ifname":"sw-h0","stats64":{"rx":{"bytes":1},"tx":{"bytes":3,"packets":4}}}]`,
		`[{"stats64":{"rx":{"bytes":1,"packets":2},"tx":{"bytes":3,"packets":4}}}]`,
		`[{"ifname":"sw-h0","stats64":{"rx":{"bytes":-1,"packets":2},"tx":{"bytes":3,"packets":4}}}]`,
	} {
		_, err := parseLinkStats([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestCountersSub(t *testing.T) {
	at := time.Unix(100, 0)
	a := Counters{TxPackets: 10, TxBytes: 1000, RxPackets: 5, RxBytes: 500, At: at}
	b := Counters{TxPackets: 4, TxBytes: 400, RxPackets: 6, RxBytes: 100, At: time.Unix(90, 0)}
	assert.Equal(t, Counters{TxPackets: 6, TxBytes: 600, RxPackets: 0, RxBytes: 400, At: at}, a.Sub(b))
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50.
	stat := "1234 (pir (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615\n"
	cpu, err := parseStatCPU([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, cpu)

	for _, bad := range []string{"", "1234 pir S 1", "1234 (pir) S 1 2 3", "1234 (pir) S 1 1234 1234 0 -1 4194560 100 0 0 0 x 50 0"} {
		_, err := parseStatCPU([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tpir\nVmPeak:\t  800000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	rss, err := parseStatusRSS([]byte(status))
	require.NoError(t, err)
	assert.Equal(t, uint64(12345*1024), rss)

	for _, bad := range []string{"", "Name:\tkthreadd\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		_, err := parseStatusRSS([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}
}

func TestProcStats(t *testing.T) {
	l := newLab(t, Config{Hosts: 1})
	p := startEcho(t, l.Host(0))
	s, err := p.Stats()
	require.NoError(t, err)
	assert.Greater(t, s.RSS, uint64(1<<20), "the echo helper is a Go test binary")
	assert.WithinDuration(t, time.Now(), s.At, 10*time.Second)

	require.NoError(t, p.Kill())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Error(t, p.Wait(ctx), "killed")
	_, err = p.Stats()
	require.ErrorIs(t, err, ErrExited)
}

// ifaceCounters reads eth0's own counters inside h's namespace.
func ifaceCounters(t *testing.T, h *Host) Counters {
	t.Helper()
	var links []struct {
		Stats struct {
			Rx struct{ Bytes, Packets uint64 } `json:"rx"`
			Tx struct{ Bytes, Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	require.NoError(t, json.Unmarshal([]byte(inNS(t, h, "ip", "-s", "-j", "link", "show", "dev", "eth0")), &links))
	require.Len(t, links, 1)
	s := links[0].Stats
	return Counters{TxPackets: s.Tx.Packets, TxBytes: s.Tx.Bytes, RxPackets: s.Rx.Packets, RxBytes: s.Rx.Bytes}
}

func TestCounters(t *testing.T) {
	// IPv4 only: no IPv6 neighbour discovery or MLD adds frames of its own.
	l := newLab(t, Config{Hosts: 3, IPv4: true})
	h0, h1 := l.Host(0), l.Host(1)
	before, err := l.AllCounters()
	require.NoError(t, err)
	require.Len(t, before, 3)

	// h0 sends to a multicast group for a second: every host receives,
	// nobody answers.
	err = ping(t, h0, netip.MustParseAddr("224.0.0.1"), time.Second)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, exitTimeout, exit.ExitCode(), "%v", err)

	after, err := l.AllCounters()
	require.NoError(t, err)
	sent, got := after[0].Sub(before[0]), after[1].Sub(before[1])
	t.Logf("h0: %+v; h1: %+v", sent, got)
	assert.GreaterOrEqual(t, sent.TxPackets, uint64(10), "one datagram every 50 ms for 1 s")
	assert.GreaterOrEqual(t, sent.TxBytes, sent.TxPackets*46, "14 + 20 + 8 + 4 bytes each")
	assert.Less(t, sent.RxPackets, sent.TxPackets/2, "nobody answers")
	assert.GreaterOrEqual(t, got.RxPackets, sent.TxPackets, "the switch floods multicast")
	assert.Less(t, got.TxPackets, sent.TxPackets/2, "h1 only listens")
	assert.False(t, after[0].At.Before(before[0].At))

	// The port's view agrees with the host's own eth0, counted on both
	// sides of the reading.
	for _, h := range []*Host{h0, h1} {
		own0 := ifaceCounters(t, h)
		c, err := l.Counters(h)
		require.NoError(t, err)
		own1 := ifaceCounters(t, h)
		for _, f := range []struct {
			name         string
			lo, port, hi uint64
		}{
			{"tx packets", own0.TxPackets, c.TxPackets, own1.TxPackets},
			{"tx bytes", own0.TxBytes, c.TxBytes, own1.TxBytes},
			{"rx packets", own0.RxPackets, c.RxPackets, own1.RxPackets},
			{"rx bytes", own0.RxBytes, c.RxBytes, own1.RxBytes},
		} {
			assert.GreaterOrEqual(t, f.port, f.lo, "%s %s", h.Name, f.name)
			assert.LessOrEqual(t, f.port, f.hi, "%s %s", h.Name, f.name)
		}
	}

	require.NoError(t, l.Close())
	_, err = l.AllCounters()
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Counters(h0)
	require.ErrorIs(t, err, ErrClosed)
}
