package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store/demo"
)

// usageDepth is the queue-depth series of the usage aggregate's group on
// /metrics, less its value.
const usageDepth = `millrace_queue_depth{group="millrace.usageAggregate",` +
	`topic="platform.usage.recorded"} `

// ingestRecord is what one POST of a usage event came back with.
type ingestRecord struct {
	i      int
	status int // 0 when the request itself failed
	sent   time.Time
	took   time.Duration
}

// streamer posts usage events 0, 1, 2... one after the other, from its own
// goroutine, until stopped, and records every answer: the test watches it
// while the brokers go away and come back.
type streamer struct {
	in *instance

	mu      sync.Mutex
	records []ingestRecord
	stop    chan struct{}
	done    chan struct{}
}

func startStreamer(in *instance) *streamer {
	s := &streamer{in: in, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *streamer) run() {
	defer close(s.done)
	client := &http.Client{Timeout: 30 * time.Second}
	url := "http://" + s.in.addr + "/v1/events/" + usageTopic
	for i := 0; ; i++ {
		select {
		case <-s.stop:
			return
		default:
		}
		r := ingestRecord{i: i, sent: time.Now()}
		resp, err := client.Post(url, "application/json", strings.NewReader(usageEvent(i)))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.status = resp.StatusCode
		}
		r.took = time.Since(r.sent)
		s.mu.Lock()
		s.records = append(s.records, r)
		s.mu.Unlock()
	}
}

// count returns how many answers with status were recorded for events sent
// at or after from.
func (s *streamer) count(status int, from time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.records {
		if r.status == status && !r.sent.Before(from) {
			n++
		}
	}
	return n
}

// finish stops the streamer and returns every record.
func (s *streamer) finish() []ingestRecord {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ingestRecord(nil), s.records...)
}

// metrics returns the /metrics page, or "" when the request fails.
func (in *instance) metrics() string {
	resp, err := http.Get("http://" + in.addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ""
	}
	return string(b)
}

func TestKafkaBrokerOutageUnderLoad(t *testing.T) {
	c := newKafkaCluster(t, 3)
	in := c.replica(t, "outage")
	_, logs := in.serve(t)
	s := startStreamer(in)
	defer func() {
		select {
		case <-s.done:
		default:
			s.finish()
		}
	}()
	begin := time.Now()
	require.Eventually(t, func() bool { return s.count(http.StatusAccepted, begin) >= 50 },
		20*time.Second, 10*time.Millisecond, "the stream never got going: %s", logs)

	down := time.Now()
	c.kafka.Down()
	require.Eventually(t, func() bool { return in.readyz() == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond, "/readyz stayed up with every broker down")
	t.Logf("/readyz answered 503 %s after the brokers went down", time.Since(down))
	require.Eventually(t, func() bool {
		return s.count(http.StatusServiceUnavailable, down) >= 3
	}, 40*time.Second, 50*time.Millisecond, "ingest never refused an event with the brokers down")
	// The group's lag cannot be known with the cluster away.
	scrape := time.Now()
	page := in.metrics()
	t.Logf("/metrics scraped in %s with the brokers down", time.Since(scrape))
	require.Contains(t, page, usageDepth+"-1")

	up := time.Now()
	t.Logf("brokers down for %s", up.Sub(down))
	require.NoError(t, c.kafka.Up())
	require.Eventually(t, func() bool { return in.readyz() == http.StatusOK },
		20*time.Second, 50*time.Millisecond, "/readyz never came back: %s", logs)
	ready := time.Now()
	t.Logf("/readyz answered 200 %s after the brokers came back", ready.Sub(up))
	require.Eventually(t, func() bool { return s.count(http.StatusAccepted, ready) >= 50 },
		30*time.Second, 10*time.Millisecond, "ingest did not take events again: %s", logs)
	records := s.finish()
	t.Logf("50 events accepted %s after /readyz recovered", time.Since(ready))

	stopped := time.Now()
	accepted, refused := summarise(t, records, down, ready)
	require.NotEmpty(t, refused)
	// A lag of 0 means every record on the topic, in-doubt ones included,
	// has been handled and committed: the rows checked next are final.
	require.Eventually(t, func() bool {
		return strings.Contains(in.metrics(), usageDepth+"0\n")
	}, 45*time.Second, 200*time.Millisecond, "the usage group's lag never came down to 0")
	t.Logf("usage lag 0 %s after the stream stopped", time.Since(stopped))
	c.checkRecorded(t, accepted, refused)
}

// summarise logs how ingest answered around the outage, and returns the
// events accepted and refused. Every answer is 202 or 503: no request may
// fail or hang without one.
func summarise(t *testing.T, records []ingestRecord, down, ready time.Time) (
	accepted, refused []int) {
	t.Helper()
	var slowest, refusedTook time.Duration
	for _, r := range records {
		require.Contains(t, []int{http.StatusAccepted, http.StatusServiceUnavailable}, r.status,
			"event %d", r.i)
		switch r.status {
		case http.StatusAccepted:
			accepted = append(accepted, r.i)
		case http.StatusServiceUnavailable:
			refused = append(refused, r.i)
			refusedTook += r.took
			slowest = max(slowest, r.took)
		}
	}
	var during, after, refusedReady int
	var firstAfter time.Time
	for _, r := range records {
		switch {
		case r.sent.Before(down):
		case r.status == http.StatusAccepted && r.sent.Before(ready):
			during++
		case r.status == http.StatusAccepted:
			after++
			if firstAfter.IsZero() {
				firstAfter = r.sent.Add(r.took)
			}
		case !r.sent.Before(ready):
			refusedReady++
		}
	}
	var runs []string
	for k := 0; k < len(records); {
		j := k
		for j < len(records) && records[j].status == records[k].status {
			j++
		}
		runs = append(runs, fmt.Sprintf("%d x %d from %+.1fs", j-k, records[k].status,
			records[k].sent.Sub(down).Seconds()))
		k = j
	}
	t.Logf("timeline (relative to down): %s", strings.Join(runs, ", "))
	t.Logf("after /readyz recovered: %d events refused, first acceptance %s later",
		refusedReady, firstAfter.Sub(ready))
	avg := time.Duration(0)
	if len(refused) > 0 {
		avg = refusedTook / time.Duration(len(refused))
	}
	t.Logf("%d events posted: %d accepted (%d sent while the brokers were down, %d after "+
		"/readyz recovered), %d refused with 503 (mean %s, slowest %s)", len(records),
		len(accepted), during, after, len(refused), avg, slowest)
	return accepted, refused
}

// checkRecorded checks that each accepted event is recorded exactly once
// and the aggregate counts the recorded events once each. A refused event
// may still be recorded, when its publish reached a broker but the answer
// did not come back in time: such events are logged, not failed.
func (c *kafkaCluster) checkRecorded(t *testing.T, accepted, refused []int) {
	t.Helper()
	ctx := context.Background()
	recorded := map[string]int{}
	q, err := c.db.QueryContext(ctx, `SELECT source_event_id, count(*) FROM usage_events
		WHERE organisation_id = $1 AND metric = 'esign.envelopes_sent'
		GROUP BY source_event_id`, demo.OrganisationID)
	require.NoError(t, err)
	for q.Next() {
		var id string
		var n int
		require.NoError(t, q.Scan(&id, &n))
		recorded[id] = n
	}
	require.NoError(t, q.Err())
	require.NoError(t, q.Close())
	for id, n := range recorded {
		require.Equal(t, 1, n, "event %s recorded %d times", id, n)
	}
	var want int64
	for _, i := range accepted {
		id := fmt.Sprintf("stream-%d", i)
		require.Equal(t, 1, recorded[id], "accepted event %s recorded %d times", id, recorded[id])
		want += int64(i%5 + 1)
	}
	var inDoubt []int
	for _, i := range refused {
		if recorded[fmt.Sprintf("stream-%d", i)] > 0 {
			inDoubt = append(inDoubt, i)
			want += int64(i%5 + 1)
		}
	}
	if len(inDoubt) > 0 {
		t.Logf("refused with 503 yet recorded (the publish reached a broker): %v", inDoubt)
	}
	require.Equal(t, len(accepted)+len(inDoubt), len(recorded),
		"only the accepted events, and refused ones that reached a broker, are recorded")
	var total int64
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT quantity FROM usage_aggregates
		WHERE organisation_id = $1 AND metric = 'esign.envelopes_sent'`, demo.OrganisationID).
		Scan(&total))
	require.Equal(t, want, total, "every recorded event counted exactly once")
}
