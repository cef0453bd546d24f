-- Schema version 3: where the coordinator stopped reading each worker
-- step's journal. A job step may follow several worker steps (quantize
-- runs one per type), each with its own journal, so the offset belongs to
-- the worker step, not to the job's step.
CREATE TABLE follows (
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	wstep TEXT NOT NULL,
	offset INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (job_id, wstep)
);
-- The steps that follow one worker step of their own name keep their place.
INSERT INTO follows (job_id, wstep, offset)
	SELECT job_id, name, follow_offset FROM steps
	WHERE follow_offset > 0 AND name IN ('fetch', 'convert', 'manifest');
