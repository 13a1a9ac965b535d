//! Build step for `devices::oui`: the IEEE OUI registries from the `oui-data` crate packed
//! into a small zlib-compressed table, `$OUT_DIR/oui.bin`, which the agent embeds.
//!
//! `oui-data` itself holds the registries as a static map of about 9 MB in the binary; the
//! packed table is a few hundred kilobytes and is unpacked on the first lookup.
//!
//! Format before compression (all integers little endian unless said otherwise):
//! `b"OUI1"`, `u32` name count, per name `u16` length + UTF-8 bytes; `u32` entry count, per
//! entry `u8` prefix length in bits (24, 28 or 36), the prefix as 5 bytes big endian, `u32`
//! name index. Entries are sorted by (bits, prefix).

use std::{collections::BTreeMap, io::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};

/// Writes `$OUT_DIR/oui.bin`.
pub(crate) fn generate() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=build/oui_table.rs");
    let mut entries: Vec<(u8, u64, &'static str)> = Vec::new();
    for (key, record) in oui_data::OUI_ENTRIES.entries() {
        let bits = match key.len() {
            6 => 24,
            7 => 28,
            9 => 36,
            n => bail!("OUI key {key:?} has {n} digits"),
        };
        let prefix = u64::from_str_radix(key, 16).with_context(|| format!("OUI key {key:?}"))?;
        entries.push((bits, prefix, record.organization().trim()));
    }
    entries.sort_unstable();
    entries.dedup_by_key(|e| (e.0, e.1));

    let mut ids: BTreeMap<&str, u32> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    body.extend(u32::try_from(entries.len())?.to_le_bytes());
    for &(bits, prefix, name) in &entries {
        let id = *ids.entry(name).or_insert_with(|| {
            names.push(name);
            (names.len() - 1) as u32
        });
        body.push(bits);
        body.extend(&prefix.to_be_bytes()[3..]);
        body.extend(id.to_le_bytes());
    }
    let mut raw = b"OUI1".to_vec();
    raw.extend(u32::try_from(names.len())?.to_le_bytes());
    for name in &names {
        raw.extend(u16::try_from(name.len())?.to_le_bytes());
        raw.extend(name.as_bytes());
    }
    raw.extend(body);

    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw)?;
    let out = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?).join("oui.bin");
    std::fs::write(&out, z.finish()?).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
