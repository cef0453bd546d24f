-- Schema: a worker rented from a provider (mibera-job worker rent): which
-- provider, the instance id there, when it was rented and how many hours
-- it may live (0: no limit). The price per hour it was rented at is its
-- cost_per_hour. NULL provider: a box someone else runs (worker add).
ALTER TABLE workers ADD COLUMN provider TEXT;
ALTER TABLE workers ADD COLUMN instance_id TEXT;
ALTER TABLE workers ADD COLUMN rented_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN max_hours REAL NOT NULL DEFAULT 0;
