package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/millrace/millrace/internal/bench"
	"github.com/millrace/millrace/telemetry"
)

// tracedKey prefixes the rows with tracing exported at the default sampler
// and alwaysOnKey those recording every trace; each has an untraced twin
// under untracedKey with the same publisher count.
const (
	tracedKey   = "svc/memory/full-traced/max-"
	alwaysOnKey = "svc/memory/full-traced-always-on/max-"
	untracedKey = "svc/memory/full/max-"
)

// Flags of the tracing rows: -collector makes this process the collector
// child of a traced row; -collector-in-process puts the collector in the
// measured process instead, to see what it costs there.
var (
	collectorChild  = flag.Bool("collector", false, "run as a traced row's OTLP collector")
	collectorInProc = flag.Bool("collector-in-process", false,
		"run the traced rows' collector in the measured process")
)

// tracingRows are the full chain with tracing exported: at the default
// sampler, and recording every trace.
func tracingRows(maxRow func(sys string, pubs int, ledger string) runFunc) []row {
	dflt := fmt.Sprintf("default sampler (parent-based, %g of new traces)",
		telemetry.DefaultSampleRatio)
	const to = "exported over OTLP/HTTP to a collector process"
	return []row{
		{tracedKey + "p1", "Millrace full chain, " + dflt + ", " + to + ", 1 publisher",
			maxRow("full-traced", 1, "memory")},
		{tracedKey + "p4", "Millrace full chain, " + dflt + ", " + to + ", 4 publishers",
			maxRow("full-traced", 4, "memory")},
		{alwaysOnKey + "p4", "Millrace full chain, every trace (parentbased_always_on, no span " +
			"dropped), " + to + ", 4 publishers", maxRow("full-traced-always-on", 4, "memory")},
	}
}

// tracingSystem starts the system of a tracing row, reporting false for
// another kind.
func tracingSystem(kind string, t *bench.Tracker) (bench.System, bool, error) {
	switch kind {
	case "full-traced":
		sys, err := tracedSystem(t, bench.FullOpts{})
		return sys, true, err
	case "full-traced-always-on":
		sys, err := tracedSystem(t, bench.FullOpts{
			Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample()), ExportAll: true})
		return sys, true, err
	}
	return bench.System{}, false, nil
}

// tracedSystem runs the full chain exporting its sampled spans to an
// OTLP/HTTP collector, with the batch processor serve uses (o.ExportAll
// aside). The collector
// runs in a child process (this program with -collector), as a real one
// would run apart from the service, unless -collector-in-process.
func tracedSystem(t *bench.Tracker, o bench.FullOpts) (bench.System, error) {
	var (
		col *bench.Collector
		err error
	)
	if *collectorInProc {
		col, err = bench.StartCollector()
	} else {
		var self string
		if self, err = os.Executable(); err == nil {
			col, err = bench.StartCollectorProcess(self, "-collector")
		}
	}
	if err != nil {
		return bench.System{}, fmt.Errorf("start collector: %w", err)
	}
	exp, err := col.Exporter(context.Background())
	if err != nil {
		col.Close()
		return bench.System{}, fmt.Errorf("create exporter: %w", err)
	}
	o.Exporter = exp
	sys, err := bench.Full(t, o)
	if err != nil {
		col.Close()
		return bench.System{}, err
	}
	closeSys := sys.Close
	sys.Close = func() {
		closeSys() // flushes the batch processor
		if reqs, n := col.Received(); reqs > 0 {
			fmt.Fprintf(os.Stderr, "bench: collector received %d exports, %d bytes\n", reqs, n)
		}
		fmt.Fprintf(os.Stderr, "bench: %d spans exported\n", col.Spans())
		spansExported = col.Spans()
		col.Close()
	}
	return sys, nil
}

// spansExported is the count of the traced row that ran in this process,
// for its RESULT note.
var spansExported int64 = -1

// spansNote says how many spans a traced row exported: each message makes
// three (publish, delivery, attempt), so an always-on row that exported
// fewer than 3n dropped spans and measured less work than it should have.
func spansNote(key string, n int64) string {
	if spansExported < 0 {
		return ""
	}
	note := fmt.Sprintf("spans exported %d (%.2f per message)", spansExported,
		float64(spansExported)/float64(n))
	if strings.HasPrefix(key, alwaysOnKey) && spansExported < 3*n {
		note += fmt.Sprintf("; %d DROPPED", 3*n-spansExported)
	}
	return note
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

// tracingRoundKeys are the rows run again, alternately, for the ratio.
func tracingRoundKeys() []string {
	return []string{untracedKey + "p4", tracedKey + "p4", alwaysOnKey + "p4"}
}

// printTracingRatio prints, for each publisher count measured both ways, the
// median throughput with tracing exported over the median with tracing off,
// and the median and range of the ratios of runs of the same round, back to
// back: on a shared machine the load changes between rounds, and a round's
// own ratio is the steadier figure.
func printTracingRatio(samples map[string][]bench.Result) {
	for _, p := range []string{"p1", "p4"} {
		off := samples[untracedKey+p]
		for _, k := range []string{tracedKey, alwaysOnKey} {
			on := samples[k+p]
			if len(on) == 0 || len(off) == 0 {
				continue
			}
			onRate, offRate := median(on, rate), median(off, rate)
			onCPU, offCPU := median(on, cpu), median(off, cpu)
			med, lo, hi := pairedRatios(on, off)
			fmt.Printf("TRACING %s%s vs off (median of %d/%d runs): %.0f vs %.0f msg/s, "+
				"throughput ratio %.3f (per round: median %.3f, range %.3f-%.3f); "+
				"cpu %.1f vs %.1f ms per 1k, ratio %.3f; %s\n", k, p, len(on), len(off),
				onRate, offRate, onRate/offRate, med, lo, hi, onCPU, offCPU, onCPU/offCPU,
				on[len(on)-1].Note)
		}
	}
}

// pairedRatios returns the median, lowest and highest throughput ratio of
// runs of the same round (the i-th of each side).
func pairedRatios(on, off []bench.Result) (med, lo, hi float64) {
	var r []bench.Result
	for i := range min(len(on), len(off)) {
		r = append(r, bench.Result{MsgPerS: on[i].MsgPerS / off[i].MsgPerS})
	}
	lo, hi = 1e9, 0
	for _, x := range r {
		lo, hi = min(lo, x.MsgPerS), max(hi, x.MsgPerS)
	}
	return median(r, rate), lo, hi
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
