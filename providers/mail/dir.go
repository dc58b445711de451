package mail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Dir "sends" mail by writing each message as an RFC 5322 .eml file, for
// development and demos where no SMTP server is configured. Files are named
// <UTC timestamp>-<key>.eml, where <key> is the local part of the message's
// Message-ID, and are readable by the owner only since links in them may
// carry secrets.
//
// Writing a message whose dedupe key already has a file writes nothing and
// returns the same id. That check is made under a lock within one process;
// two processes sharing a directory may both write.
type Dir struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time

	mu sync.Mutex
}

// NewDir returns a Sender writing into dir, which is created on first use.
// A nil logger discards.
func NewDir(dir string, logger *slog.Logger) *Dir {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dir{dir: dir, logger: logger, now: time.Now}
}

// Send writes m and returns its Message-ID (see MessageID).
func (d *Dir) Send(ctx context.Context, m Message) (string, error) {
	now := d.now().UTC()
	msg, _, err := build(m, now)
	if err != nil {
		return "", fmt.Errorf("write mail: %w", err)
	}
	id := MessageID(m.DedupeKey)
	key := localPart(m.DedupeKey)

	d.mu.Lock()
	defer d.mu.Unlock()

	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return "", fmt.Errorf("write mail: %w", err)
	}
	existing, err := d.find(key)
	if err != nil {
		return "", err
	}
	if existing != "" {
		d.logger.InfoContext(ctx, "mail already written", "file", existing, "mail_message_id", id)
		return id, nil
	}

	name := now.Format("20060102T150405.000000000Z") + "-" + key + ".eml"
	tmp, err := os.CreateTemp(d.dir, ".tmp-*.eml")
	if err != nil {
		return "", fmt.Errorf("write mail: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed

	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write mail: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write mail: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.dir, name)); err != nil {
		return "", fmt.Errorf("write mail: %w", err)
	}
	d.logger.InfoContext(ctx, "mail written", "file", name, "mail_message_id", id)

	return id, nil
}

// find returns the name of the file already written for key, or "".
// Timestamps contain no '-', so the key is everything after the first one.
func (d *Dir) find(key string) (string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("write mail: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		_, rest, ok := strings.Cut(name, "-")
		if ok && !e.IsDir() && rest == key+".eml" && !strings.HasPrefix(name, ".") {
			return name, nil
		}
	}
	return "", nil
}
