package telemetry

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// WatermillLogger adapts l to Watermill's logger interface, with Watermill's
// levels mapped to slog's by mapping (nil keeps them). Watermill logs a
// line or two at trace level for every message it moves, and its own slog
// adapter turns their fields into attributes before slog decides to drop
// them; this one asks l first, so that a line nobody reads costs nothing.
func WatermillLogger(l *slog.Logger, mapping map[slog.Level]slog.Level) watermill.LoggerAdapter {
	if l == nil {
		l = slog.Default()
	}
	return wmLogger{next: watermill.NewSlogLoggerWithLevelMapping(l, mapping), l: l,
		mapping: mapping}
}

type wmLogger struct {
	next    watermill.LoggerAdapter
	l       *slog.Logger // asked whether a level is enabled
	mapping map[slog.Level]slog.Level
}

func (w wmLogger) enabled(level slog.Level) bool {
	if to, ok := w.mapping[level]; ok {
		level = to
	}
	return w.l.Enabled(context.Background(), level)
}

func (w wmLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.next.Error(msg, err, fields)
}

func (w wmLogger) Info(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelInfo) {
		w.next.Info(msg, fields)
	}
}

func (w wmLogger) Debug(msg string, fields watermill.LogFields) {
	if w.enabled(slog.LevelDebug) {
		w.next.Debug(msg, fields)
	}
}

func (w wmLogger) Trace(msg string, fields watermill.LogFields) {
	if w.enabled(watermill.LevelTrace) {
		w.next.Trace(msg, fields)
	}
}

func (w wmLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return wmLogger{next: w.next.With(fields), l: w.l, mapping: w.mapping}
}
