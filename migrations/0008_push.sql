-- Schema version 8: a job may end by pushing its artifacts to a model
-- repository on the hub (submit --push ORG/NAME [--private]); NULL: not.
ALTER TABLE jobs ADD COLUMN push_repo TEXT;
ALTER TABLE jobs ADD COLUMN push_private INTEGER NOT NULL DEFAULT 0;
