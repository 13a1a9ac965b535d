//! `cargo xtask`: developer tasks for egress-tracer.

mod bench;
mod deb;
mod demo;
mod dist;
mod geo_build;
mod run;
mod setup;
mod steps;
mod test;

use clap::{Parser, Subcommand};

/// Developer tasks for egress-tracer.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the build and the tests need (idempotent).
    Setup,
    /// Setup, fmt, clippy (user and eBPF crates), unit tests, privileged lab tests.
    Test(test::TestArgs),
    /// Build, start the lab, run the agent on it and make the devices talk to a few countries.
    Demo(demo::DemoArgs),
    /// Per-packet cost, load time and kernel memory, as ratios against baselines.
    Bench,
    /// Static release binaries (`--target TRIPLE`, default x86_64 musl) or a .deb (`dist deb`).
    Dist(dist::DistArgs),
    /// Regenerate the embedded default country database.
    GeoBuild(geo_build::GeoBuildArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run(),
        Command::Test(args) => test::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench => bench::run(),
        Command::GeoBuild(args) => geo_build::run(&args),
        Command::Dist(args) => dist::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
