package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"
)

func TestWatermillLoggerKeepsLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := WatermillLogger(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}).
		With(watermill.LogFields{"component": "x"})
	w.Trace("trace line", watermill.LogFields{"k": 1})
	w.Debug("debug line", nil)
	w.Info("info line, mapped to debug", nil)
	require.Empty(t, buf.String(), "lines below the handler's level are dropped")
	w.Error("error line", errors.New("boom"), watermill.LogFields{"k": 2})
	require.Contains(t, buf.String(), "error line")
	require.Contains(t, buf.String(), "component=x")
	require.Contains(t, buf.String(), "boom")

	buf.Reset()
	l = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: watermill.LevelTrace}))
	WatermillLogger(l, nil).Trace("trace line", watermill.LogFields{"k": 3})
	require.Contains(t, buf.String(), "trace line")
	require.Contains(t, buf.String(), "k=3")
}
