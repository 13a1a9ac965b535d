//! The learned baseline on disk: JSON under the state directory, written atomically
//! (temporary file, fsync, rename, fsync of the directory), read at start; a file that cannot
//! be read or parsed is reported with the reason and kept aside, never replaced silently.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Bumped when the file's meaning changes.
pub const STATE_VERSION: u32 = 1;

/// What the agent learned, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Unix time the network's learning period began (the agent's first start with learning).
    pub network_since: u64,
    /// Per device MAC (`aa:bb:cc:dd:ee:ff`).
    pub devices: BTreeMap<String, DeviceBaseline>,
}

/// One device's baseline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBaseline {
    /// Unix time the agent first saw the device: its learning window starts here.
    pub first_seen: u64,
    /// Countries reached during the window (ISO code, `unknown`).
    pub learned: BTreeMap<String, Learned>,
    /// Countries first reached after the window, with the Unix time: "new since".
    pub new: BTreeMap<String, u64>,
    /// Countries approved since (`baseline approve`).
    pub approved: BTreeSet<String>,
}

/// A country of the baseline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Unix time of the device's first packet to it.
    pub first_seen: u64,
    /// Bytes exchanged with it during the learning window (both directions).
    pub bytes: u64,
}

/// The file under `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("baseline.json")
}

/// Reads the baseline. A missing file is an empty baseline; a file that cannot be parsed is
/// renamed to `baseline.json.corrupt-<unix time>` and the reason returned with an empty
/// baseline (the caller reports it).
pub fn load(dir: &Path, now: u64) -> (Baseline, Option<String>) {
    const FRESH: &str = "an empty baseline";
    let file = path(dir);
    let fresh =
        || Baseline { version: STATE_VERSION, network_since: now, devices: BTreeMap::new() };
    let text = match crate::base::state_file::read(&file, now, FRESH) {
        Ok(Some(text)) => text,
        Ok(None) => return (fresh(), None),
        Err(problem) => return (fresh(), Some(problem)),
    };
    let aside = |reason: &str| Some(crate::base::state_file::keep_aside(&file, now, reason, FRESH));
    match serde_json::from_slice::<Baseline>(&text) {
        Ok(b) if b.version == STATE_VERSION => (b, None),
        Ok(b) => (
            fresh(),
            aside(&format!("has version {} (this agent reads {STATE_VERSION})", b.version)),
        ),
        Err(e) => (fresh(), aside(&format!("is not a baseline: {e}"))),
    }
}

/// Writes the baseline atomically: a reader (or a crash) sees the old file or the new one.
pub fn save(dir: &Path, baseline: &Baseline) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(baseline).context("serialising the baseline")?;
    crate::base::state_file::write_atomic(dir, "baseline.json", &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_corrupt_file_is_kept_aside() {
        let dir = std::env::temp_dir().join(format!("et-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (empty, problem) = load(&dir, 100);
        assert_eq!((empty.network_since, problem), (100, None));
        let mut b = empty;
        b.devices
            .entry("02:00:00:00:00:01".into())
            .or_default()
            .learned
            .insert("NL".into(), Learned { first_seen: 101, bytes: 98 });
        save(&dir, &b).unwrap();
        assert_eq!(load(&dir, 200).0, b);
        std::fs::write(path(&dir), b"{\"version\":1,\"devi").unwrap();
        let (fresh, problem) = load(&dir, 300);
        assert!(fresh.devices.is_empty());
        let problem = problem.unwrap();
        assert!(
            problem.contains("is not a baseline") && problem.contains("kept aside"),
            "{problem}"
        );
        assert!(dir.join("baseline.json.corrupt-300").exists());
        assert!(!path(&dir).exists(), "never replaced silently: the next save writes a new file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
