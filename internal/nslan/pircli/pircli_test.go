package pircli

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pirlan/pir/internal/nslan"
)

func TestParse(t *testing.T) {
	at := time.Now()
	e, err := Parse(nslan.Line{At: at, Text: `{"time":"2026-11-25T14:42:25.592005582Z","event":"left","id":"p1",` +
		`"health_uri":"tcp://198.18.0.2:38385","comms_uri":"tcp://198.18.0.2:80","addr":"198.18.0.2:41280",` +
		`"health":0.5,"verdict":"suspect","reason":"failed","meta":{"k":"v"},"future":1}`})
	require.NoError(t, err)
	assert.Equal(t, Left, e.Event)
	assert.Equal(t, "p1", e.ID)
	assert.Equal(t, "tcp://198.18.0.2:38385", e.HealthURI)
	assert.Equal(t, "tcp://198.18.0.2:80", e.CommsURI)
	assert.Equal(t, "198.18.0.2:41280", e.Addr)
	assert.Equal(t, 0.5, e.Health)
	assert.Equal(t, Failed, e.Reason)
	assert.Equal(t, map[string]string{"k": "v"}, e.Meta)
	assert.Equal(t, at, e.Line.At)
	assert.Equal(t, 2026, e.Time.Year())

	assert.True(t, Is(Left, "p1")(e))
	assert.True(t, Is(Left, "p1", Goodbye, Failed)(e))
	assert.False(t, Is(Left, "p1", Goodbye)(e))
	assert.False(t, Is(Joined, "p1")(e))
	assert.False(t, Is(Left, "p2")(e))

	for _, bad := range []string{
		``,
		`joined p1`,
		`{"event":"joined"}`,
		`{"event":"born","id":"p1"}`,
		`{"event":"joined","id":"p1","reason":"goodbye"}`,
		`{"event":"left","id":"p1"}`,
	} {
		_, err := Parse(nslan.Line{Text: bad})
		assert.Error(t, err, bad)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot(".")
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(root, "cmd", "pir", "main.go"))

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/other\n"), 0o644))
	_, err = ModuleRoot(dir)
	assert.Error(t, err, "another module's go.mod does not count")
}

// FuzzParse: whatever pir prints, Parse never panics, and what it accepts
// is a known event about some member.
func FuzzParse(f *testing.F) {
	f.Add(`{"event":"joined","id":"p1","health_uri":"tcp://198.18.0.2:1","health":1,"verdict":"healthy"}`)
	f.Add(`{"event":"left","id":"p1","reason":"goodbye"}`)
	f.Add(`{"event":"left","id":"p1"}`)
	f.Add(`{"event":"nope"}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(nslan.Line{Text: s})
		if err != nil {
			return
		}
		assert.Contains(t, []string{Joined, Health, Updated, Left}, e.Event)
		assert.NotEmpty(t, e.ID)
		assert.Equal(t, e.Event == Left, e.Reason != "")
	})
}

// A build without the race detector is static: the benchmark's RSS
// figures count no C library pages (docs/performance.md).
func TestBuildStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/pir")
	}
	root, err := ModuleRoot(".")
	require.NoError(t, err)
	bin, err := Build(context.Background(), root, t.TempDir(), false)
	require.NoError(t, err)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a dynamic loader is named: the binary links the C library")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs)
}
