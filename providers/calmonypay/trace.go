package calmonypay

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// traced wraps rt (nil: the default transport) so that every API call is a
// client span, named by method only: paths carry object ids.
func traced(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return otelhttp.NewTransport(rt, otelhttp.WithSpanNameFormatter(
		func(_ string, r *http.Request) string { return "calmony-pay " + r.Method }))
}
