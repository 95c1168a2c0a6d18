-- Times are microseconds since the Unix epoch (BIGINT) so that both stores compare them alike.

CREATE TABLE files (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    file_type        TEXT,
    purpose          TEXT,
    external_file_id TEXT,
    size_bytes       BIGINT NOT NULL,
    sha256           TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX files_project_created ON files (project_id, created_at DESC, id DESC);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    api                 TEXT NOT NULL,
    status              TEXT NOT NULL,
    configuration       TEXT NOT NULL,
    configuration_id    TEXT,
    document_input_type TEXT NOT NULL,
    file_input          TEXT NOT NULL,
    parse_job_id        TEXT,
    transaction_id      TEXT,
    result              TEXT,
    error_message       TEXT,
    pages_processed     BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    -- NULLs are distinct, so jobs without a transaction id never collide.
    CONSTRAINT jobs_project_transaction UNIQUE (project_id, transaction_id)
);
CREATE INDEX jobs_project_created ON jobs (project_id, api, created_at DESC, id DESC);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    file_id          TEXT NOT NULL,
    position         BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    lease_token      TEXT,
    lease_expires_at BIGINT,
    run_after        BIGINT NOT NULL,
    result           TEXT,
    error_message    TEXT,
    page_count       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tasks_pending ON tasks (run_after) WHERE status = 'PENDING';
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX tasks_job ON tasks (job_id, position);

CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
