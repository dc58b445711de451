package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Collector is an OTLP/HTTP trace receiver, in the benchmark's process or in
// a child process of its own. It reads and acknowledges every export, so that
// the traced rows pay what exporting costs the service: building spans,
// batching, serialising and sending them. In its own process its CPU is not
// the service's, as with a real collector, though on one machine it still
// competes for the same cores.
type Collector struct {
	addr string
	// srv is set when the collector runs in this process; cmd and stdin
	// when it runs in a child.
	srv      *http.Server
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	requests atomic.Int64
	bytes    atomic.Int64
	spans    atomic.Int64
}

// StartCollector listens on a free loopback port in this process.
func StartCollector() (*Collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
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

// collectorLine prefixes the address a collector process prints.
const collectorLine = "COLLECTOR "

// ServeCollector runs a collector until in is closed (the parent is done),
// printing its address to out first and what it received to errOut last:
// the body of a collector child process (see StartCollectorProcess).
func ServeCollector(in io.Reader, out, errOut io.Writer) error {
	c, err := StartCollector()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, collectorLine+c.addr); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	_, _ = io.Copy(io.Discard, in)
	reqs, n := c.Received()
	fmt.Fprintf(errOut, "bench: collector process received %d exports, %d bytes\n", reqs, n)
	return c.Close()
}

// StartCollectorProcess runs a collector in a child process: self with args,
// which must call ServeCollector.
func StartCollectorProcess(self string, args ...string) (*Collector, error) {
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("collector process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("collector process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("collector process: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), collectorLine)
	if err != nil || !ok {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("collector process: no address (%q): %v", line, err)
	}
	return &Collector{addr: addr, cmd: cmd, stdin: stdin}, nil
}

// Exporter returns an OTLP/HTTP exporter sending to the collector. It counts
// the spans it exports, so that a row can show that none were dropped on the
// way: a span processor that drops spans under load would otherwise look
// cheaper than one that exports them all.
func (c *Collector) Exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(c.addr),
		otlptracehttp.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("collector exporter: %w", err)
	}
	return countingExporter{SpanExporter: exp, n: &c.spans}, nil
}

// Received returns how many exports and bytes arrived at a collector in this
// process; a child process reports its own when it stops.
func (c *Collector) Received() (requests, bytes int64) {
	return c.requests.Load(), c.bytes.Load()
}

// Spans returns how many spans the collector's exporters exported.
func (c *Collector) Spans() int64 { return c.spans.Load() }

// Close stops the collector.
func (c *Collector) Close() error {
	if c.cmd != nil {
		_ = c.stdin.Close()
		return c.cmd.Wait()
	}
	return c.srv.Close()
}

// countingExporter counts the spans an exporter exported.
type countingExporter struct {
	sdktrace.SpanExporter
	n *atomic.Int64
}

func (e countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		e.n.Add(int64(len(spans)))
	}
	return err
}
