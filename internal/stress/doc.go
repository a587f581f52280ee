// Package stress holds tests that put one Group under hostile load on real
// sockets, inside a private network namespace (internal/netlab): a flood
// of forged announcements, and Close in the middle of it. It has no code
// of its own.
package stress
