// Package sim holds simulations of large pir groups: real discovery.Groups,
// default settings, on an in-memory LAN under testing/synctest's fake clock,
// which measure what each member costs and how fast a vanished member is
// removed at sizes no network lab reaches. They use only the library's
// public API.
//
// They are tests, because synctest's bubble is only given to a test:
//
//   - TestScaleSimulation runs every member for real (PIR_SCALE lists the
//     sizes; 40 members when unset).
//   - TestSampledSimulation runs K real members in a modeled crowd of N-K,
//     up to 10,000 members (PIR_SAMPLED, PIR_SAMPLED_CHECK; skipped when
//     unset).
//   - TestSampledMatchesReal and TestSampledCrowdAnswers always run: they
//     keep the crowd model from drifting from the code it mirrors, and fail
//     when discovery changes a rule the model copies.
//   - TestSampledFrugal is TestSampledSimulation with the frugal engine on
//     (docs/design/frugal.md, section 6: PingInterval and HealthInterval
//     1 s), its crowd (fcrowd) pinging, acking, announcing at T(N),
//     confirming deaths by pings, serving state transfers as F or S and
//     reporting its health; the same variables choose the sizes.
//     TestSampledFrugalMatchesReal, TestSampledFrugalCrowdAnswers and
//     TestSampledAnnounceRate always run, as the two above do.
//
// From the repository root:
//
//	PIR_SAMPLED=1000,10000 go -C tools test -run SampledSimulation -v -timeout 2h ./sim/
//	PIR_SAMPLED=1000,10000 PIR_SAMPLED_VICTIMS=20 go -C tools test -run 'SampledFrugal$' -v -timeout 1h ./sim/
//	PIR_SCALE=32,100,1000 go -C tools test -run ScaleSimulation -v -timeout 1h ./sim/
//
// docs/performance.md gives the figures they printed.
package sim
