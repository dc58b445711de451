package store

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// openTraced opens a database through a driver wrapped so that every SQL
// statement run inside a traced context gets a span. Statements with no
// span in their context (the relay's poll, the ticker) make none, so idle
// polling does not flood the trace store.
func openTraced(driverName, dsn string, system string) (*sql.DB, error) {
	return otelsql.Open(driverName, dsn, sqlTraceOptions(system)...)
}

// openTracedConnector is openTraced for a driver that hands out a connector.
func openTracedConnector(c driver.Connector, system string) *sql.DB {
	return otelsql.OpenDB(c, sqlTraceOptions(system)...)
}

func sqlTraceOptions(system string) []otelsql.Option {
	return []otelsql.Option{
		otelsql.WithAttributes(attribute.String("db.system.name", system)),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			DisableErrSkip:       true,
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
			OmitConnectorConnect: true,
			SpanFilter:           hasParentSpan,
		}),
	}
}

func hasParentSpan(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
	return trace.SpanContextFromContext(ctx).IsValid()
}
