package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pirlan/pir/plugins/etcd/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The example's two modes against a real etcd: watch sees join's member
// arrive, then leave with a goodbye when join is stopped.
func TestJoinAndWatch(t *testing.T) {
	srv := etcdtest.Start(t)
	common := []string{"-etcd", srv.Endpoint, "-group", "demo", "-prefix", "/example"}

	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var wout etcdtest.SyncBuffer
	wdone := make(chan error, 1)
	go func() { wdone <- run(wctx, append(common, "watch"), &wout) }()
	require.Eventually(t, func() bool { return strings.Contains(wout.String(), "watching demo: 0 members") }, 20*time.Second, 10*time.Millisecond, wout.String())

	jctx, stopJoin := context.WithCancel(context.Background())
	var jout etcdtest.SyncBuffer
	jdone := make(chan error, 1)
	go func() {
		jdone <- run(jctx, append(common, "-lan", "mem", "-id", "m1", "-ttl", "5s", "join"), &jout)
	}()
	// join prints its line once StartMirror has returned, and the watcher
	// can see the key before that (the Put is applied before its reply
	// reaches join): wait for both before stopping join, or the stop
	// cancels the start while its Put is in flight.
	require.Eventually(t, func() bool { return strings.Contains(wout.String(), "etcd: joined m1 ") }, 20*time.Second, 10*time.Millisecond, wout.String())
	require.Eventually(t, func() bool {
		return strings.Contains(jout.String(), "joined demo as m1, mirrored at /example/demo/m1")
	}, 20*time.Second, 10*time.Millisecond, jout.String())

	stopJoin()
	require.NoError(t, <-jdone)
	assert.Contains(t, jout.String(), "left")
	require.Eventually(t, func() bool { return strings.Contains(wout.String(), "etcd: left m1 (goodbye)") }, 20*time.Second, 10*time.Millisecond, wout.String())

	stopWatch()
	require.NoError(t, <-wdone)
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"sing"}, &out))
	assert.Contains(t, out.String(), "usage: example [flags] join|watch")
}
