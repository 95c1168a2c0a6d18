//! `classifyd-bench`: the benchmark harness behind BENCHMARKS.md. Each sub-command measures
//! the real server (a `classifyd` child process over HTTP) and, in the same run, the ceiling it
//! is compared with, because on a shared, noisy machine only side-by-side ratios mean much.
//! It reports figures and budget verdicts; it asserts nothing (tests never time things).

mod ceiling;
mod db;
mod docs;
mod extract;
mod fake_model;
mod load;
mod memory;
mod report;
mod server;
mod startup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "classifyd-bench",
    about = "Benchmarks of classifyd against same-run ceilings"
)]
struct Cli {
    /// The `classifyd` binary to measure (default: the one next to this program).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Append each result as one JSON line to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Jobs end to end with concurrent clients, beside the bare-SQL and `/health` ceilings.
    Load(load::LoadArgs),
    /// Server RSS during a large streamed upload and while jobs on 10 MB PDFs run.
    Memory(memory::MemoryArgs),
    /// Time from process start to `/ready` answering on the embedded defaults.
    Startup(startup::StartupArgs),
    /// Pages/s of the server's extractor against `pdftotext` over a PDF corpus.
    Extract(extract::ExtractArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("classifyd-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let server_bin = cli
        .server_bin
        .clone()
        .unwrap_or_else(server::sibling_binary);
    let result = runtime.block_on(async {
        let report = match cli.command {
            Command::Load(args) => load::run(&server_bin, args).await?,
            Command::Memory(args) => memory::run(&server_bin, args).await?,
            Command::Startup(args) => startup::run(&server_bin, args).await?,
            Command::Extract(args) => extract::run(&server_bin, args).await?,
        };
        report.print();
        if let Some(out) = &cli.out {
            report.append_json(out)?;
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("classifyd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
