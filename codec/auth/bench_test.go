package auth_test

import (
	"errors"
	"testing"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
)

func BenchmarkEncode(b *testing.B) {
	c := newCodec(b, auth.Config{Keys: ring(b, keyA)})
	m := announce("4972084b-10a3-4d9d-8523-7e25b7e50141")
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = c.Encode(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/datagram")
}

// BenchmarkDecode decodes a stream of distinct datagrams from one sender,
// as a receiver does: each passes the tag, time and replay checks. The
// datagrams are made beforehand, in rounds, so that the encoding is not
// timed.
func BenchmarkDecode(b *testing.B) {
	clk := newClock()
	keys := ring(b, keyA)
	tx := newCodec(b, auth.Config{Keys: keys, Now: clk.Now})
	rx := newCodec(b, auth.Config{Keys: keys, Now: clk.Now})
	m := announce("4972084b-10a3-4d9d-8523-7e25b7e50141")
	const round = 4096
	datagrams := make([][]byte, round)
	fill := func() {
		for i := range datagrams {
			datagrams[i] = encode(b, tx, m)
		}
	}
	fill()
	var got codec.Message
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == round {
			b.StopTimer()
			fill()
			i = 0
			b.StartTimer()
		}
		if err := rx.Decode(datagrams[i], &got); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecodeForged is the cost of refusing a forgery: the tag check.
func BenchmarkDecodeForged(b *testing.B) {
	keys := ring(b, keyA)
	tx := newCodec(b, auth.Config{Keys: keys})
	rx := newCodec(b, auth.Config{Keys: keys})
	d := encode(b, tx, announce("4972084b-10a3-4d9d-8523-7e25b7e50141"))
	// Another base64url character: only the tag catches it.
	if d[len(d)/2] != 'A' {
		d[len(d)/2] = 'A'
	} else {
		d[len(d)/2] = 'B'
	}
	var got codec.Message
	b.ReportAllocs()
	for b.Loop() {
		if err := rx.Decode(d, &got); !errors.Is(err, auth.ErrBadTag) {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeUnauthenticated is the cost of refusing a plain pir
// datagram.
func BenchmarkDecodeUnauthenticated(b *testing.B) {
	rx := newCodec(b, auth.Config{Keys: ring(b, keyA)})
	d := []byte("web|4972084b-10a3-4d9d-8523-7e25b7e50141|tcp://198.18.0.2:37821|tcp://10.1.1.1:80")
	var got codec.Message
	b.ReportAllocs()
	for b.Loop() {
		if err := rx.Decode(d, &got); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkDecodeUnknownKey is the cost of refusing an envelope signed by
// a key the receiver does not hold.
func BenchmarkDecodeUnknownKey(b *testing.B) {
	tx := newCodec(b, auth.Config{Keys: ring(b, keyB)})
	rx := newCodec(b, auth.Config{Keys: ring(b, keyA)})
	d := encode(b, tx, announce("4972084b-10a3-4d9d-8523-7e25b7e50141"))
	var got codec.Message
	b.ReportAllocs()
	for b.Loop() {
		if err := rx.Decode(d, &got); !errors.Is(err, auth.ErrUnknownKey) {
			b.Fatal(err)
		}
	}
}
