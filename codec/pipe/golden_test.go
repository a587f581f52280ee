package pipe_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/codectest"
	"github.com/pirlan/pir/codec/pipe"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-*.txt from the current encoder")

// engineMessages are the messages the engine sends (discovery: announce.go,
// links.go, admit.go, liveness.go, lifecycle.go), with pirbench's names.
func engineMessages() []codec.Message {
	const (
		id     = "4972084b-10a3-4d9d-8523-7e25b7e50141"
		target = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
	)
	ms := time.Millisecond
	return []codec.Message{
		{Kind: codec.Announce, Group: "pir", ID: id, Health: "tcp://198.18.0.2:41234", Comms: "tcp://198.18.0.2:41234"},
		{Kind: codec.Announce, Group: "pir", ID: id, Health: "tcp://[fd42::2]:41234", Comms: "tcp://[fd42::2]:41234"},
		{Kind: codec.Announce, Group: "pir", ID: id, Health: "tcp://198.18.0.2:41234", Comms: "tcp://198.18.0.2:41234", Extended: true},
		{Kind: codec.Announce, Group: "pir", ID: id, Health: "http://198.18.0.2:8080/healthz", Comms: "tcp://198.18.0.2:80",
			Meta: map[string]string{"role": "web", "zone": "eu west"}},
		{Kind: codec.Query, Group: "pir", ID: id, Health: "tcp://198.18.0.2:41234", Comms: "tcp://198.18.0.2:41234"},
		{Kind: codec.Query, Group: "pir", ID: id},
		{Kind: codec.Goodbye, Group: "pir", ID: id},
		{Kind: codec.Confirm, Group: "pir", ID: id, Target: target, Since: 2750 * ms, Probe: true},
		{Kind: codec.Confirm, Group: "pir", ID: id, Target: target, Since: 900 * ms},
		{Kind: codec.Evidence, Group: "pir", ID: id, Target: target, Heard: -1, Probed: -1},
		{Kind: codec.Evidence, Group: "pir", ID: id, Target: target, Heard: 0, Probed: 0},
		{Kind: codec.Evidence, Group: "pir", ID: id, Target: target, Heard: 2900 * ms, Probed: 1830 * ms},
		{Kind: codec.Evidence, Group: "pir", ID: id, Target: target, Heard: 12 * ms, Probed: 0},
		{Kind: codec.Obituary, Group: "pir", ID: id, Target: target},
	}
}

// TestGoldenBytes: every message of the kinds and fields the engine sends
// encodes to exactly the bytes in testdata/golden-messages.txt, which the
// encoder of commit 3b9095e (before ARGS and the ping kinds) wrote. New
// fields left zero must change nothing on the wire.
func TestGoldenBytes(t *testing.T) {
	var got []string
	for _, m := range append(codectest.Messages(), engineMessages()...) {
		b, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err)
		got = append(got, strconv.Quote(string(b)))
	}
	golden(t, "golden-messages.txt", got)
}

// TestGoldenCorpus: every input of the fuzz corpus that decodes re-encodes
// to the bytes the encoder of commit 3b9095e gave it, and every input that
// did not decode still does not (testdata/golden-corpus.txt).
func TestGoldenCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, f := range files {
		b := corpusInput(t, filepath.Join(dir, f.Name()))
		var m codec.Message
		if err := (pipe.Codec{}).Decode(b, &m); err != nil {
			got = append(got, f.Name()+" error")
			continue
		}
		enc, err := pipe.Codec{}.Encode(nil, &m)
		require.NoError(t, err, "%s: %q", f.Name(), b)
		got = append(got, f.Name()+" "+strconv.Quote(string(enc)))
	}
	sort.Strings(got)
	golden(t, "golden-corpus.txt", got)
}

// corpusInput reads a one-value []byte corpus file of go test fuzz v1.
func corpusInput(t *testing.T, path string) []byte {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 2, path)
	v, ok := strings.CutPrefix(lines[1], "[]byte(")
	require.True(t, ok, path)
	v, ok = strings.CutSuffix(v, ")")
	require.True(t, ok, path)
	s, err := strconv.Unquote(v)
	require.NoError(t, err, path)
	return []byte(s)
}

func golden(t *testing.T, name string, got []string) {
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644))
		return
	}
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want = append(want, sc.Text())
	}
	require.NoError(t, sc.Err())
	require.Equal(t, len(want), len(got), "%s: number of lines", name)
	for i := range want {
		assert.Equal(t, want[i], got[i], fmt.Sprintf("%s line %d", name, i+1))
	}
}
