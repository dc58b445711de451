package platform

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
)

// TestDeleteAuditRowsRechecksHolds covers a hold committed between a batch's
// SELECT and its DELETE, which Postgres's READ COMMITTED lets happen: the
// DELETE checks the holds again, and the count is what it deleted.
func TestDeleteAuditRowsRechecksHolds(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	free := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2015, 1, 1, 0, 0))
	held := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2015, 1, 1, 0, 0))
	gone := "no-such-row"
	f.hold(t, "audit_logs", held, false)

	var n int64
	err := f.db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		n, err = deleteAuditRows(context.Background(), tx, []string{free, held, gone})
		return err
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the row not under a hold, and only rows that exist")
	require.False(t, f.exists(t, free))
	require.True(t, f.exists(t, held))
}
