package multicast

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pirlan/pir/transport"
)

var (
	_ transport.Transport       = (*Dual)(nil)
	_ transport.LinkSender      = (*Dual)(nil)
	_ transport.UniqueUnicast   = (*Dual)(nil)
	_ transport.RefusalReporter = (*Dual)(nil)
)

// Dual is one Transport over an IPv4 and an IPv6 Conn: Send sends on both,
// Receive returns what either receives, Links is the union of both.
type Dual struct {
	v4, v6    *Conn
	rx        chan datagram // shared by both Conns' readers
	done      chan struct{}
	closeOnce sync.Once
}

// NewDual opens an IPv4 Conn with cfg4 and an IPv6 Conn with cfg6. Their
// Network fields may be left empty; NewDual sets them. It fails if either
// Conn fails to open: on a host without IPv6, use New.
func NewDual(cfg4, cfg6 Config) (*Dual, error) {
	if cfg4.Network == "" {
		cfg4.Network = "udp4"
	}
	if cfg6.Network == "" {
		cfg6.Network = "udp6"
	}
	if cfg4.Network != "udp4" || cfg6.Network != "udp6" {
		return nil, fmt.Errorf("multicast: dual stack needs udp4 and udp6 configs, not %s and %s", cfg4.Network, cfg6.Network)
	}
	d := &Dual{rx: make(chan datagram), done: make(chan struct{})}
	var err error
	if d.v4, err = newConn(cfg4, d.rx); err != nil {
		return nil, err
	}
	if d.v6, err = newConn(cfg6, d.rx); err != nil {
		_ = d.v4.Close()
		return nil, err
	}
	return d, nil
}

// Send multicasts b on every link of both families. It fails only when it
// could send on none.
func (d *Dual) Send(b []byte) error {
	err4 := d.v4.Send(b)
	err6 := d.v6.Send(b)
	if err4 != nil && err6 != nil {
		return errors.Join(err4, err6)
	}
	return nil
}

// SendTo sends b by unicast from the Conn of dst's family.
func (d *Dual) SendTo(b []byte, dst netip.AddrPort) error {
	if dst.Addr().Unmap().Is4() {
		return d.v4.SendTo(b, dst)
	}
	return d.v6.SendTo(b, dst)
}

// SendVia multicasts b on one link, with the Conn of the link's address
// family.
func (d *Dual) SendVia(b []byte, l transport.Link) error {
	switch a := l.Addr.Unmap(); {
	case a.Is4():
		return d.v4.SendVia(b, l)
	case a.Is6():
		return d.v6.SendVia(b, l)
	}
	return fmt.Errorf("multicast: send via %s (index %d): link has no address to tell its family: %w",
		l.Name, l.Index, ErrNoInterface)
}

// Links reports the IPv4 links, then the IPv6 ones. An interface used by
// both families appears twice, with an address of each.
func (d *Dual) Links() []transport.Link {
	return append(d.v4.Links(), d.v6.Links()...)
}

// Receive waits for a datagram from either family and copies it into buf,
// as Conn.Receive does.
func (d *Dual) Receive(buf []byte) (transport.Packet, error) {
	return receive(d.rx, d.done, buf)
}

// Rescan rescans the interfaces of both Conns.
func (d *Dual) Rescan() error {
	return errors.Join(d.v4.Rescan(), d.v6.Rescan())
}

// Stats adds up the counters of both Conns.
func (d *Dual) Stats() Stats {
	s4, s6 := d.v4.Stats(), d.v6.Stats()
	return Stats{
		SendFailures:  s4.SendFailures + s6.SendFailures,
		Filtered:      s4.Filtered + s6.Filtered,
		Refused:       s4.Refused + s6.Refused,
		ErrorsDropped: s4.ErrorsDropped + s6.ErrorsDropped,
	}
}

// ConfirmNeighbour confirms dst with the Conn of its family.
func (d *Dual) ConfirmNeighbour(dst netip.AddrPort) error {
	if dst.Addr().Unmap().Is4() {
		return d.v4.ConfirmNeighbour(dst)
	}
	return d.v6.ConfirmNeighbour(dst)
}

// UnicastIsUnique reports true, as Conn's does.
func (d *Dual) UnicastIsUnique() bool { return true }

// ReportsRefusals reports whether both Conns report refusals (Linux).
func (d *Dual) ReportsRefusals() bool { return d.v4.ReportsRefusals() && d.v6.ReportsRefusals() }

// Close closes both Conns and waits for their goroutines. It is
// idempotent; only the first call reports an error.
func (d *Dual) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.done)
		err = errors.Join(d.v4.Close(), d.v6.Close())
	})
	return err
}
