package postgres

import (
	"context"
	"sync"
	"time"
)

// notifySQL notifies NotifyChannel once per topic in $1, in a statement of
// its own that writes nothing, so it commits without a WAL flush.
const notifySQL = `SELECT pg_notify('` + NotifyChannel + `', t) FROM unnest($1::text[]) AS t`

// notifier tells other processes that topics got messages, on behalf of the
// transport's own publisher. Postgres serialises the commits of
// transactions that sent a NOTIFY, holding one lock across the WAL flush,
// so a NOTIFY inside every publish made concurrent publishers commit one at
// a time (about 300 messages/s with 4 publishers). The publisher instead
// commits its INSERT alone, which group commit can share, wakes this
// process's subscriptions itself and marks the topic here; one goroutine
// sends the marked topics in one statement, and the topics marked while it
// runs go in the next, so a burst costs a notification per round trip, not
// per message. Other processes hear of a publish one round trip after its
// commit. PublishTx and PublishPgxTx still notify in the caller's
// transaction: only the commit knows whether there is anything to tell.
type notifier struct {
	t     *Transport
	mu    sync.Mutex
	dirty map[string]struct{}
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func newNotifier(t *Transport) *notifier {
	n := &notifier{t: t, dirty: map[string]struct{}{}, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// mark queues a notification of topic without waiting for it.
func (n *notifier) mark(topic string) {
	n.mu.Lock()
	n.dirty[topic] = struct{}{}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// notifyGap is the pause after each notification, during which marks
// gather for the next: other processes hear of a publish at most this much
// later, and a stream of publishes costs at most one notification per gap.
const notifyGap = 3 * time.Millisecond

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.flush()
		case <-n.stop:
			n.flush()
			return
		}
		select {
		case <-time.After(notifyGap):
		case <-n.stop:
			n.flush()
			return
		}
	}
}

// flush sends the marked topics. A failure is logged and not retried: the
// other processes' fallback poll finds the messages.
func (n *notifier) flush() {
	n.mu.Lock()
	topics := make([]string, 0, len(n.dirty))
	for tp := range n.dirty {
		topics = append(topics, tp)
	}
	clear(n.dirty)
	n.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.t.cfg.PublishTimeout)
	defer cancel()
	if _, err := n.t.cpool.Exec(ctx, notifySQL, topics); err != nil {
		n.t.log.WarnContext(ctx, "notify other processes failed, they will poll",
			"topics", topics, "error", err.Error())
	}
}

// close sends what is marked and stops.
func (n *notifier) close() {
	close(n.stop)
	<-n.done
}
