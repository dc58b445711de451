package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/millrace/millrace/internal/bench"
)

// tracedKey prefixes the rows with tracing on; each has an untraced twin
// under untracedKey with the same publisher count.
const (
	tracedKey   = "svc/memory/full-traced/max-"
	sampledKey  = "svc/memory/full-traced-10pct/max-"
	untracedKey = "svc/memory/full/max-"
)

// tracedSystem runs the full chain exporting every span to an OTLP/HTTP
// collector in this process, with the default sampler and batch processor.
func tracedSystem(t *bench.Tracker, sampler sdktrace.Sampler) (bench.System, error) {
	col, err := bench.StartCollector()
	if err != nil {
		return bench.System{}, fmt.Errorf("start collector: %w", err)
	}
	exp, err := col.Exporter(context.Background())
	if err != nil {
		col.Close()
		return bench.System{}, fmt.Errorf("create exporter: %w", err)
	}
	sys, err := bench.Full(t, bench.FullOpts{Exporter: exp, Sampler: sampler})
	if err != nil {
		col.Close()
		return bench.System{}, err
	}
	closeSys := sys.Close
	sys.Close = func() {
		closeSys()
		reqs, n := col.Received()
		fmt.Fprintf(os.Stderr, "bench: collector received %d exports, %d bytes\n", reqs, n)
		col.Close()
	}
	return sys, nil
}

func parseResult(out string) (bench.Result, bool) {
	for _, line := range strings.Split(out, "\n") {
		if js, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r bench.Result
			if json.Unmarshal([]byte(js), &r) == nil {
				return r, true
			}
		}
	}
	return bench.Result{}, false
}

// printTracingRatio prints, for each publisher count measured both ways, the
// median throughput with tracing exported over the median with tracing off.
func printTracingRatio(samples map[string][]bench.Result) {
	for _, p := range []string{"p1", "p4"} {
		off := samples[untracedKey+p]
		for _, k := range []string{tracedKey, sampledKey} {
			on := samples[k+p]
			if len(on) == 0 || len(off) == 0 {
				continue
			}
			onRate, offRate := median(on, rate), median(off, rate)
			onCPU, offCPU := median(on, cpu), median(off, cpu)
			fmt.Printf("TRACING %s%s vs off (median of %d/%d runs): %.0f vs %.0f msg/s, "+
				"throughput ratio %.3f; cpu %.1f vs %.1f ms per 1k, ratio %.3f\n", k, p,
				len(on), len(off), onRate, offRate, onRate/offRate, onCPU, offCPU, onCPU/offCPU)
		}
	}
}

func rate(r bench.Result) float64 { return r.MsgPerS }
func cpu(r bench.Result) float64  { return r.CPUMsPer1k }

func median(rs []bench.Result, f func(bench.Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
