// Package bench measures Millrace's router against a bare Watermill router on
// the same transport, with the method and output of the peers benchmark
// (../shared/peers-bench): N messages of about 100 bytes carrying their
// publish time, throughput from the first publish to the last delivery, and
// the process's CPU per message.
package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is one measured row, in the peers benchmark's RESULT format.
type Result struct {
	Key        string  `json:"key"`
	Group      string  `json:"group"`
	System     string  `json:"system"`
	Variant    string  `json:"variant"`
	Mode       string  `json:"mode"`
	Rate       float64 `json:"rate,omitempty"`
	N          int64   `json:"n"`
	Seconds    float64 `json:"seconds"`
	MsgPerS    float64 `json:"msg_per_s"`
	P50Ms      float64 `json:"p50_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
	MaxMs      float64 `json:"max_ms,omitempty"`
	RSSMiB     float64 `json:"rss_mib,omitempty"`
	CPUMsPer1k float64 `json:"cpu_ms_per_1k,omitempty"`
	Dups       int64   `json:"dups,omitempty"`
	Lost       int64   `json:"lost,omitempty"`
	Note       string  `json:"note,omitempty"`
	// IdleStmtPerS is the statements per second the client sends while
	// idle, and IdleTxPerS the transactions it begins; HasIdle marks a row
	// that measured them.
	IdleStmtPerS float64 `json:"idle_stmt_per_s,omitempty"`
	IdleTxPerS   float64 `json:"idle_tx_per_s,omitempty"`
	HasIdle      bool    `json:"has_idle,omitempty"`
}

// Line returns r as a "RESULT {json}" line.
func (r Result) Line() string {
	b, _ := json.Marshal(r)
	return "RESULT " + string(b)
}

// Payload returns the benchmark message body for id, stamped now.
func Payload(id int64) []byte {
	b := make([]byte, 0, 112)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	b = append(b, `,"pad":"`...)
	for range 64 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// Tracker records deliveries: count, duplicates, the time of the last one and
// the publish-to-handle latency of each.
type Tracker struct {
	n        int64
	seen     []atomic.Bool
	count    atomic.Int64
	dups     atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
	last     atomic.Int64
	complete chan struct{}
	once     sync.Once
}

// NewTracker tracks ids 0..n-1.
func NewTracker(n int64) *Tracker {
	return &Tracker{n: n, seen: make([]atomic.Bool, n), complete: make(chan struct{}),
		lat: make([]time.Duration, 0, n)}
}

// Observe records the delivery of a benchmark payload.
func (t *Tracker) Observe(payload []byte) error {
	var p struct {
		ID int64 `json:"id"`
		TS int64 `json:"ts"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	now := time.Now()
	if p.ID < 0 || p.ID >= t.n {
		return nil // warm-up messages carry ids past n
	}
	if t.seen[p.ID].Swap(true) {
		t.dups.Add(1)
		return nil
	}
	t.mu.Lock()
	t.lat = append(t.lat, now.Sub(time.Unix(0, p.TS)))
	t.mu.Unlock()
	t.last.Store(now.UnixNano())
	if t.count.Add(1) == t.n {
		t.once.Do(func() { close(t.complete) })
	}
	return nil
}

// Done is closed when every id was delivered.
func (t *Tracker) Done() <-chan struct{} { return t.complete }

// percentiles returns p50, p99 and max latency in milliseconds.
func (t *Tracker) percentiles() (p50, p99, maxMs float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lat) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(t.lat)
	slices.Sort(s)
	at := func(q float64) float64 {
		return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
	}
	return at(.50), at(.99), at(1)
}

// usage returns peak RSS in MiB and the process's CPU time so far.
func usage() (float64, time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return float64(ru.Maxrss) / 1024, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
