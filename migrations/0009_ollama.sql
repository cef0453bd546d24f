-- Schema version 7: the name a job's model is registered under with the
-- local Ollama server once its files are verified (submit --ollama NAME);
-- NULL: not registered.
ALTER TABLE jobs ADD COLUMN ollama_name TEXT;
