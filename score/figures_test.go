package score_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pirlan/pir/score"
)

var figures = flag.Bool("figures", false, "print the detection and false-death figures of docs/policies.md")

// The PhiAccrual setting docs/policies.md suggests besides the defaults.
var (
	// robust lets one failed probe of a live peer pass.
	robust = score.PhiConfig{PauseFailures: 2}
)

// TestFigures prints the tables of docs/policies.md:
//
//	go test ./score -run TestFigures -v -args -figures
//
// False deaths: 100 simulated days of one live peer per cell. Detection:
// 2000 killed and 2000 vanished peers per cell. The pause: 365 days per
// cell. The seeds are fixed, so the tables are the same on every run
// (about five minutes).
func TestFigures(t *testing.T) {
	if !*figures {
		t.Skip("run with -args -figures")
	}
	policies := []struct {
		name string
		p    score.HealthPolicy
	}{
		{"Threshold", score.NewThreshold(score.ThresholdConfig{})},
		{"PhiAccrual", score.NewPhiAccrual(score.PhiConfig{})},
		{"Phi robust", score.NewPhiAccrual(robust)},
	}
	losses := []float64{0, 0.01, 0.10, 0.20, 0.30}
	const days, trials = 100, 2000

	var b strings.Builder
	header := func(first string) {
		fmt.Fprintf(&b, "\n| %s |", first)
		for _, pol := range policies {
			fmt.Fprintf(&b, " %s |", pol.name)
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(policies)))
	}

	header("announcements lost, probes failing")
	for _, loss := range losses {
		for _, pf := range []float64{0, 0.001, 0.01} {
			fmt.Fprintf(&b, "| %g %%, %g %% |", loss*100, pf*100)
			for i, pol := range policies {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(loss*1000)<<16|uint64(pf*10000)))
				r := simulate(pol.p, pirDefaults(loss, pf), rng, days*24*time.Hour)
				fmt.Fprintf(&b, " %.2f |", float64(r.falseDead)/days)
			}
			b.WriteString("\n")
		}
	}

	header("announcements lost: killed / vanished")
	for _, loss := range losses {
		fmt.Fprintf(&b, "| %g %% |", loss*100)
		for i, pol := range policies {
			rng := rand.New(rand.NewPCG(uint64(i), 1+uint64(loss*1000)))
			m := pirDefaults(loss, 0)
			m.Killed = true
			k, km := detection(pol.p, m, rng, trials)
			m.Killed = false
			v, vm := detection(pol.p, m, rng, trials)
			fmt.Fprintf(&b, " %s; %s |", spread(k, km), spread(v, vm))
		}
		b.WriteString("\n")
	}

	// The pause: a year of one live peer whose probes all answer, so only
	// lost announcements can kill it.
	pauses := []time.Duration{3 * time.Second, 5 * time.Second, 10 * time.Second}
	fmt.Fprintf(&b, "\n| announcements lost (a year, probes answering) |")
	for _, pause := range pauses {
		fmt.Fprintf(&b, " AcceptablePause %v |", pause)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(pauses)))
	for _, loss := range []float64{0.10, 0.20, 0.30} {
		fmt.Fprintf(&b, "| %g %% |", loss*100)
		for _, pause := range pauses {
			rng := rand.New(rand.NewPCG(7, uint64(loss*1000)))
			r := simulate(score.NewPhiAccrual(score.PhiConfig{AcceptablePause: pause}), pirDefaults(loss, 0), rng, 365*24*time.Hour)
			fmt.Fprintf(&b, " %.3f |", float64(r.falseDead)/365)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}

// spread is "median / p95 / max" in seconds.
func spread(sorted []time.Duration, missed int) string {
	s := fmt.Sprintf("%.1f / %.1f / %.1f", quantile(sorted, 0.5).Seconds(), quantile(sorted, 0.95).Seconds(), quantile(sorted, 1).Seconds())
	if missed > 0 {
		s += fmt.Sprintf(" (%d missed)", missed)
	}
	return s
}
