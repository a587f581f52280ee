package discovery

// ProbeRank is member's rank as the first prober of peer (admit.go), for
// tests that need to know who probes a newcomer first.
func ProbeRank(peer, member string) uint64 { return probeRank(peer, member) }
