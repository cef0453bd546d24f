-- Schema version 2: what the coordinator needs to share workers between
-- jobs and to act on idle workers.
ALTER TABLE workers ADD COLUMN max_jobs INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workers ADD COLUMN last_active_at INTEGER;	-- a job last held it
ALTER TABLE workers ADD COLUMN idle_ran_at INTEGER;	-- the idle command ran
CREATE INDEX jobs_worker_state ON jobs(worker_id, state);
CREATE INDEX events_type ON events(job_id, type, id);
