//! The kernel modules the VM lab needs, with their dependencies in load order.
//!
//! Debian's kernel package ships no `modules.dep` (depmod writes it on installation), so the
//! dependencies come from each module's own `.modinfo` (`depends=`). Compressed modules
//! (`.ko.xz`, `.ko.zst`, `.ko.gz`) are decompressed here: busybox's `insmod` takes plain ones.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::run::cmd;

/// What the lab and the agent need: veth pairs, the bridge (stp, llc), the clsact qdisc and
/// the BPF classifier and action, IPv6. Each is a module or built in.
pub(crate) const NEEDED: &[&str] = &["veth", "bridge", "sch_ingress", "cls_bpf", "act_bpf", "ipv6"];

/// A module to load: its name and its plain ELF bytes.
#[derive(Debug)]
pub(crate) struct Module {
    /// The module's name (`-` spelled `_`).
    pub(crate) name: String,
    /// The uncompressed `.ko`.
    pub(crate) bytes: Vec<u8>,
}

/// The modules of `NEEDED` that are not built in, each after its dependencies.
pub(crate) fn resolve(modules_dir: &Path) -> anyhow::Result<Vec<Module>> {
    let builtin: BTreeSet<String> = std::fs::read_to_string(modules_dir.join("modules.builtin"))
        .context("reading modules.builtin")?
        .lines()
        .filter_map(|l| module_name(Path::new(l)))
        .collect();
    let mut files = BTreeMap::new();
    index(&modules_dir.join("kernel"), &mut files)?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in NEEDED {
        visit(name, &builtin, &files, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// Depth-first: dependencies first, each module once.
fn visit(
    name: &str,
    builtin: &BTreeSet<String>,
    files: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<Module>,
) -> anyhow::Result<()> {
    let name = name.replace('-', "_");
    if builtin.contains(&name) || !seen.insert(name.clone()) {
        return Ok(());
    }
    let path = files
        .get(&name)
        .with_context(|| format!("kernel module {name} is neither built in nor shipped"))?;
    let bytes = read_plain(path)?;
    for dep in depends(&bytes) {
        visit(&dep, builtin, files, seen, order)?;
    }
    order.push(Module { name, bytes });
    Ok(())
}

/// Every module file under `dir`, by module name.
fn index(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index(&path, files)?;
        } else if let Some(name) = module_name(&path) {
            files.insert(name, path);
        }
    }
    Ok(())
}

/// `kernel/net/bridge/bridge.ko.xz` -> `bridge`; `None` for files that are no module.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_string_lossy();
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|s| file.strip_suffix(s))?;
    Some(stem.replace('-', "_"))
}

/// The module's plain bytes, decompressed with the matching tool if needed.
fn read_plain(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = [(".xz", "xz"), (".zst", "zstd"), (".gz", "gzip")]
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, tool)| *tool);
    let Some(tool) = tool else {
        return std::fs::read(path).with_context(|| format!("reading {name}"));
    };
    let out = cmd(tool, &["-dc", &name]).output().with_context(|| format!("running {tool}"))?;
    anyhow::ensure!(out.status.success(), "{tool} -dc {name} failed");
    Ok(out.stdout)
}

/// The `depends=` list of a module's `.modinfo`.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else { return Vec::new() };
    let value = &ko[at + key.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_depends() {
        assert_eq!(module_name(Path::new("kernel/net/802/stp.ko")).as_deref(), Some("stp"));
        assert_eq!(module_name(Path::new("x/nf-conntrack.ko.xz")).as_deref(), Some("nf_conntrack"));
        assert_eq!(module_name(Path::new("modules.order")), None);
        let ko = b"\x7fELF...\0license=GPL\0depends=llc,stp\0name=bridge\0";
        assert_eq!(depends(ko), ["llc", "stp"]);
        assert!(depends(b"\0depends=\0name=veth\0").is_empty());
    }
}
