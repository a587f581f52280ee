// Custom-prober teaches pir a new health-check scheme: redis://host:port is
// healthy when the server answers PING with +PONG. Members that advertise a
// redis:// health URI are then probed that way; tcp, udp and http keep
// working beside it.
//
//	go run ./examples/custom-prober
//
// The program starts a tiny PING/PONG server on 127.0.0.1, probes it, then
// makes it answer wrongly and probes again.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/healthcheck"
)

// redisPing probes a Redis-protocol server.
func redisPing(ctx context.Context, target *url.URL) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("%w: %q", healthcheck.ErrUnhealthy, line)
	}
	return nil
}

func main() {
	probers := healthcheck.NewRegistry() // tcp, udp, http
	probers.Register("redis", healthcheck.ProberFunc(redisPing))

	addr, healthy, stop := pongServer()
	defer stop()
	target := &url.URL{Scheme: "redis", Host: addr}

	for _, ok := range []bool{true, false} {
		healthy.Store(ok)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := probers.Probe(ctx, target)
		cancel()
		fmt.Printf("server healthy=%v: probe error=%v unhealthy=%v\n", ok, err, errors.Is(err, healthcheck.ErrUnhealthy))
	}

	// A Group uses the registry for every member it probes.
	cfg := discovery.Config{Name: "cache", Prober: probers /* , Transport: ..., Self: ... */}
	_ = cfg
}

// pongServer answers PING with +PONG, or -ERR while unhealthy.
func pongServer() (addr string, healthy *atomic.Bool, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	healthy = new(atomic.Bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				reply := "-ERR loading\r\n"
				if healthy.Load() {
					reply = "+PONG\r\n"
				}
				c.Write([]byte(reply))
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), healthy, func() { ln.Close(); <-done }
}
