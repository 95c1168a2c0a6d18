//! Prometheus metrics. Code anywhere records through the functions here (the `metrics` facade
//! underneath); `/metrics` renders them. Gauges that describe the shared database (jobs by
//! status, queue depth) are read from it at scrape time, so every replica reports the same
//! values for them: aggregate those with `max`, and the per-process counters with `sum`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds; from a quick page read to a slow model call on a long document.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls (several servers in one test process)
/// share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "classifyd_http_requests_total",
        "HTTP requests by method, route template and status"
    );
    describe_histogram!(
        "classifyd_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    describe_gauge!(
        "classifyd_jobs",
        "Jobs in the database by API and status (same on every replica)"
    );
    describe_gauge!(
        "classifyd_queue_depth",
        "Tasks waiting for a worker (same on every replica)"
    );
    describe_counter!(
        "classifyd_tasks_total",
        "Tasks this process finished, by outcome (completed, failed, released at shutdown)"
    );
    describe_histogram!(
        "classifyd_task_duration_seconds",
        Unit::Seconds,
        "Time from claim to outcome of a task, by outcome"
    );
    describe_counter!(
        "classifyd_model_calls_total",
        "Classifier/model calls by backend and outcome (ok or an error kind)"
    );
    describe_histogram!(
        "classifyd_model_call_duration_seconds",
        Unit::Seconds,
        "Classifier/model call latency by backend"
    );
    describe_counter!(
        "classifyd_model_tokens_total",
        "Model tokens by backend and kind (prompt, completion)"
    );
    describe_counter!(
        "classifyd_result_cache_total",
        "Result cache look-ups by outcome (hit: answered without a model call; miss)"
    );
    describe_histogram!(
        "classifyd_extraction_duration_seconds",
        Unit::Seconds,
        "Time to extract a document's text, by outcome"
    );
}

/// One HTTP request; `route` is the matched route template (`/api/v2/classify/{job_id}`), never
/// the raw path, so ids do not explode the label set.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    counter!("classifyd_http_requests_total", &labels).increment(1);
    histogram!("classifyd_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// How a task ended in this process.
#[derive(Debug, Clone, Copy)]
pub enum TaskEnd {
    Completed,
    Failed,
    /// Given back to the queue at shutdown.
    Released,
}

pub fn record_task(end: TaskEnd, elapsed: Duration) {
    let outcome = match end {
        TaskEnd::Completed => "completed",
        TaskEnd::Failed => "failed",
        TaskEnd::Released => "released",
    };
    counter!("classifyd_tasks_total", "outcome" => outcome).increment(1);
    histogram!("classifyd_task_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// What one classifier/model call produced, for [`record_model_call`].
#[derive(Debug, Clone, Copy)]
pub enum ModelCall {
    /// Answered; token counts as the model reported them (0 when it reports none).
    Ok {
        prompt_tokens: u64,
        completion_tokens: u64,
    },
    /// Failed; `kind` is a short fixed label such as `rate_limited`, `timeout`, `server_error`,
    /// `invalid_response` (never a message: labels must stay few).
    Error { kind: &'static str },
}

/// One call to a classifier backend (`local`, `openai`, …), successful or not.
pub fn record_model_call(backend: &'static str, elapsed: Duration, call: ModelCall) {
    histogram!("classifyd_model_call_duration_seconds", "backend" => backend)
        .record(elapsed.as_secs_f64());
    match call {
        ModelCall::Ok {
            prompt_tokens,
            completion_tokens,
        } => {
            counter!("classifyd_model_calls_total", "backend" => backend, "outcome" => "ok")
                .increment(1);
            counter!("classifyd_model_tokens_total", "backend" => backend, "kind" => "prompt")
                .increment(prompt_tokens);
            counter!("classifyd_model_tokens_total", "backend" => backend, "kind" => "completion")
                .increment(completion_tokens);
        }
        ModelCall::Error { kind } => {
            counter!("classifyd_model_calls_total", "backend" => backend, "outcome" => kind)
                .increment(1);
        }
    }
}

/// One look-up in the result cache.
pub fn record_result_cache(hit: bool) {
    let outcome = if hit { "hit" } else { "miss" };
    counter!("classifyd_result_cache_total", "outcome" => outcome).increment(1);
}

/// One document's text extraction.
pub fn record_extraction(ok: bool, elapsed: Duration) {
    let outcome = if ok { "ok" } else { "failed" };
    histogram!("classifyd_extraction_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// Database-wide gauges, set just before a scrape renders. Every api × status pair is set,
/// to 0 when absent, so a count that drops to nothing does not linger at its last value.
pub fn set_queue_stats(jobs: &[(String, String, i64)], queue_depth: i64) {
    const STATUSES: [&str; 5] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
    for api in ["v1", "v2"] {
        for status in STATUSES {
            let count = jobs
                .iter()
                .find(|(a, s, _)| a == api && s == status)
                .map_or(0, |(_, _, n)| *n);
            gauge!("classifyd_jobs", "api" => api, "status" => status).set(count as f64);
        }
    }
    gauge!("classifyd_queue_depth").set(queue_depth as f64);
}
