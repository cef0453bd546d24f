-- Schema version 6: what the user settled for a job's conversion that the
-- model's files cannot (--set KEY=VALUE, --base ORG/NAME), as JSON:
-- {"set": {"num_attention_heads": 24}, "base": "org/name"}; NULL: none.
ALTER TABLE jobs ADD COLUMN overrides TEXT;
