package mail

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestDir(t *testing.T) (*Dir, string, *bytes.Buffer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outbox", "mail") // not there yet
	var logs bytes.Buffer
	d := NewDir(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	d.now = func() time.Time { return time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC) }
	return d, dir, &logs
}

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	require.NoError(t, err)
	return names
}

func TestDirSend(t *testing.T) {
	t.Parallel()
	d, dir, logs := newTestDir(t)

	key := "invite:3f2e1d0c-9b8a-4776-8554-433221100fed:1"
	id, err := d.Send(context.Background(), testMessage(key))
	require.NoError(t, err)
	require.Equal(t, MessageID(key), id)

	files := emlFiles(t, dir)
	require.Len(t, files, 1)
	name := filepath.Base(files[0])
	require.Equal(t, "20260329T003000.000000000Z-"+localPart(key)+".eml", name)
	info, err := os.Stat(files[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	p := parse(t, raw)
	require.Equal(t, "<"+id+">", p.Header.Get("Message-ID"))
	require.Equal(t, "You are invited", p.Header.Get("Subject"))
	require.Contains(t, p.Header.Get("To"), "bob@example.com")
	date, err := p.Header.Date()
	require.NoError(t, err)
	require.True(t, date.Equal(d.now()))
	require.Contains(t, p.Text, "please join.")
	require.Contains(t, p.HTML, "<p>please join.</p>")

	require.Contains(t, logs.String(), name)
	require.NotContains(t, logs.String(), "bob@example.com")
	require.NotContains(t, logs.String(), "please join")
}

func TestDirSendDedupes(t *testing.T) {
	t.Parallel()
	d, dir, _ := newTestDir(t)
	ctx := context.Background()

	first, err := d.Send(ctx, testMessage("invite:a:1"))
	require.NoError(t, err)
	d.now = func() time.Time { return time.Date(2026, 3, 30, 9, 0, 0, 0, time.UTC) }
	again, err := d.Send(ctx, testMessage("invite:a:1"))
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Len(t, emlFiles(t, dir), 1)

	// Keys that read alike are still different sends.
	for _, k := range []string{"invite:a:2", "invite-a-1", "x-invite:a:1"} {
		_, err := d.Send(ctx, testMessage(k))
		require.NoError(t, err)
	}
	require.Len(t, emlFiles(t, dir), 4)
}

func TestDirSendInvalid(t *testing.T) {
	t.Parallel()
	d, dir, logs := newTestDir(t)

	m := testMessage("k")
	m.To = nil
	_, err := d.Send(context.Background(), m)
	require.ErrorContains(t, err, "no recipient")
	require.Empty(t, emlFiles(t, dir))
	require.Empty(t, logs.String())
}

func TestDirSendTextOnly(t *testing.T) {
	t.Parallel()
	d, dir, _ := newTestDir(t)

	m := testMessage("k")
	m.HTML = ""
	_, err := d.Send(context.Background(), m)
	require.NoError(t, err)
	files := emlFiles(t, dir)
	require.Len(t, files, 1)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.Contains(t, string(raw), "Content-Type: text/plain")
	require.NotContains(t, string(raw), "text/html")
}
