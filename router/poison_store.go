package router

import (
	"context"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// poisonStore keeps each poisoned message for operators to list, replay or
// discard. It is a system handler: when it fails its message is nacked and
// redelivered, never poisoned again.
type poisonStore struct{ db *store.DB }

func newPoisonStore(db *store.DB) job.Handler { return poisonStore{db: db} }

func (p poisonStore) Handle(ctx context.Context, msg job.Message) error {
	md := msg.Metadata
	first, err := time.Parse(time.RFC3339Nano, md[job.MetaPoisonFirstFailedAt])
	if err != nil {
		first = now()
	}
	id := md["message_id"]
	if id == "" {
		id = msg.ID
	}
	rec := store.PoisonRecord{
		ID:            msg.ID,
		MessageID:     id,
		Topic:         md[job.MetaPoisonSourceTopic],
		Handler:       md[job.MetaPoisonHandler],
		ErrorClass:    md[job.MetaPoisonErrorClass],
		Reason:        md[job.MetaPoisonReason],
		Attempts:      job.Attempts(md),
		FirstFailedAt: first,
		RawPayload:    string(msg.Payload),
		Metadata:      md,
	}
	return p.db.SavePoison(ctx, rec, now())
}
