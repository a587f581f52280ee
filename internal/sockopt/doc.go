// Package sockopt holds the socket options pir's multicast transports
// (transport/multicast, transport/mdns) share, per platform: SharedPort, a
// net.ListenConfig.Control that lets several sockets on one host bind the
// same group port and receive only the groups they joined.
package sockopt
