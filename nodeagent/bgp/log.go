package bgp

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter is GoBGP's logger interface over slog, as Cilium's pkg/bgpv1/gobgp does with
// logrus: GoBGP's own logger would write to stderr in its own format.
type slogAdapter struct {
	l     *slog.Logger
	level gobgplog.LogLevel
}

func newLogAdapter(l *slog.Logger) *slogAdapter {
	return &slogAdapter{l: l.With("component", "gobgp"), level: gobgplog.DebugLevel}
}

func (a *slogAdapter) log(lvl slog.Level, at gobgplog.LogLevel, msg string, fields gobgplog.Fields) {
	if at > a.level || !a.l.Enabled(context.Background(), lvl) {
		return
	}
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	a.l.Log(context.Background(), lvl, msg, args...)
}

// Panic and Fatal are logged as errors: an embedded speaker must not end the agent.
func (a *slogAdapter) Panic(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.PanicLevel, msg, f)
}
func (a *slogAdapter) Fatal(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.FatalLevel, msg, f)
}
func (a *slogAdapter) Error(msg string, f gobgplog.Fields) {
	a.log(slog.LevelError, gobgplog.ErrorLevel, msg, f)
}
func (a *slogAdapter) Warn(msg string, f gobgplog.Fields) {
	a.log(slog.LevelWarn, gobgplog.WarnLevel, msg, f)
}
func (a *slogAdapter) Info(msg string, f gobgplog.Fields) {
	a.log(slog.LevelInfo, gobgplog.InfoLevel, msg, f)
}
func (a *slogAdapter) Debug(msg string, f gobgplog.Fields) {
	a.log(slog.LevelDebug, gobgplog.DebugLevel, msg, f)
}
func (a *slogAdapter) SetLevel(l gobgplog.LogLevel) { a.level = l }

// GetLevel is the most verbose level that is written: the one set, lowered to what slog
// writes. GoBGP asks before building the fields of its per-path debug messages (one per
// path and neighbour when it decides what to advertise: 190,000 maps for 10,000 routes with
// 19 neighbours), which slog would throw away.
func (a *slogAdapter) GetLevel() gobgplog.LogLevel {
	l := a.level
	for l > gobgplog.ErrorLevel && !a.l.Enabled(context.Background(), slogLevel[l]) {
		l--
	}
	return l
}

// slogLevel is the slog level GoBGP's levels are written at.
var slogLevel = map[gobgplog.LogLevel]slog.Level{
	gobgplog.PanicLevel: slog.LevelError,
	gobgplog.FatalLevel: slog.LevelError,
	gobgplog.ErrorLevel: slog.LevelError,
	gobgplog.WarnLevel:  slog.LevelWarn,
	gobgplog.InfoLevel:  slog.LevelInfo,
	gobgplog.DebugLevel: slog.LevelDebug,
	gobgplog.TraceLevel: slog.LevelDebug,
}
