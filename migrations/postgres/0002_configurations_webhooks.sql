-- Saved configurations, webhooks with their delivery outbox. (Parse jobs are jobs rows with
-- api = 'parse'; their extracted text is the job's result.)

-- Named parameter sets; create is an upsert on (project, product type, name).
CREATE TABLE configurations (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    product_type TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT configurations_project_name UNIQUE (project_id, product_type, name)
);
CREATE INDEX configurations_project_created ON configurations (project_id, created_at DESC, id DESC);

-- Saved webhook endpoints, referenced by jobs through webhook_configuration_ids.
CREATE TABLE webhook_configs (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL,
    webhook_url           TEXT NOT NULL,
    webhook_events        TEXT,
    webhook_headers       TEXT,
    webhook_output_format TEXT,
    signing_secret        TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX webhook_configs_project_created ON webhook_configs (project_id, created_at DESC, id DESC);

-- A job's webhook targets, copied when the job is created (inline and saved ones alike), so
-- editing or deleting a saved config later does not change where an existing job reports.
-- webhook_events is a JSON array (NULL: every event), webhook_headers a JSON object.
CREATE TABLE job_webhooks (
    job_id                TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position              BIGINT NOT NULL,
    webhook_url           TEXT NOT NULL,
    webhook_events        TEXT,
    webhook_headers       TEXT,
    webhook_output_format TEXT,
    signing_secret        TEXT,
    PRIMARY KEY (job_id, position)
);

-- The outbox: one row per (event, target), written in the transaction that changed the job's
-- status, drained by the delivery loop with leases like tasks. No foreign key to jobs: a
-- deleted job's pending events are still delivered. job_snapshot is the job as of the event.
CREATE TABLE webhook_deliveries (
    seq                   BIGSERIAL PRIMARY KEY,
    event_id              TEXT NOT NULL,
    event_type            TEXT NOT NULL,
    project_id            TEXT NOT NULL,
    job_id                TEXT NOT NULL,
    job_snapshot          TEXT NOT NULL,
    webhook_url           TEXT NOT NULL,
    webhook_headers       TEXT,
    webhook_output_format TEXT,
    signing_secret        TEXT,
    status                TEXT NOT NULL,
    attempts              BIGINT NOT NULL DEFAULT 0,
    lease_token           TEXT,
    lease_expires_at      BIGINT,
    run_after             BIGINT NOT NULL,
    last_error            TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (run_after) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX webhook_deliveries_stream ON webhook_deliveries (job_id, webhook_url, seq);
