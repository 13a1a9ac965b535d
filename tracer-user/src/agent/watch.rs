//! Noticing changed files: the configuration and the country databases.

use std::{path::PathBuf, time::SystemTime};

use crate::{config::RunSettings, config::cli::RunArgs};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The configuration file.
    Config,
    /// A country database file.
    Geo,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Config => "the configuration file",
            Self::Geo => "a --geo file",
        })
    }
}

/// The files watched and their modification times when last loaded.
#[derive(Debug)]
pub(super) struct Watched {
    config: Option<(PathBuf, Option<SystemTime>)>,
    geo: Vec<(PathBuf, Option<SystemTime>)>,
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Watched {
    /// The files of the running configuration, as they are now.
    pub(super) fn new(args: &RunArgs, settings: &RunSettings) -> Self {
        Self {
            config: args.config.clone().map(|p| {
                let t = mtime(&p);
                (p, t)
            }),
            geo: settings.geo.geo.iter().map(|p| (p.clone(), mtime(p))).collect(),
        }
    }

    /// The files of the configuration a reload just loaded, each with the time it had when
    /// `self` was taken, before the reload read it: a file written during the reload is then
    /// seen as changed at the next check, not taken as loaded.
    pub(super) fn after_reload(self, args: &RunArgs, settings: &RunSettings) -> Self {
        let mut now = Self::new(args, settings);
        let before = |path: &PathBuf, t: &mut Option<SystemTime>| {
            let old = self.config.iter().chain(&self.geo).find(|(p, _)| p == path);
            if let Some((_, old)) = old {
                *t = *old;
            }
        };
        if let Some((path, t)) = &mut now.config {
            before(path, t);
        }
        for (path, t) in &mut now.geo {
            before(path, t);
        }
        now
    }

    /// The first kind of file that changed since [`Self::new`].
    pub(super) fn changed(&self) -> Option<Change> {
        if let Some((path, t)) = &self.config
            && mtime(path) != *t
        {
            return Some(Change::Config);
        }
        self.geo.iter().any(|(p, t)| mtime(p) != *t).then_some(Change::Geo)
    }
}
