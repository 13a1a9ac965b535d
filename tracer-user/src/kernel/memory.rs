//! Kernel memory of this process's maps, from the kernel's own accounting (`memlock` in
//! `/proc/self/fdinfo`).

use std::{collections::BTreeMap, fs};

/// One map's kernel memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapMemory {
    /// Map name (truncated by the kernel to 15 characters).
    pub name: String,
    /// Bytes charged for the map.
    pub memlock: u64,
}

/// The kernel memory of every map this process holds a descriptor to, by map name.
pub fn map_memory() -> Vec<MapMemory> {
    let mut by_id: BTreeMap<u32, u64> = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc/self/fdinfo") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(memlock)) = (field("map_id:"), field("memlock:")) {
            by_id.insert(id as u32, memlock);
        }
    }
    let mut out: Vec<MapMemory> = aya::maps::loaded_maps()
        .flatten()
        .filter_map(|info| {
            let memlock = *by_id.get(&info.id())?;
            Some(MapMemory { name: info.name_as_str().unwrap_or("?").to_owned(), memlock })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
