package billing

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/millrace/millrace/store"
)

// querier is what a read needs: a *store.DB or a *store.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// nullTime returns t as stored, or nil for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return store.Now(t)
}
