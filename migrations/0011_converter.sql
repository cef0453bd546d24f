-- The converter that makes a job's full-precision GGUF: 'mibera' (its own,
-- in C) or 'llama.cpp' (llama.cpp's convert_hf_to_gguf.py from the pinned
-- source, for a family mibera does not convert natively; submit
-- --converter llama.cpp).
ALTER TABLE jobs ADD COLUMN converter TEXT NOT NULL DEFAULT 'mibera';
