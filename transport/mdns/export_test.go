package mdns

import "github.com/pirlan/pir/internal/sockopt"

// SharedPortControl lets the external tests bind the mDNS port beside a
// Conn, as other responders do.
var SharedPortControl = sockopt.SharedPort
