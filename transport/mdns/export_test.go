package mdns

import "github.com/pirlan/pir/internal/mcast"

// SharedPortControl lets the external tests bind the mDNS port beside a
// Conn, as other responders do.
var SharedPortControl = mcast.SharedPort
