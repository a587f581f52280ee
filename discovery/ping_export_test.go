package discovery

// SetInitialPingLoss makes the Groups joined from now on start with the
// loss estimate f of the ping protocol, as if measured, until the returned
// function restores it. For tests of the loss-adaptive rounds; no test in
// this package runs in parallel.
func SetInitialPingLoss(f float64) (restore func()) {
	old := initialPingLoss
	initialPingLoss = f
	return func() { initialPingLoss = old }
}
