package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the example's demo on 127.0.0.1 and scrapes it until the
// three members are healthy, then stops it.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{listen: "127.0.0.1:0", group: "web"}, func(a string) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/metrics"
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	healthy := func() float64 {
		resp, err := client.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fs, err := p.TextToMetricFamilies(resp.Body)
		require.NoError(t, err)
		require.Contains(t, fs, "go_goroutines", "the example registers the Go collector too")
		for _, m := range fs["pir_members"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "verdict" && l.GetValue() == "healthy" {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return healthy() == 3 }, 15*time.Second, 10*time.Millisecond)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context was canceled")
	}
}
