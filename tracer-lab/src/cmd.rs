//! Running commands with errors that say what failed.

use std::process::Command;

/// Runs `args` (program first) and returns its stdout; a failure carries the command line and
/// its stderr.
pub fn run(args: &[&str]) -> anyhow::Result<String> {
    let (program, rest) = args.split_first().ok_or_else(|| anyhow::anyhow!("empty command"))?;
    let out = Command::new(program).args(rest).output().map_err(|e| {
        anyhow::anyhow!("running `{}`: {e} (is it installed? `cargo xtask setup`)", args.join(" "))
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "`{}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
