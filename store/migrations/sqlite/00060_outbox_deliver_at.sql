-- +goose Up
-- deliver_at holds an outbox row back until then: a handler's retry with a
-- long backoff is scheduled here, so that no subscriber sleeps on it. NULL
-- means as soon as possible.
ALTER TABLE outbox ADD COLUMN deliver_at TIMESTAMP;

-- +goose Down
ALTER TABLE outbox DROP COLUMN deliver_at;
