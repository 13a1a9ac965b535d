//! The mipsel binary's hard-float check: OpenWrt's `mipsel_24kc` routers have no FPU (and
//! their kernels no FPU emulator), so an FPU instruction the agent reaches stops it with SIGILL.
//! `cargo xtask dist` links Debian's hard-float musl `libc.a` into that soft-float program;
//! tracer-user/src/base/softfloat.rs keeps its math functions out. What is left is printf's
//! floating-point conversions ([`ALLOWED`]), which nothing in the binary asks for.
//!
//! The check disassembles the stripped binary (`<gnu>-objdump -d`) and places each FPU
//! instruction in an input section of the linker map `cargo xtask dist` writes beside it
//! (`-Wl,-Map,--cref`): any outside [`ALLOWED`] fails, and so does a caller of printf outside
//! [`PRINTF_CALLERS`].

use std::path::Path;

use anyhow::Context as _;

use crate::run::cmd;

/// The input sections (archive member, section) whose FPU instructions are allowed: musl's
/// printf engine. `printf_core` (with `fmt_fp` inlined) uses the FPU only for `%e %f %g %a`,
/// `pop_arg` only to fetch a `double` argument for them, and `frexp` (through `frexpl`) is
/// called only by `fmt_fp`. None of the [`PRINTF_CALLERS`] passes such a conversion.
pub(crate) const ALLOWED: &[(&str, &str)] = &[
    ("libc.a(vfprintf.lo)", ".text.printf_core"),
    ("libc.a(vfprintf.lo)", ".text.pop_arg"),
    ("libc.a(frexp.lo)", ".text.frexp"),
];

/// The printf family's entry points in musl.
const PRINTF: &[&str] = &[
    "printf",
    "fprintf",
    "sprintf",
    "snprintf",
    "dprintf",
    "asprintf",
    "vprintf",
    "vfprintf",
    "vsprintf",
    "vsnprintf",
    "vdprintf",
    "vasprintf",
];

/// The objects allowed to call [`PRINTF`] (by the map's cross-reference table), none with a
/// floating-point conversion in its formats: LLVM's libunwind (`libunwind: %s - %s`, `%.*s`,
/// `%d`, `0x%llx`...: `strings target/cross-libunwind/mipsel-unknown-linux-musl/libunwind.a |
/// grep %`), musl's `pthread_setname_np` (`/proc/self/task/%d/comm`, from std's thread names),
/// and musl's own printf wrappers.
pub(crate) const PRINTF_CALLERS: &[&str] = &[
    "libunwind.a(",
    "libc.a(pthread_setname_np.lo)",
    "libc.a(fprintf.lo)",
    "libc.a(snprintf.lo)",
    "libc.a(vsnprintf.lo)",
    "libc.a(vfprintf.lo)",
];

/// What [`check`] found.
#[derive(Debug)]
pub(crate) struct Report {
    /// FPU instructions in the binary.
    pub(crate) total: usize,
    /// Of those, in [`ALLOWED`] sections.
    pub(crate) allowed: usize,
    /// The rest, by (member, section), and printf callers outside [`PRINTF_CALLERS`].
    pub(crate) problems: Vec<String>,
}

/// Whether `mnemonic` is a MIPS FPU (coprocessor 1) instruction: loads, stores and moves to
/// and from it, its branches, and any operation on a `.s`/`.d`/`.w`/`.l`/`.ps` format.
fn is_fpu(mnemonic: &str) -> bool {
    const COP1: &[&str] = &[
        "lwc1", "swc1", "ldc1", "sdc1", "lwxc1", "swxc1", "ldxc1", "sdxc1", "luxc1", "suxc1",
        "mtc1", "mfc1", "mthc1", "mfhc1", "ctc1", "cfc1", "bc1t", "bc1f", "bc1tl", "bc1fl", "movf",
        "movt",
    ];
    COP1.contains(&mnemonic)
        || [".s", ".d", ".w", ".l", ".ps"].iter().any(|f| mnemonic.ends_with(f))
}

/// The `(address, mnemonic)` of each FPU instruction in `objdump -d` output.
fn fpu_instructions(disassembly: &str) -> Vec<(u64, String)> {
    disassembly
        .lines()
        .filter_map(|line| {
            let (address, rest) = line.split_once(":\t")?;
            let address = u64::from_str_radix(address.trim(), 16).ok()?;
            // `<raw word>\t<mnemonic>\t<operands>` (with --no-show-raw-insn: no word).
            let mnemonic =
                rest.split('\t').map(str::trim).find(|f| !f.is_empty() && !is_hex_word(f))?;
            let mnemonic = mnemonic.split_whitespace().next()?;
            is_fpu(mnemonic).then(|| (address, mnemonic.to_owned()))
        })
        .collect()
}

fn is_hex_word(field: &str) -> bool {
    field.len() == 8 && field.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An input section placed in the output: (start, size, section name, file).
type Placed = (u64, u64, String, String);

/// The `.text*` input sections of a GNU ld map, after "Linker script and memory map" (a long
/// name puts the address on the next line).
fn text_sections(map: &str) -> Vec<Placed> {
    let body = map.split_once("Linker script and memory map").map_or("", |(_, b)| b);
    let body = body.split_once("Cross Reference Table").map_or(body, |(b, _)| b);
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for line in body.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with(" .") && fields.len() == 1 {
            pending = Some(fields[0].to_owned());
            continue;
        }
        let (name, rest) = if line.starts_with(" .") {
            (Some(fields[0].to_owned()), &fields[1..])
        } else if line.starts_with("  ") && !fields.is_empty() {
            (pending.take(), &fields[..])
        } else {
            pending = None;
            continue;
        };
        let Some(name) = name else { continue };
        if !name.starts_with(".text") || rest.len() < 3 {
            continue;
        }
        let hex = |s: &str| s.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok());
        if let (Some(start), Some(size)) = (hex(rest[0]), hex(rest[1]))
            && size > 0
        {
            out.push((start, size, name, rest[2..].join(" ")));
        }
    }
    out.sort_by_key(|p| p.0);
    out
}

/// `file` without its directory: `libc.a(vfprintf.lo)`.
fn member(file: &str) -> &str {
    let archive_end = file.find('(').unwrap_or(file.len());
    let dir_end = file[..archive_end].rfind('/').map_or(0, |i| i + 1);
    &file[dir_end..]
}

/// The files the map's cross-reference table lists as referring to `symbol` (all but the
/// first, which defines it).
fn referrers<'a>(map: &'a str, symbol: &str) -> Vec<&'a str> {
    let Some((_, table)) = map.split_once("Cross Reference Table") else { return Vec::new() };
    let mut lines = table
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(symbol) || l.starts_with(' '));
    let Some(_definer) = lines.next() else { return Vec::new() };
    lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect()
}

/// Checks `binary` against its linker `map` with `objdump` (the cross binutils').
pub(crate) fn check(objdump: &str, binary: &Path, map: &Path) -> anyhow::Result<Report> {
    let out = cmd(objdump, &["-d", "--no-show-raw-insn"]).arg(binary).output()?;
    anyhow::ensure!(out.status.success(), "{objdump} -d {} failed", binary.display());
    let instructions = fpu_instructions(&String::from_utf8_lossy(&out.stdout));
    let map_text = std::fs::read_to_string(map)
        .with_context(|| format!("reading the linker map {}", map.display()))?;
    let sections = text_sections(&map_text);
    let mut outside = std::collections::BTreeMap::<String, usize>::new();
    let mut allowed = 0;
    for (address, _) in &instructions {
        let at = sections.partition_point(|s| s.0 <= *address);
        let place = at
            .checked_sub(1)
            .map(|i| &sections[i])
            .filter(|(start, size, _, _)| *address < start + size)
            .map(|(_, _, name, file)| (member(file), name.as_str()));
        match place {
            Some(p) if ALLOWED.contains(&p) => allowed += 1,
            Some((file, name)) => *outside.entry(format!("{file} {name}")).or_default() += 1,
            None => *outside.entry(format!("{address:#x} (not in the map)")).or_default() += 1,
        }
    }
    let mut problems: Vec<String> =
        outside.into_iter().map(|(place, n)| format!("{n} FPU instructions in {place}")).collect();
    for symbol in PRINTF {
        for file in referrers(&map_text, symbol) {
            if !PRINTF_CALLERS.iter().any(|c| member(file).starts_with(c)) {
                problems.push(format!("{} calls {symbol}", member(file)));
            }
        }
    }
    Ok(Report { total: instructions.len(), allowed, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fpu_instructions_and_places_them() {
        let dis = "  400100:\t3c1c0000 \tlui\tgp,0x0\n  400104:\tc7a00010 \tlwc1\t$f0,16(sp)\n  \
                   400108:\t46201000 \tadd.d\t$f0,$f2,$f0\n  40010c:\t00000000 \tnop\n";
        let found = fpu_instructions(dis);
        assert_eq!(found, vec![(0x400104, "lwc1".to_owned()), (0x400108, "add.d".to_owned())]);
        let map = "Linker script and memory map\n .text.pop_arg  0x00400100      0x8 \
                   /usr/lib/x/libc.a(vfprintf.lo)\n .text.printf_core\n                \
                   0x00400108       0x10 /usr/lib/x/libc.a(vfprintf.lo)\n";
        let sections = text_sections(map);
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[1].2, ".text.printf_core");
        assert_eq!(member(&sections[1].3), "libc.a(vfprintf.lo)");
    }

    #[test]
    fn reads_referrers_from_the_cross_reference_table() {
        let map = "Cross Reference Table\n\nSymbol  File\nfprintf   /l/libc.a(fprintf.lo)\n   \
                   /t/libunwind.a(libunwind.o)\n   /t/x.rcgu.o\nfree   /l/libc.a(free.lo)\n";
        assert_eq!(referrers(map, "fprintf"), vec!["/t/libunwind.a(libunwind.o)", "/t/x.rcgu.o"]);
        assert!(referrers(map, "printf").is_empty());
    }
}
