//! `startup`: time from spawning `classifyd serve` to `/ready` answering 200, on the embedded
//! defaults (fresh SQLite database and data directory, migrations included) and with
//! `--ephemeral` (the throw-away server a CI job starts; issue 7).

use std::path::Path;

use crate::report::{percentile, round, Report};
use crate::server::Server;

#[derive(clap::Args)]
pub struct StartupArgs {
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

pub async fn run(bin: &Path, args: StartupArgs) -> anyhow::Result<Report> {
    let runs = args.runs.max(1);
    let mut report = Report::new(format!("startup ({runs} runs each)"));
    for (name, prefix, env) in [
        ("embedded defaults", "", vec![]),
        (
            "--ephemeral",
            "ephemeral ",
            vec![("CLASSIFYD_EPHEMERAL", "true".to_string())],
        ),
    ] {
        let mut ready_ms = Vec::new();
        for _ in 0..runs {
            let server = Server::start(bin, None, &env).await?;
            ready_ms.push(server.ready_after.as_secs_f64() * 1000.0);
            server.stop().await?;
        }
        let median = percentile(&ready_ms, 50.0);
        report.figure(&format!("{prefix}ready median ms"), round(median, 1));
        report.figure(
            &format!("{prefix}ready min ms"),
            round(ready_ms.iter().copied().fold(f64::MAX, f64::min), 1),
        );
        report.figure(
            &format!("{prefix}ready max ms"),
            round(ready_ms.iter().copied().fold(0.0, f64::max), 1),
        );
        report.check(
            &format!("ready ≤ 300 ms after start ({name}, median)"),
            format!("{median:.1} ms"),
            median <= 300.0,
        );
    }
    Ok(report)
}
