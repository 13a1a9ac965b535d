//! Running commands from xtask.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

/// The workspace root (the parent of xtask's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// A command run from the workspace root.
pub(crate) fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(workspace_root());
    c
}

/// Runs `command`, printing it first; fails on a non-zero exit.
pub(crate) fn status(mut command: Command) -> anyhow::Result<()> {
    println!("$ {}", describe(&command));
    let status = command.status().with_context(|| format!("running {}", describe(&command)))?;
    anyhow::ensure!(status.success(), "`{}` failed: {status}", describe(&command));
    Ok(())
}

/// Whether `command` runs and succeeds (output discarded).
pub(crate) fn succeeds(mut command: Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

/// `program arg...` for messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds the agent (`cargo build --release -p tracer-user`) and returns the binary's path,
/// `target/release/egress-tracer`.
pub(crate) fn cargo_build_release_agent(ready: &crate::setup::Ready) -> anyhow::Result<PathBuf> {
    status(ready.cargo(&["build", "--release", "-p", "tracer-user", "--bin", "egress-tracer"]))?;
    Ok(target_dir().join("release/egress-tracer"))
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root) or `target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}
