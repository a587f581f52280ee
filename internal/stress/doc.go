// Package stress holds tests that put one Group under hostile load on real
// sockets, inside a private network namespace (internal/netlab): a flood
// of forged announcements, and Close in the middle of it; a member's
// metadata toggled as fast as a spoofer can while a listener is blocked
// (the "listener flood" of docs/security.md). It has no code of its own.
package stress
