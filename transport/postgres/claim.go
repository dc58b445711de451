package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// claimSQL claims up to $2 available messages of subscription $1, lowest id
// first, walking the primary key (subscription_id, id). SKIP LOCKED lets
// subscriptions of one group claim side by side. With ordering on, a row
// whose partition key has an earlier row still present (pending or in
// flight: acked rows are deleted) is passed over, so one key is never in
// flight twice and its messages go out in id order; the check is a probe of
// the partial index on (subscription_id, partition_key, id).
const claimSQL = `WITH picked AS (
	SELECT q.id FROM millrace_queue q
	WHERE q.subscription_id = $1
		AND (q.locked_until IS NULL OR q.locked_until < now())
		%s
	ORDER BY q.id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE millrace_queue q
SET locked_until = now() + $3 * interval '1 millisecond', claimed_by = $4,
	attempts = q.attempts + 1
FROM picked
WHERE q.subscription_id = $1 AND q.id = picked.id
RETURNING q.id, q.uuid, q.payload, q.metadata`

const keyOrderSQL = `AND (q.partition_key IS NULL OR NOT EXISTS (
			SELECT 1 FROM millrace_queue p
			WHERE p.subscription_id = q.subscription_id
				AND p.partition_key = q.partition_key AND p.id < q.id))`

var (
	claimOrderedSQL   = fmt.Sprintf(claimSQL, keyOrderSQL)
	claimUnorderedSQL = fmt.Sprintf(claimSQL, "")
)

// dbContext bounds one queue statement. It is not the subscription's
// context, so that acks and hand-backs still run while it closes.
func (s *subscription) dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.t.cfg.PublishTimeout)
}

func (s *subscription) claimRows(limit int) ([]claimed, error) {
	q := claimOrderedSQL
	if s.s.cfg.Unordered {
		q = claimUnorderedSQL
	}
	ctx, cancel := s.dbContext()
	defer cancel()
	rows, err := s.t.pool.Query(ctx, q, s.id, limit, s.t.cfg.Lease.Milliseconds(), s.token)
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	defer rows.Close()
	var got []claimed
	for rows.Next() {
		var (
			id       int64
			uuid     string
			payload  []byte
			metadata []byte
		)
		if err := rows.Scan(&id, &uuid, &payload, &metadata); err != nil {
			return nil, fmt.Errorf("read claimed message: %w", err)
		}
		m := message.NewMessage(uuid, payload)
		if err := json.Unmarshal(metadata, &m.Metadata); err != nil {
			return nil, fmt.Errorf("decode metadata of %s: %w", uuid, err)
		}
		got = append(got, claimed{id: id, msg: m})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.id, b.id) })
	return got, nil
}

// releaseSQL hands rows back while this subscription still holds them and,
// if asked, tells the other processes they are there.
const releaseSQL = `WITH r AS (
	UPDATE millrace_queue SET locked_until = NULL, claimed_by = NULL
	WHERE subscription_id = $1 AND id = ANY($2) AND claimed_by = $3
	RETURNING 1
)
SELECT pg_notify('` + NotifyChannel + `', $4) FROM (SELECT 1 FROM r LIMIT 1) AS x WHERE $5`

// release makes ids available again at once. A failure is logged: the
// leases then run out instead.
func (s *subscription) release(ids []int64, notify bool) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := s.dbContext()
	defer cancel()
	_, err := s.t.pool.Exec(ctx, releaseSQL, s.id, ids, s.token, s.topic, notify)
	if err != nil {
		s.t.log.WarnContext(s.ctx, "hand back messages failed, their leases will expire",
			"topic", s.topic, "group", s.s.group, "count", len(ids), "error", err.Error())
	}
}

// renew extends the leases of every row the subscription holds.
func (s *subscription) renew() {
	ids := make([]int64, 0, len(s.buffer)+len(s.inflight))
	for _, c := range s.buffer {
		ids = append(ids, c.id)
	}
	for id := range s.inflight {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := s.dbContext()
	defer cancel()
	_, err := s.t.pool.Exec(ctx, `UPDATE millrace_queue
		SET locked_until = now() + $4 * interval '1 millisecond'
		WHERE subscription_id = $1 AND id = ANY($2) AND claimed_by = $3`,
		s.id, ids, s.token, s.t.cfg.Lease.Milliseconds())
	if err != nil {
		s.t.log.WarnContext(s.ctx, "renew leases failed",
			"topic", s.topic, "group", s.s.group, "error", err.Error())
	}
}

// deleteAcked deletes acked rows, trying three times. If every try fails the
// rows' leases run out and they are delivered again, which handlers
// deduplicate. An acked row is deleted whoever holds it now: it was handled.
func (s *subscription) deleteAcked(ids []int64) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		ctx, cancel := s.dbContext()
		_, err = s.t.pool.Exec(ctx,
			`DELETE FROM millrace_queue WHERE subscription_id = $1 AND id = ANY($2)`, s.id, ids)
		cancel()
		if err == nil {
			return
		}
	}
	s.t.log.WarnContext(s.ctx, "ack failed, the messages will be delivered again",
		"topic", s.topic, "group", s.s.group, "count", len(ids), "error", err.Error())
}
