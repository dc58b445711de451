package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// subscription is one Subscribe call. One goroutine (run) owns its state:
// it hands out claimed messages while fewer than Concurrency are in flight,
// asks the claimer goroutine for more, renews the leases and hands back
// what it cannot finish. A goroutine per delivered message waits for its
// ack or nack, and the acker deletes acked rows in batches. No transaction
// stays open while a handler runs: a claim, an ack batch and a renewal are
// each one short statement.
type subscription struct {
	s     *Subscriber
	t     *Transport
	topic string
	id    int32  // millrace_queue_subscriptions.id
	token string // claimed_by of the rows this subscription holds

	ctx       context.Context // the Subscribe call's
	msgCtx    context.Context // parent of delivered messages' contexts
	msgCancel context.CancelFunc

	out       chan *message.Message
	wakeC     chan struct{}
	results   chan result
	acks      chan int64
	stop      chan struct{}
	stopOnce  sync.Once
	abandon   chan struct{} // closed when the close wait runs out
	ackerDone chan struct{}
	done      chan struct{}

	claimReq chan claimAsk
	claimRes chan claimResult
	claims   atomic.Int64 // claims run, for tests
	claiming bool         // a claim is running
	stale    bool         // a nack came while it ran

	// from is where the next claim starts scanning the subscription's ids.
	// While claims come back full (a backlog) each starts after the last
	// row the previous one took, instead of stepping again over the index
	// entries of every row acked since the last vacuum, which made a claim
	// cost grow with the rows drained. It goes back to 0 (a full scan) when
	// a claim comes back short, on a nack, on the fallback poll and when
	// rescan is set; an ack of a keyed message lowers it to that message,
	// whose successor has just become claimable.
	from   int64
	rescan atomic.Bool // a publish or hand-back may have put rows below from
	// extra is how far the adaptive prefetch has grown above Prefetch;
	// lastFull says the previous claim came back full; handed counts the
	// messages handed out since the last lease renewal.
	extra    int
	lastFull bool
	handed   int

	buffer   []claimed      // claimed, not yet handed out, in id order
	inflight map[int64]bool // handed out, not yet acked or nacked; true if keyed
}

type claimed struct {
	id     int64
	keyed  bool // the message has a partition key
	msg    *message.Message
	cancel context.CancelFunc // ends msg's context
}

type claimAsk struct {
	n    int
	from int64
}

type result struct {
	id    int64
	acked bool
}

// poke wakes the subscription without blocking.
func (s *subscription) poke() {
	select {
	case s.wakeC <- struct{}{}:
	default:
	}
}

func (s *subscription) run() {
	defer close(s.done)
	go s.ackLoop()
	go s.claimLoop()
	poll := time.NewTicker(s.t.cfg.PollInterval)
	defer poll.Stop()
	renew := time.NewTicker(s.t.cfg.Lease / 3)
	defer renew.Stop()
	more := true // there may be messages to claim
	var (
		lastClaim time.Time
		gap       <-chan time.Time // a claim waits for the end of claimGap
	)
	for {
		if more && !s.claiming && gap == nil {
			if n := s.claimSize(); n > 0 {
				if wait := claimGap - time.Since(lastClaim); wait > 0 && !s.lastFull {
					gap = time.After(wait)
				} else {
					if s.rescan.Swap(false) {
						s.from = 0
					}
					s.claimReq <- claimAsk{n: n, from: s.from}
					s.claiming, more, lastClaim = true, false, time.Now()
				}
			}
		}
		var send chan<- *message.Message
		var next *message.Message
		if len(s.buffer) > 0 && len(s.inflight) < s.s.cfg.Concurrency && !s.ending() {
			s.prepare(&s.buffer[0])
			send, next = s.out, s.buffer[0].msg
		}
		select {
		case send <- next:
			s.handedOut()
		case c := <-s.claimRes:
			more = s.claimed(c) || more
		case r := <-s.results:
			more = s.settle(r) || more
		case <-s.wakeC:
			more = true
		case <-gap:
			gap = nil
		case <-poll.C:
			more, s.from = true, 0
		case <-renew.C:
			s.shrinkIfStuck()
			s.renew()
		case <-s.ctx.Done():
			s.drain()
			return
		case <-s.stop:
			s.drain()
			return
		}
	}
}

// claimGap and ackGap are the least time between the starts of two claims,
// or two ack deletes, of a subscription, unless a backlog is being drained
// (claims come back full). A stream of publishes then costs a claim and a
// delete per gap, each for every message that came meanwhile, rather than
// per message, which kept Postgres busy committing for the consumers while
// the publishers waited; a message waits at most claimGap more. At 200
// messages a second they are 5 ms apart and nothing waits.
const (
	claimGap = time.Millisecond
	ackGap   = time.Millisecond
)

// ending reports whether the subscription was told to stop, so that the
// loop hands out nothing more even when a hand-out is ready beside the stop.
func (s *subscription) ending() bool {
	select {
	case <-s.ctx.Done():
		return true
	case <-s.stop:
		return true
	default:
		return false
	}
}

// claimSize is how many messages to claim now: none until half the room is
// free, so that claims come in batches, unless nothing is left to hand out.
func (s *subscription) claimSize() int {
	capacity := s.capacity()
	room := capacity - len(s.buffer) - len(s.inflight)
	if room <= 0 || (len(s.buffer) > 0 && 2*room < capacity) {
		return 0
	}
	return room
}

// capacity is how many messages the subscription holds at most, in flight
// and claimed ahead.
func (s *subscription) capacity() int {
	return s.s.cfg.Concurrency + s.s.cfg.Prefetch + s.extra
}

// grow doubles the prefetch, up to MaxPrefetch.
func (s *subscription) grow() {
	c := s.s.cfg
	s.extra = min(c.MaxPrefetch, 2*(c.Prefetch+s.extra)+c.Concurrency) - c.Prefetch
}

// claimLoop runs the claims the subscription asks for, so that handing out
// messages never waits for one.
func (s *subscription) claimLoop() {
	for ask := range s.claimReq {
		rows, err := s.claimRows(ask.n, ask.from)
		s.claims.Add(1)
		s.claimRes <- claimResult{rows: rows, err: err, asked: ask.n}
	}
}

type claimResult struct {
	rows  []claimed
	err   error
	asked int
}

// claimed takes a claim's rows into the buffer, or hands them straight back
// when a nack came while the claim ran (the nacked message goes first). It
// reports whether there may be more to claim.
//
// A full claim after a full one that finds the handlers idle (nothing left
// to hand out and room in flight) means there is a backlog and the handlers
// outrun the claims: the prefetch grows. (The first claim after a quiet
// spell always finds them idle; that alone says nothing, and growing on it
// would let one subscriber take a burst its group could share.) A short
// claim means the backlog is gone: the prefetch shrinks back and the next
// claim scans from the start.
func (s *subscription) claimed(c claimResult) bool {
	s.claiming = false
	if c.err != nil {
		s.t.log.WarnContext(s.ctx, "claim messages failed, will poll again",
			"topic", s.topic, "group", s.s.group, "error", c.err.Error())
		s.from = 0
		return false
	}
	if s.stale {
		s.stale = false
		s.release(ids(c.rows), false)
		s.from = 0
		return true
	}
	starved := len(s.buffer) == 0 && len(s.inflight) < s.s.cfg.Concurrency
	s.buffer = append(s.buffer, c.rows...)
	full := len(c.rows) == c.asked
	if !full || len(c.rows) == 0 {
		s.from, s.extra, s.lastFull = 0, 0, false
		return false
	}
	s.from = c.rows[len(c.rows)-1].id + 1
	if starved && s.lastFull {
		s.grow()
	}
	s.lastFull = true
	return true
}

func ids(rows []claimed) []int64 {
	out := make([]int64, len(rows))
	for i, c := range rows {
		out[i] = c.id
	}
	return out
}

// prepare gives c's message a context of its own before it is handed out.
func (s *subscription) prepare(c *claimed) {
	if c.cancel == nil {
		ctx, cancel := context.WithCancel(s.msgCtx)
		c.msg.SetContext(ctx)
		c.cancel = cancel
	}
}

// handedOut moves the head of the buffer in flight and waits for its
// outcome in its own goroutine.
func (s *subscription) handedOut() {
	c := s.buffer[0]
	s.buffer[0] = claimed{}
	s.buffer = s.buffer[1:]
	s.inflight[c.id] = c.keyed
	s.handed++
	go s.await(c)
}

// shrinkIfStuck hands back what the adaptive prefetch claimed beyond
// Prefetch when nothing was handed out for a third of the lease: the
// handlers that outran the claims have slowed down or stopped (a failing
// dependency, retries), and those messages are better off with another
// replica than waiting here behind them.
func (s *subscription) shrinkIfStuck() {
	stuck := s.handed == 0
	s.handed = 0
	keep := s.s.cfg.Prefetch
	if !stuck || len(s.buffer) <= keep {
		return
	}
	var back []int64
	for _, c := range s.buffer[keep:] {
		if c.cancel != nil {
			c.cancel()
		}
		back = append(back, c.id)
	}
	clear(s.buffer[keep:])
	s.buffer = s.buffer[:keep]
	s.extra, s.lastFull, s.from = 0, false, 0
	s.release(back, true)
}

// await reports the message's ack or nack and ends its context.
func (s *subscription) await(c claimed) {
	defer c.cancel()
	var r result
	select {
	case <-c.msg.Acked():
		r = result{id: c.id, acked: true}
	case <-c.msg.Nacked():
		r = result{id: c.id}
	case <-s.abandon:
		return
	}
	select {
	case s.results <- r:
	case <-s.abandon:
	}
}

// settle records an outcome. An ack goes to the acker; a nack hands the
// message back at once together with the prefetched ones, so that the next
// claim takes it again first and a lone subscriber keeps the publish order.
// It reports whether a claim should follow.
func (s *subscription) settle(r result) bool {
	keyed := s.inflight[r.id]
	delete(s.inflight, r.id)
	if r.acked {
		if keyed && !s.s.cfg.Unordered {
			s.from = min(s.from, r.id)
		}
		s.acks <- r.id
		return false
	}
	s.release(append(s.dropBuffer(), r.id), false)
	s.stale = s.claiming
	s.from = 0
	return true
}

// dropBuffer empties the buffer and returns the ids it held.
func (s *subscription) dropBuffer() []int64 {
	ids := make([]int64, 0, len(s.buffer)+1)
	for _, c := range s.buffer {
		if c.cancel != nil {
			c.cancel()
		}
		ids = append(ids, c.id)
	}
	s.buffer = nil
	return ids
}

// drain stops handing out messages: it hands back the prefetched ones, waits
// up to CloseTimeout for those in flight, then ends their contexts, hands
// them back and closes the channel.
func (s *subscription) drain() {
	s.t.unwatch(s.topic, s)
	if s.claiming {
		if c := <-s.claimRes; c.err == nil {
			s.release(ids(c.rows), true)
		}
		s.claiming = false
	}
	close(s.claimReq)
	s.release(s.dropBuffer(), true)
	wait := time.NewTimer(s.t.cfg.CloseTimeout)
	defer wait.Stop()
	for len(s.inflight) > 0 {
		select {
		case r := <-s.results:
			s.settle(r)
			continue
		case <-wait.C:
		}
		break
	}
	close(s.abandon)
	s.msgCancel()
	for len(s.results) > 0 { // outcomes that came with the timeout
		s.settle(<-s.results)
	}
	ids := make([]int64, 0, len(s.inflight))
	for id := range s.inflight {
		ids = append(ids, id)
	}
	s.release(ids, true)
	close(s.acks)
	<-s.ackerDone
	close(s.out)
}

// ackLoop deletes acked rows, batching the acks that arrive while a delete
// runs, and wakes the subscription afterwards: the next message of a
// partition key becomes claimable only once the previous one is deleted.
func (s *subscription) ackLoop() {
	defer close(s.ackerDone)
	var pending []int64
	for {
		id, ok := <-s.acks
		if !ok {
			return
		}
		pending = append(pending[:0], id)
		closed := false
	collect:
		for {
			select {
			case id, ok := <-s.acks:
				if !ok {
					closed = true
					break collect
				}
				pending = append(pending, id)
			default:
				break collect
			}
		}
		started := time.Now()
		s.deleteAcked(pending)
		s.poke()
		if closed {
			return
		}
		time.Sleep(ackGap - time.Since(started))
	}
}
