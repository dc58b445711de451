package postgres_test

import (
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/postgres"
)

// The transport stands behind the same interface as memory. The check lives
// in an external test package: transport imports store, and store may call
// postgres.PublishTx, so the package itself must not import transport.
var _ transport.Transport = (*postgres.Transport)(nil)
