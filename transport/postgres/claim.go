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

// claimSQL claims up to $2 available messages of subscription $1 from id $5
// on (see claimFuncSQL), ordered per partition key when $6.
//
// It commits without waiting for the WAL flush (synchronous_commit off for
// this statement's transaction only). Losing a claim in a Postgres crash
// loses nothing: the rows are available again, and a message already handed
// out is at worst delivered twice, as when a lease runs out. Not waiting
// keeps the consumers' commits out of the publishers' group commits.
const claimSQL = `SELECT msg_id, msg_uuid, msg_payload, msg_metadata, msg_keyed
	FROM set_config('synchronous_commit', 'off', true) AS async,
		millrace_queue_claim($1, $2, $3, $4, $5, $6)`

// ackSQL deletes acked rows, committing like claimSQL without waiting for
// the WAL flush. A Postgres crash can then lose the acks of roughly the last
// three wal_writer_delay (600 ms by default) before it: those messages are
// delivered again, and handlers deduplicate them by their idempotency claim,
// which commits synchronously in the handler's own transaction. Messages
// themselves are never lost: publishes commit synchronously.
const ackSQL = `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
DELETE FROM millrace_queue
WHERE subscription_id = $1 AND id = ANY($2) AND EXISTS (SELECT FROM async)`

// dbContext bounds one queue statement. It is not the subscription's
// context, so that acks and hand-backs still run while it closes.
func (s *subscription) dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.t.cfg.PublishTimeout)
}

func (s *subscription) claimRows(limit int, from int64) ([]claimed, error) {
	ctx, cancel := s.dbContext()
	defer cancel()
	rows, err := s.t.cpool.Query(ctx, claimSQL, s.id, limit, s.t.cfg.Lease.Milliseconds(),
		s.token, from, !s.s.cfg.Unordered)
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
			keyed    bool
		)
		if err := rows.Scan(&id, &uuid, &payload, &metadata, &keyed); err != nil {
			return nil, fmt.Errorf("read claimed message: %w", err)
		}
		m := message.NewMessage(uuid, payload)
		if err := json.Unmarshal(metadata, &m.Metadata); err != nil {
			return nil, fmt.Errorf("decode metadata of %s: %w", uuid, err)
		}
		got = append(got, claimed{id: id, keyed: keyed, msg: m})
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
	_, err := s.t.cpool.Exec(ctx, releaseSQL, s.id, ids, s.token, s.topic, notify)
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
	_, err := s.t.cpool.Exec(ctx, `UPDATE millrace_queue
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
		_, err = s.t.cpool.Exec(ctx, ackSQL, s.id, ids)
		cancel()
		if err == nil {
			return
		}
	}
	s.t.log.WarnContext(s.ctx, "ack failed, the messages will be delivered again",
		"topic", s.topic, "group", s.s.group, "count", len(ids), "error", err.Error())
}
