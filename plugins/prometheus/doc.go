// Package prometheus exports a pir Group's counters, membership and probe
// latencies as Prometheus metrics, through
// github.com/prometheus/client_golang.
//
// The package is named after its directory, as is usual; programs that also
// import client_golang's prometheus package give this one another name:
//
//	import pirprom "github.com/pirlan/pir/plugins/prometheus"
//
// # Two collectors
//
// A Collector reads a Group when Prometheus scrapes it: Group.Stats (datagrams
// received, decoded, sent and dropped by reason, probes by result) and
// Group.Members (members by verdict). It also subscribes to the Group's events
// and counts them by type, and departures by reason. Make it with NewCollector
// once the Group has joined, and register it with a prometheus.Registerer.
//
// ProbeMetrics times health probes in a histogram, by URI scheme and result.
// It must exist before the Group does: its Instrument method wraps the
// healthcheck.Prober that discovery.Config.Prober is set to.
//
// docs/plugins/prometheus.md lists every metric, with example queries.
//
// # Lifecycle
//
// A Collector holds one listener on its Group. Close removes it; unregister
// the Collector from its registry first, so that scrapes stop reading it.
// Closing the Group ends the listener as well, and a Collector of a closed
// Group goes on reporting the Group's last counters until it is unregistered.
// ProbeMetrics holds nothing that needs closing.
//
// # Cardinality
//
// Every metric has a bounded set of series. Label values come from pir's own
// names (drop reasons, event types, verdicts), with two exceptions: the scheme
// label of the probe histogram, whose distinct values are capped at
// MaxSchemes, and the member label of the opt-in per-member gauge
// (Config.MemberHealth), one series per joined member.
//
// # Concurrency
//
// Collectors and ProbeMetrics are safe for concurrent use: scrapes may run at
// the same time as each other, as the Group's listener and as probes.
package prometheus
