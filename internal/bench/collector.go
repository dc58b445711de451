package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Collector is an OTLP/HTTP trace receiver in the benchmark's process. It
// reads and acknowledges every export and counts them, so that the traced
// rows pay what exporting costs the service: building spans, batching,
// serialising and sending them.
type Collector struct {
	srv      *http.Server
	addr     string
	requests atomic.Int64
	bytes    atomic.Int64
}

// StartCollector listens on a free loopback port.
func StartCollector() (*Collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &Collector{addr: ln.Addr().String()}
	c.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			c.requests.Add(1)
			c.bytes.Add(n)
			// An empty body is an empty ExportTraceServiceResponse: all accepted.
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		})}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// Exporter returns an OTLP/HTTP exporter sending to the collector.
func (c *Collector) Exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(c.addr),
		otlptracehttp.WithInsecure())
}

// Received returns how many exports and bytes arrived.
func (c *Collector) Received() (requests, bytes int64) {
	return c.requests.Load(), c.bytes.Load()
}

// Close stops the collector.
func (c *Collector) Close() error { return c.srv.Close() }
