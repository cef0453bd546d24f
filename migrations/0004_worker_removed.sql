-- Schema version 4: a worker that ran jobs is kept when it is removed, so
-- its jobs keep their history (worker, price, time); it is renamed aside
-- ("name~ID") so the name can be used again, and lists leave it out.
ALTER TABLE workers ADD COLUMN removed_at INTEGER;
