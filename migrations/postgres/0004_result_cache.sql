-- Model answers by question, so that the same question is not paid for twice: `key` is a
-- SHA-256 over everything that decides the answer (project, document content, rules, mode,
-- page selection, model and prompt; see src/worker/cache.rs). `result` and `usage` are JSON
-- as on jobs; `usage` is what the first answer cost.
CREATE TABLE result_cache (
    key        TEXT PRIMARY KEY,
    result     TEXT NOT NULL,
    page_count BIGINT NOT NULL,
    usage      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
