//! Files under the state directory (`--state-dir`): written atomically (temporary file, fsync,
//! rename, fsync of the directory), so a reader or a crash sees the old file or the new one;
//! a file that cannot be read or parsed is renamed aside with the reason, never replaced
//! silently.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// Writes `bytes` to `dir/name` atomically.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("writing {}", file.display()))
}

/// Renames `file` to `<file>.corrupt-<now>` and says so: "`file` `reason`; kept aside as ...;
/// starting with `fresh`".
pub fn keep_aside(file: &Path, now: u64, reason: &str, fresh: &str) -> String {
    let mut aside = file.as_os_str().to_owned();
    aside.push(format!(".corrupt-{now}"));
    let aside = PathBuf::from(aside);
    match std::fs::rename(file, &aside) {
        Ok(()) => format!(
            "{} {reason}; kept aside as {}; starting with {fresh}",
            file.display(),
            aside.display()
        ),
        Err(e) => format!(
            "{} {reason}, and could not be kept aside ({e}); starting with {fresh}",
            file.display()
        ),
    }
}

/// Reads `file`: `Ok(None)` if it does not exist, `Err(message)` (the file kept aside) if it
/// cannot be read.
pub fn read(file: &Path, now: u64, fresh: &str) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(keep_aside(file, now, &format!("cannot be read: {e}"), fresh)),
    }
}
