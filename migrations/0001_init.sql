-- The job database, schema version 1. Migrations are append-only: a new
-- file NNNN_name.sql for every change, never an edit of a landed one.
-- Times are Unix seconds; JSON columns hold what the worker reported.

CREATE TABLE workers (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	target TEXT NOT NULL,		-- "local", "[user@]host[:port]" or an ssh alias
	dir TEXT NOT NULL,		-- the worker directory on the box
	key_path TEXT,			-- identity file given with --key
	host_key TEXT,			-- pinned known_hosts line (ssh)
	fingerprint TEXT,		-- its "SHA256:..." fingerprint
	agent_path TEXT,		-- a prebuilt mibera-worker (skips bootstrap)
	cost_per_hour REAL NOT NULL DEFAULT 0,
	idle_command TEXT,
	idle_after_s INTEGER,
	state TEXT NOT NULL DEFAULT 'idle',
	hello TEXT,			-- the last hello, JSON
	checked_at INTEGER,
	created_at INTEGER NOT NULL
);

CREATE TABLE jobs (
	id INTEGER PRIMARY KEY,
	source TEXT NOT NULL,		-- org/name[@rev] or a local path
	revision TEXT,
	commit_sha TEXT,
	worker_id INTEGER REFERENCES workers(id),
	quants TEXT NOT NULL,		-- "Q4_K_M,Q3_K_M"
	layout TEXT NOT NULL DEFAULT 'native',
	outtype TEXT NOT NULL DEFAULT 'f16',
	smoke INTEGER NOT NULL DEFAULT 1,
	notify_url TEXT,
	state TEXT NOT NULL DEFAULT 'queued',
	error TEXT,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_try_at INTEGER,
	held_seconds REAL NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	started_at INTEGER,
	finished_at INTEGER
);
CREATE INDEX jobs_state ON jobs(state, id);

CREATE TABLE steps (
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	seq INTEGER NOT NULL,
	state TEXT NOT NULL DEFAULT 'pending',
	attempts INTEGER NOT NULL DEFAULT 0,
	started_at INTEGER,
	finished_at INTEGER,
	follow_offset INTEGER NOT NULL DEFAULT 0,
	result TEXT,
	error TEXT,
	PRIMARY KEY (job_id, name)
);

CREATE TABLE events (
	id INTEGER PRIMARY KEY,
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	step TEXT,
	seq INTEGER,
	at_ms INTEGER NOT NULL,
	type TEXT NOT NULL,
	data TEXT NOT NULL
);
CREATE INDEX events_job ON events(job_id, id);

CREATE TABLE artifacts (
	job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	size INTEGER NOT NULL,
	sha256 TEXT NOT NULL,
	path TEXT,
	smoke TEXT,
	PRIMARY KEY (job_id, name)
);
