-- Schema version 7: a job's quality steps. imatrix is 'auto' (an
-- importance matrix when a requested type is below 5 bits per weight),
-- 'on' (for every quant type) or 'off' (never: types that cannot be made
-- without one are refused at submit); fidelity 1 measures each quant
-- against the F16 (KL divergence, top-1 agreement, perplexity ratio).
ALTER TABLE jobs ADD COLUMN imatrix TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE jobs ADD COLUMN fidelity INTEGER NOT NULL DEFAULT 1;
