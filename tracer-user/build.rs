//! Builds the eBPF programs (`tracer-ebpf`) with aya-build so the agent can embed them (their
//! DWARF removed: `build/strip_debug.rs`), and packs the IEEE OUI table (`build/oui_table.rs`).

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

#[path = "build/oui_table.rs"]
mod oui_table;
#[path = "build/strip_debug.rs"]
mod strip_debug;

fn main() -> anyhow::Result<()> {
    oui_table::generate()?;
    let metadata = cargo_metadata()?;
    let root_dir = metadata
        .lines()
        .find_map(|l| l.strip_prefix("tracer-ebpf="))
        .ok_or_else(|| anyhow!("tracer-ebpf not found in the workspace"))?
        .to_owned();
    let package = Package { name: "tracer-ebpf", root_dir: &root_dir, ..Default::default() };
    aya_build::build_ebpf([package], Toolchain::default())?;
    // aya-build copies the program binary (`tracer`) into OUT_DIR; with AYA_BUILD_SKIP set it
    // builds nothing, and there is nothing to strip.
    let object = std::path::Path::new(&std::env::var("OUT_DIR").context("OUT_DIR")?).join("tracer");
    if object.exists() {
        strip_debug::strip(&object)?;
    }
    Ok(())
}

/// Locates `tracer-ebpf` next to this crate (`../tracer-ebpf`).
fn cargo_metadata() -> anyhow::Result<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let dir =
        std::path::Path::new(&manifest_dir).parent().context("workspace root")?.join("tracer-ebpf");
    Ok(format!("tracer-ebpf={}", dir.display()))
}
