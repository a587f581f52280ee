package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewConfig(t *testing.T) {
	a, err := New(Config{})
	require.NoError(t, err)
	assert.Equal(t, "pir.", a.cfg.Domain)
	assert.Equal(t, DefaultMaxEvents, a.cfg.MaxEvents)
	a, err = New(Config{Domain: "LAN.Example"})
	require.NoError(t, err)
	assert.Equal(t, "lan.example.", a.cfg.Domain, "lower-case, fully qualified")

	for _, cfg := range []Config{{MaxEvents: -1}, {MaxEvents: maxMaxEvents + 1}, {Domain: "a..b"}} {
		_, err := New(cfg)
		assert.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
	}
	_, err = New(Config{MaxEvents: -1, Domain: "a..b"})
	assert.ErrorContains(t, err, "MaxEvents")
	assert.ErrorContains(t, err, "domain", "every problem at once")
}

func TestWatchErrors(t *testing.T) {
	a := newAgent(t, Config{})
	require.Error(t, a.Watch(nil))
	_, err := a.newView("Web")
	require.NoError(t, err)
	_, err = a.newView("web")
	require.Error(t, err, "names compare case-insensitively")
}
