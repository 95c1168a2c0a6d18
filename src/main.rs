use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use classifyd::settings::Settings;
use classifyd::startup::{Application, SHUTDOWN_MARGIN};
use classifyd::store::Store;
use classifyd::{cli, document, telemetry};

#[derive(Parser)]
#[command(
    name = "classifyd",
    version,
    about = "Document classification server speaking the LlamaCloud and LandingAI classify APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server and its workers.
    Serve(Box<Settings>),
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, env = "CLASSIFYD_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Classify files without a server; prints one JSON line per file.
    Classify(Box<cli::ClassifyArgs>),
    /// Internal: a sandboxed extraction child; serves documents named on stdin.
    #[command(hide = true)]
    Extract {
        #[command(flatten)]
        limits: document::ParseLimits,
        /// CPU seconds each document may use.
        #[arg(long)]
        cpu_seconds: u64,
    },
    /// Internal: render PDF pages to PNG in a sandboxed child process (MULTIMODAL mode).
    #[command(hide = true)]
    Render {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// 1-based page numbers, comma-separated.
        #[arg(long)]
        pages: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Extract {
        limits,
        cpu_seconds,
    } = &cli.command
    {
        // No runtime, no logging: the child only parses and answers.
        return match document::sandbox::run_child(limits, *cpu_seconds) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("extract: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Render {
        input,
        output,
        pages,
    } = &cli.command
    {
        return match document::render::run_child(input, output, pages) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("render: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("classifyd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("classifyd: {error:#}");
            ExitCode::FAILURE
        }
    };
    // Dropping the runtime would wait for every blocking task (an extraction in progress,
    // say) without limit.
    runtime.shutdown_timeout(SHUTDOWN_MARGIN);
    code
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(settings) => {
            telemetry::init(&settings.log_format);
            let grace = Duration::from_secs(settings.worker.shutdown_grace_seconds);
            let app = Application::build(*settings, None).await?;
            app.run_until(async move {
                shutdown_signal().await;
                exit_after(grace + 2 * SHUTDOWN_MARGIN);
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            database_url,
            data_dir,
        } => {
            telemetry::init("text");
            std::fs::create_dir_all(&data_dir)?;
            let url = database_url.unwrap_or_else(|| {
                format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("classifyd.db").display()
                )
            });
            let store = Store::connect(&url, 1).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify(args) => {
            telemetry::init("text");
            Ok(if cli::run(*args).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Extract { .. } | Command::Render { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// The last resort of a bounded shutdown: a thread outside the async runtime (which may be the
/// part that is stuck) ends the process after `limit` if it is still running.
fn exit_after(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        tracing::error!(
            seconds = limit.as_secs_f64(),
            "shutdown did not finish in time; exiting with work still running"
        );
        std::process::exit(EXIT_SHUTDOWN_OVERRUN);
    });
}

/// The exit status when shutdown had to be cut short by `exit_after`.
const EXIT_SHUTDOWN_OVERRUN: i32 = 3;

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
