//! `cargo xtask`: developer tasks for egress-tracer.

mod background;
mod bench;
mod deb;
mod demo;
mod dist;
mod fpu;
mod geo_build;
mod run;
mod setup;
mod setup_check;
mod steps;
mod story;
mod test;
mod vm;
mod world_map;

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
    /// Regenerate the page's embedded world map (`tracer-user/web/world.svg`).
    WorldMap,
    /// Boot Debian's own kernel for an architecture in QEMU and run the agent in a lab there.
    Vm(vm::VmArgs),
    /// The .deb's unit under real systemd: a Debian bookworm VM (mmdebstrap, QEMU/KVM).
    VmSystemd(vm::systemd::VmSystemdArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(drop),
        Command::Test(args) => test::run(&args),
        // Every command that builds sets up first (a fresh machine has no rust-src, no
        // bpf-linker): the build functions take the `Ready` that only setup returns.
        Command::Demo(args) => setup::run().and_then(|ready| demo::run(&ready, &args)),
        Command::Bench => setup::run().and_then(|ready| bench::run(&ready)),
        Command::GeoBuild(args) => setup::run().and_then(|ready| geo_build::run(&ready, &args)),
        Command::Dist(args) => setup::run().and_then(|ready| dist::run(&ready, &args)),
        Command::WorldMap => setup::run().and_then(|ready| world_map::run(&ready)),
        Command::Vm(args) => setup::run().and_then(|ready| vm::run(&ready, &args)),
        Command::VmSystemd(args) => setup::run().and_then(|ready| vm::systemd::run(&ready, &args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
