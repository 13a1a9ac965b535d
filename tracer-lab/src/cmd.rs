//! Running commands with errors that say what failed.

use std::process::Command;

/// Runs `args` (program first) and returns its stdout; a failure carries the command line and
/// its stderr (and stdout, if any).
pub fn run(args: &[&str]) -> anyhow::Result<String> {
    let (program, rest) = args.split_first().ok_or_else(|| anyhow::anyhow!("empty command"))?;
    let out = Command::new(program).args(rest).output().map_err(|e| {
        anyhow::anyhow!("running `{}`: {e} (is it installed? `cargo xtask setup`)", args.join(" "))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut msg = format!("`{}` failed ({})", args.join(" "), out.status);
        for (what, text) in [("stderr", stderr.trim()), ("stdout", stdout.trim())] {
            if !text.is_empty() {
                msg.push_str(&format!("\n{what}: {text}"));
            }
        }
        anyhow::bail!(msg);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let err = run(&["sh", "-c", "echo oops >&2; exit 3"]).unwrap_err().to_string();
        assert!(err.contains("`sh -c echo oops >&2; exit 3` failed"), "{err}");
        assert!(err.contains("stderr: oops"), "{err}");
        assert_eq!(run(&["sh", "-c", "echo hi"]).unwrap(), "hi\n");
        assert!(run(&["/nonexistent/program"]).unwrap_err().to_string().contains("installed"));
        assert!(run(&[]).is_err());
    }
}
