package mdns

// SharedPortControl lets the external tests bind the mDNS port beside a
// Conn, as other responders do.
var SharedPortControl = sharedPortControl
