-- Schema: the largest file a job writes, in bytes (submit
-- --split-max-size SIZE; a push to the hub defaults to 50 GB, the largest
-- file it takes): a GGUF bigger than that is written as a set of parts in
-- llama.cpp's gguf-split format. 0: every GGUF one file.
ALTER TABLE jobs ADD COLUMN split_max_size INTEGER NOT NULL DEFAULT 0;
