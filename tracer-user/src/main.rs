//! The `egress-tracer` binary.

use clap::Parser as _;
use tracer_user::config::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EGRESS_TRACER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(tracer_user::agent::run(*args))),
        Command::Check(args) => tracer_user::commands::check::check_command(&args),
        Command::CheckConfig(args) => tracer_user::config::check_command(&args.file),
        Command::Reset(args) => tracer_user::agent::reset(&args),
        Command::Status(args) => tracer_user::commands::status::run(&args),
        Command::Baseline(args) => tracer_user::commands::baseline::run(&args),
        Command::Lookup(args) => tracer_user::commands::lookup::run(&args),
        Command::GeoInfo(args) => tracer_user::commands::lookup::geo_info(&args),
        Command::GeoCompile(args) => tracer_user::agent::database::compile_to_file(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("egress-tracer: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
