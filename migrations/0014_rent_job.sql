-- Schema: a worker rented for one job (mibera-job submit --rent): its
-- instance is destroyed once that job has ended (succeeded, failed or
-- cancelled) rather than after an idle wait. 0: rented for no one job.
ALTER TABLE workers ADD COLUMN rent_job_id INTEGER NOT NULL DEFAULT 0;
