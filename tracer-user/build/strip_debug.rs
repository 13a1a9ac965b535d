//! Build step for the embedded eBPF object: its DWARF sections removed.
//!
//! The programs are built with debug info (`[profile.release.package.tracer-ebpf]`, `debug =
//! 2`) because bpf-linker derives the object's BTF from it; the kernel and aya's loader read
//! only the BTF (`.BTF`, `.BTF.ext`: types, function and line info), never the DWARF, which is
//! four fifths of the object (about 640 KiB of 800). Every agent binary, the routers' 8 MiB
//! ones included, would carry it for nothing.

use std::path::Path;

use anyhow::Context as _;
use object::build::elf::{Builder, SectionData};

/// Whether a section is DWARF, or the relocations of a DWARF section.
fn is_debug(name: &[u8]) -> bool {
    [b".debug".as_slice(), b".rel.debug", b".rela.debug"].iter().any(|p| name.starts_with(p))
}

/// Rewrites the ELF object at `path` without its DWARF sections (and the symbols and
/// relocations that pointed into them). The suite checks the result (`kernel::load`'s tests):
/// BTF kept, no DWARF left, and the programs load and verify in every lab test.
pub(crate) fn strip(path: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut builder = Builder::read(data.as_slice())
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
    let mut removed = 0usize;
    for section in builder.sections.iter_mut() {
        if is_debug(&section.name) {
            section.delete = true;
            removed += 1;
        }
    }
    if removed == 0 {
        // Stripped by an earlier run of this script (nothing rebuilt it since).
        return Ok(());
    }
    builder.delete_orphans();
    // bpf-linker's object names its sections in the symbols' string table (`.strtab`), which
    // the writer does not do: it writes the section names to a table of their own.
    if !builder.sections.iter().any(|s| matches!(s.data, SectionData::SectionString)) {
        let names = builder.sections.add();
        names.name = b".shstrtab".as_slice().into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = SectionData::SectionString;
    }
    let mut out = Vec::with_capacity(data.len());
    builder.write(&mut out).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
