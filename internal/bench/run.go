package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// PublishFunc publishes one benchmark message.
type PublishFunc func(id int64) error

// errTimeout is returned when deliveries stop arriving.
var errTimeout = errors.New("benchmark timed out waiting for deliveries")

// Max publishes n messages from publishers goroutines as fast as they go,
// while the system under test consumes, and measures from the first publish
// to the last delivery.
func Max(ctx context.Context, t *Tracker, publish PublishFunc, n int64, publishers int) (Result, error) {
	_, cpu0 := usage()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := int64(p); id < n; id += int64(publishers) {
				if err := publish(id); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, fmt.Errorf("publish: %w", err)
	}
	if err := wait(ctx, t, time.Minute); err != nil {
		return Result{}, err
	}
	rss, cpu1 := usage()
	secs := time.Unix(0, t.last.Load()).Sub(start).Seconds()
	p50, p99, mx := t.percentiles()
	return Result{Mode: "max", N: n, Seconds: secs, MsgPerS: float64(n) / secs,
		P50Ms: p50, P99Ms: p99, MaxMs: mx, RSSMiB: rss, Dups: t.dups.Load(),
		CPUMsPer1k: float64((cpu1 - cpu0).Microseconds()) / float64(n)}, nil
}

// Rate publishes at a fixed rate for d, one message per call, and reports the
// publish-to-handle latency.
func Rate(ctx context.Context, t *Tracker, publish PublishFunc, rate float64,
	d time.Duration) (Result, error) {
	n := int64(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for id := range n {
		if sleepFor := time.Until(start.Add(time.Duration(id) * interval)); sleepFor > 0 {
			time.Sleep(sleepFor)
		}
		if err := publish(id); err != nil {
			return Result{}, fmt.Errorf("publish: %w", err)
		}
	}
	if err := wait(ctx, t, 30*time.Second); err != nil {
		return Result{}, err
	}
	rss, _ := usage()
	p50, p99, mx := t.percentiles()
	return Result{Mode: "rate", Rate: rate, N: n, Seconds: d.Seconds(), MsgPerS: rate,
		P50Ms: p50, P99Ms: p99, MaxMs: mx, RSSMiB: rss, Dups: t.dups.Load()}, nil
}

func wait(ctx context.Context, t *Tracker, limit time.Duration) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-t.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w: %d of %d", errTimeout, t.count.Load(), t.n)
	}
}

// nowFunc is the clock of published events.
var nowFunc = time.Now
