package mail

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// traceSend runs send inside a client span named after the mail system. The
// span carries no address, subject or body.
func traceSend(ctx context.Context, system string, send func(context.Context) error) error {
	ctx, span := otel.Tracer("github.com/millrace/millrace").Start(ctx, system+" send",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("millrace.mail.system", system)))
	defer span.End()
	err := send(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}
