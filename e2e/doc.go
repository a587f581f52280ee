// Package e2e holds pir's end-to-end tests: the pir command, built once
// per test run, on a LAN of network namespaces made by internal/nslan, as a
// user would run it on a real LAN; and plugins/memberlist's example on two
// LANs joined by a router (a plugin module may not import internal/nslan). They need root, ip(8) and nsenter(1)
// (and nft(8) for the loss tests) and skip, saying why, without them:
//
//	sudo go test -count=1 ./e2e/
//
// Keep -count=1 (./test.sh does): go test caches a package's result by
// the package's own sources, and the pir binary these tests build and run
// is not among them, so a cached PASS may be an older pir's.
//
// Nothing they send leaves the lab's namespaces.
package e2e
