//! `memory`: the server's resident memory (a) while a large upload streams in and (b) while
//! many jobs on large PDFs run. Sampled from `/proc` every few milliseconds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::docs;
use crate::load::{ensure_success, hammer, http_client, upload};
use crate::report::{round, Report};
use crate::server::{mb, memory_of, rss_with_children, Server};

#[derive(clap::Args)]
pub struct MemoryArgs {
    /// Jobs in the load phase.
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Size of each PDF in the load phase.
    #[arg(long, default_value_t = 10)]
    pdf_mb: usize,
    /// Distinct large PDFs uploaded (jobs cycle through them).
    #[arg(long, default_value_t = 4)]
    distinct_pdfs: usize,
    /// Size of the streamed upload.
    #[arg(long, default_value_t = 200)]
    upload_mb: usize,
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

const MIB: usize = 1024 * 1024;

pub async fn run(bin: &Path, args: MemoryArgs) -> anyhow::Result<Report> {
    let env = [(
        "CLASSIFYD_MAX_UPLOAD_BYTES",
        ((args.upload_mb + 16) * MIB).to_string(),
    )];
    let server = Server::start(bin, None, &env).await?;
    let client = http_client(args.clients);

    // (a) A large upload, streamed from a generator so this process stays small too.
    let before = memory_of(server.pid).rss;
    let sampler = Sampler::start(server.pid);
    let chunk = docs::noise(256 * 1024);
    let chunks = (args.upload_mb * MIB).div_ceil(chunk.len());
    let body = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<Vec<u8>, std::io::Error>(chunk.clone())),
    );
    let part = reqwest::multipart::Part::stream_with_length(
        reqwest::Body::wrap_stream(body),
        (chunks * 256 * 1024) as u64,
    )
    .file_name("large.bin");
    let form = reqwest::multipart::Form::new()
        .text("purpose", "classify")
        .part("file", part);
    let upload_started = Instant::now();
    let response = client
        .post(format!("{}/api/v1/beta/files", server.base))
        .multipart(form)
        .send()
        .await?;
    ensure_success(response).await?;
    let upload_secs = upload_started.elapsed().as_secs_f64();
    let (upload_peak, _) = sampler.stop().await;
    let growth = upload_peak.saturating_sub(before);

    // (b) Many jobs on large PDFs.
    let mut file_ids = Vec::new();
    for seed in 0..args.distinct_pdfs.max(1) {
        let bytes = docs::large_pdf(args.pdf_mb, seed as u64);
        file_ids.push(upload(&client, &server.base, &format!("large-{seed}.pdf"), bytes).await?);
    }
    let sampler = Sampler::start(server.pid);
    let jobs_started = Instant::now();
    let url = format!("{}/api/v2/classify", server.base);
    let rules = docs::rules();
    let create_client = client.clone();
    let file_ids = Arc::new(file_ids);
    let creates = hammer(args.jobs, args.clients, move |i| {
        let client = create_client.clone();
        let url = url.clone();
        let body = json!({
            "file_input": file_ids[i % file_ids.len()],
            "configuration": {"rules": rules.clone()},
        });
        async move { ensure_success(client.post(&url).json(&body).send().await?).await }
    })
    .await;
    let mut errors = 0;
    for (_, created) in &creates {
        let Ok(job) = created else {
            errors += 1;
            continue;
        };
        let id = job["id"].as_str().unwrap_or_default();
        loop {
            let job = ensure_success(
                client
                    .get(format!("{}/api/v2/classify/{id}", server.base))
                    .send()
                    .await?,
            )
            .await?;
            match job["status"].as_str() {
                Some("PENDING") | Some("RUNNING") => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Some("COMPLETED") => break,
                _ => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    let jobs_secs = jobs_started.elapsed().as_secs_f64();
    let (jobs_peak, jobs_peak_with_children) = sampler.stop().await;
    let lifetime_peak = memory_of(server.pid).peak;
    server.stop().await?;

    let mut report = Report::new(format!(
        "memory ({} MB upload; {} jobs on {} MB PDFs)",
        args.upload_mb, args.jobs, args.pdf_mb
    ));
    report.figure("RSS before upload MB", mb(before));
    report.figure("RSS growth during upload MB", mb(growth));
    report.figure("upload MB/s", round(args.upload_mb as f64 / upload_secs, 1));
    report.figure("peak RSS during jobs MB", mb(jobs_peak));
    report.figure("peak RSS with extractors MB", mb(jobs_peak_with_children));
    report.figure("peak RSS over the run (VmHWM) MB", mb(lifetime_peak));
    report.figure("jobs/s", round(args.jobs as f64 / jobs_secs, 2));
    report.figure("errors", Value::from(errors));
    report.check(
        &format!("peak RSS ≤ 150 MB under the {}-job load", args.jobs),
        format!("{} MB", mb(jobs_peak)),
        jobs_peak <= 150 * MIB as u64,
    );
    report.check(
        &format!("RSS growth ≤ 16 MB during a {} MB upload", args.upload_mb),
        format!("{} MB", mb(growth)),
        growth <= 16 * MIB as u64,
    );
    Ok(report)
}

/// Samples a process's RSS (alone, and with its children) until stopped; keeps the maxima.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut alone, mut with_children) = (0u64, 0u64);
            loop {
                alone = alone.max(memory_of(pid).rss);
                with_children = with_children.max(rss_with_children(pid));
                if flag.load(Ordering::Relaxed) {
                    return (alone, with_children);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Self { stop, task }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
