-- Schema version 5: the F16 (or BF16, F32) GGUF is pulled back only when
-- the job asks for it; it is tens of GB for a real model, and the quants
-- are what a person runs.
ALTER TABLE jobs ADD COLUMN pull_f16 INTEGER NOT NULL DEFAULT 0;
