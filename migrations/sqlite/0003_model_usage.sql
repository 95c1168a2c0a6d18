-- What each classification cost the model backend, as JSON: prompt/completion tokens, model
-- calls, whether the text was trimmed to the token budget, how the confidence was obtained.
ALTER TABLE tasks ADD COLUMN usage TEXT;
ALTER TABLE jobs ADD COLUMN usage TEXT;
