//! `spate`: one binary for every role. `spate run` starts an embedded cluster of real processes;
//! `spate jobmaster` and `spate worker` are the roles those processes (or pods) play.

mod bench;
mod bench_failover;
mod cli;
mod progress;
mod run;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                init_logging("warn");
                run::run(args).await
            }
            Command::Jobmaster(args) => {
                init_logging("info");
                run::jobmaster(*args).await
            }
            Command::Worker(args) => {
                init_logging("info");
                run::worker(args).await
            }
            Command::Jobs => run::list_jobs(),
            Command::Explain(args) => run::explain(args),
            Command::Savepoint(args) => {
                init_logging("warn");
                run::savepoint(args).await
            }
            Command::Bench(args) => {
                init_logging("warn");
                bench::bench(args).await
            }
            Command::BenchFailover(args) => {
                init_logging("warn");
                bench_failover::bench_failover(args).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
