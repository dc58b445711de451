-- +goose Up
-- (Postgres twin of migrations/sqlite/00010_cron_slot_kind.sql.)
-- A row of cron_slots is either a tick that was published ('fired') or a
-- marker that records where a schedule stands without publishing anything:
-- 'baseline' when a new schedule is first seen, 'skipped' when a schedule
-- whose catch-up policy is skip resumes after downtime. Markers carry an
-- empty message_uuid.
ALTER TABLE cron_slots ADD COLUMN kind TEXT NOT NULL DEFAULT 'fired';

-- +goose Down
ALTER TABLE cron_slots DROP COLUMN kind;
