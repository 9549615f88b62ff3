package bgp

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// TestLogAdapterLevel: GoBGP is told the level slog writes, so it does not build the fields
// of debug messages that would be thrown away; what it logs at that level is written.
func TestLogAdapterLevel(t *testing.T) {
	for _, c := range []struct {
		slog     slog.Level
		set      gobgplog.LogLevel
		want     gobgplog.LogLevel
		debugOut bool
	}{
		{slog.LevelInfo, gobgplog.DebugLevel, gobgplog.InfoLevel, false},
		{slog.LevelDebug, gobgplog.DebugLevel, gobgplog.DebugLevel, true},
		{slog.LevelDebug, gobgplog.TraceLevel, gobgplog.TraceLevel, true},
		{slog.LevelWarn, gobgplog.DebugLevel, gobgplog.WarnLevel, false},
		{slog.LevelDebug, gobgplog.WarnLevel, gobgplog.WarnLevel, false}, // set through GoBGP's API
		{slog.LevelError + 4, gobgplog.DebugLevel, gobgplog.ErrorLevel, false},
	} {
		var out bytes.Buffer
		a := newLogAdapter(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: c.slog})))
		a.SetLevel(c.set)
		if got := a.GetLevel(); got != c.want {
			t.Errorf("slog %v, set %v: GetLevel %v, want %v", c.slog, c.set, got, c.want)
		}
		a.Debug("a debug message", gobgplog.Fields{"Key": "10.0.0.1"})
		if got := strings.Contains(out.String(), "a debug message"); got != c.debugOut {
			t.Errorf("slog %v, set %v: debug message written %v, want %v", c.slog, c.set, got, c.debugOut)
		}
	}
}
