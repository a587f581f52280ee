package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/healthcheck"
	"github.com/pirlan/pir/healthcheck/healthchecktest"
	"github.com/pirlan/pir/internal/netlab"
)

// The Conn's probers keep the prober contract (healthchecktest.Run),
// directly and through a Registry, each against a service another
// responder advertises on lo. For mdns:// the service is healthy while
// advertised: unhealthy and closed are its goodbye. For tcpconnect:// it
// is healthy while something listens on its port: unhealthy closes the
// listener (the service stays advertised), closed also says goodbye.
func TestMDNSProberConformance(t *testing.T) {
	netlab.Require(t)
	leakCheck(t)
	port := freePort(t)
	w := open(t, Config{Port: port, Network: "udp4", Service: "_http._tcp"})
	r := newResponder(t, port)
	r.legacyAnswers()
	var n atomic.Int32
	for _, scheme := range []string{SchemeAdvertised, SchemeTCPConnect} {
		reg := healthcheck.NewRegistry()
		reg.Register(scheme, w.Probers()[scheme])
		for _, p := range []struct {
			name   string
			prober healthcheck.Prober
		}{{"Direct", w.Probers()[scheme]}, {"Registry", reg}} {
			t.Run(scheme+"/"+p.name, func(t *testing.T) {
				healthchecktest.Run(t, p.prober, func(t *testing.T) healthchecktest.Server {
					s := &foundService{t: t, w: w, r: r, scheme: scheme, healthy: true,
						inst: fmt.Sprintf(`svc%d._http._tcp.local.`, n.Add(1))}
					s.start()
					t.Cleanup(func() { _ = s.Close() })
					return s
				})
			})
		}
	}
}

// foundService is a service another responder advertises, which w finds:
// a healthchecktest.Server for the Conn's probers.
type foundService struct {
	t      *testing.T
	w      *peer
	r      *responder
	scheme string
	inst   string

	mu         sync.Mutex // serialises changes, and the waits for w to see them
	port       uint16
	ln         net.Listener // tcpconnect: nil while unhealthy
	healthy    bool
	advertised bool
	closed     bool
	id         string // as w delivers it
}

func (s *foundService) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scheme == SchemeTCPConnect {
		require.NoError(s.t, s.listen())
	} else {
		pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(netlab.LoopbackV4, 0).String())
		require.NoError(s.t, err)
		s.port = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		pc.Close() // a port number only: nothing listens
	}
	label, _, err := firstLabel(s.inst)
	require.NoError(s.t, err)
	s.id = foreignID(label, s.inst)
	require.NoError(s.t, s.advertise(120))
}

// listen opens the TCP listener, on s.port once it has one.
func (s *foundService) listen() error {
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(netlab.LoopbackV4, s.port).String())
	if err != nil {
		return err
	}
	s.port = uint16(ln.Addr().(*net.TCPAddr).Port)
	s.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}

// advertise sends the service's records with ttl (0: a goodbye) and waits
// until w delivers the announcement or the goodbye.
func (s *foundService) advertise(ttl uint32) error {
	if err := s.r.advertise(s.inst, service("_http._tcp.local.", s.inst, "web.local.", s.port, ttl)...); err != nil {
		return err
	}
	kind := codec.Announce
	if ttl == 0 {
		kind = codec.Goodbye
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case g := <-s.w.msgs:
			if g.msg.Kind == kind && g.msg.ID == s.id {
				s.advertised = ttl > 0
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("%s: no %v within %v", s.inst, kind, timeout)
		}
	}
}

func (s *foundService) URI() *url.URL {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &url.URL{Scheme: s.scheme, Host: netip.AddrPortFrom(netlab.LoopbackV4, s.port).String()}
}

func (s *foundService) SetHealthy(healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || healthy == s.healthy {
		return
	}
	s.healthy = healthy
	var err error
	switch {
	case s.scheme == SchemeAdvertised && healthy:
		err = s.advertise(120)
	case s.scheme == SchemeAdvertised:
		err = s.advertise(0)
	case healthy:
		err = s.listen()
	default:
		err = s.ln.Close()
		s.ln = nil
	}
	if err != nil {
		s.t.Errorf("SetHealthy(%v): %v", healthy, err)
	}
}

func (s *foundService) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	if s.advertised {
		return s.advertise(0)
	}
	return nil
}
