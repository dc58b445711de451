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
// statement run inside a sampled trace gets a span. Statements with no span
// in their context (the relay's poll, the ticker) make none, so idle polling
// does not flood the trace store; nor do statements of a trace the sampler
// left out, whose spans would be dropped anyway, so that they skip building
// the span's attributes (the statement's text among them) as well.
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
			SpanFilter:           inSampledTrace,
		}),
	}
}

// inSampledTrace reports whether the statement's span would be recorded: the
// samplers Millrace uses are parent-based, so a child of a span that was not
// sampled is not either.
func inSampledTrace(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
	return trace.SpanContextFromContext(ctx).IsSampled()
}
