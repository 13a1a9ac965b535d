//! Loading the object with maps sized for the database, the counter maps optionally pinned.

use std::path::PathBuf;

use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use tracer_common::{
    capture::{CAPTURE_BUDGET_MAP, CAPTURES_MAP},
    maps::{
        COUNTERS_MAP, DEFAULT_COUNTER_ENTRIES, GEO_V4_LPM_MAP, GEO_V4_NODES_MAP, GEO_V4_RANGES_MAP,
        GEO_V4_TABLE_MAP, GEO_V6_LPM_MAP, GEO_V6_NODES_MAP, GEO_V6_RANGES_MAP, GEO_V6_TABLE_MAP,
        MACS_MAP, STATS_MAP,
    },
    policy::{
        ALERTED_MAP, DEVICE_PROFILE_MAP, EVENT_BUDGET_MAP, EVENTS_MAP, POLICY_SETTINGS_MAP,
        PROFILES_MAP,
    },
    remotes::{
        BENCH_SLOTS_MAP, BENCH_SLOTS_PER_CPU, DEFAULT_REMOTE_ENTRIES, REMOTE_SPILL_MAP,
        REMOTES_MAP, slot_bits,
    },
};

use super::{EBPF_OBJECT, GeoMapSizes, KernelError, attach::Attached, programs};

/// How to size the maps when loading.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Capacity of the traffic map: one entry per (device, country), both directions in it.
    pub counter_entries: u32,
    /// Slots per CPU of the remote table (rounded up to a power of two): one per (device,
    /// remote address) counted on that CPU.
    pub remote_entries: u32,
    /// Capacities of the geo maps.
    pub geo: GeoMapSizes,
    /// bpffs directory to pin the counter maps in, so that a reload (and a restart) continues
    /// them; `None` keeps them private to this object.
    pub pin_dir: Option<PathBuf>,
    /// Also load the benchmarks' baseline programs (`tc_empty`, `tc_parse_*`, `tc_floor`,
    /// `tc_floor_slot`) and size their flat table of remotes; the agent does not.
    pub bench_programs: bool,
    /// The programs' own diagnostics (aya-log) at this level and above; `Off` makes the
    /// verifier drop every log statement as dead code.
    pub kernel_log: KernelLog,
}

/// Level of the programs' diagnostics (`--kernel-log`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelLog {
    /// None (the default): no cost at all.
    #[default]
    Off,
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Informational messages and above.
    Info,
    /// Everything, e.g. a capture refused by a full ring buffer or cut to its maximum size.
    Debug,
}

impl KernelLog {
    /// The value of aya-log's `AYA_LOG_LEVEL` global.
    fn level(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::Error => aya_log::Level::Error as u8,
            Self::Warn => aya_log::Level::Warn as u8,
            Self::Info => aya_log::Level::Info as u8,
            Self::Debug => aya_log::Level::Debug as u8,
        }
    }
}

/// Forwards the programs' aya-log records to the agent's log, until aborted.
pub fn spawn_kernel_log(
    logger: aya_log::EbpfLogger<&'static dyn log::Log>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the logger owns its ring buffer's fd for as long as it lives, and the AsyncFd
    // owns the logger.
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    }
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            counter_entries: DEFAULT_COUNTER_ENTRIES,
            remote_entries: DEFAULT_REMOTE_ENTRIES,
            geo: GeoMapSizes::default(),
            pin_dir: None,
            bench_programs: false,
            kernel_log: KernelLog::Off,
        }
    }
}

/// The maps that carry state worth keeping: pinned when a pin directory is given, so that a
/// reload or a restart continues the counts, keeps enforcing the policy while no agent runs,
/// and reads the same alert events.
pub(super) const PINNED_MAPS: [&str; 13] = [
    CAPTURES_MAP,
    CAPTURE_BUDGET_MAP,
    COUNTERS_MAP,
    STATS_MAP,
    REMOTES_MAP,
    REMOTE_SPILL_MAP,
    POLICY_SETTINGS_MAP,
    PROFILES_MAP,
    DEVICE_PROFILE_MAP,
    EVENTS_MAP,
    ALERTED_MAP,
    EVENT_BUDGET_MAP,
    MACS_MAP,
];

/// The loaded programs, the maps still owned by the object, and the attachments.
pub struct Kernel {
    pub(super) ebpf: Ebpf,
    pub(super) counter_entries: u32,
    pub(super) attachments: Vec<Attached>,
    pub(super) pin_dir: Option<PathBuf>,
    pub(super) logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// Whether the traffic map was pinned already when this object was loaded.
    pub(super) counters_continued: bool,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("attachments", &self.attachments).finish_non_exhaustive()
    }
}

pub(super) fn program_err(
    name: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> KernelError {
    move |source| KernelError::Program { name, source: Box::new(source) }
}

/// aya's loader without the kernel's BTF (see [`new`](Self::new)).
#[derive(Debug)]
pub struct Loader(EbpfLoader<'static>);

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// aya's `EbpfLoader::new` reads and parses the kernel's BTF (`/sys/kernel/btf/vmlinux`,
    /// 5.5 MB on 6.x kernels: about 13 MiB once parsed, 18 MiB at the peak of the parse). aya
    /// uses it only for CO-RE relocations, and the object has none (a test checks), so it is
    /// dropped here at once. Make the loader before other large allocations (the agent makes
    /// it before compiling the country database) so that the parse's peak does not add to
    /// theirs.
    pub fn new() -> Self {
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        Self(loader)
    }
}

/// Loads (verifies) the programs `names` of `ebpf`, up to one per CPU at a time: the verifier
/// is most of a load, and two programs verified side by side on two cores take the time of
/// the longer one. The verified instruction counts come back in the order of `names`; the
/// first failure in that order is the error.
fn load_programs(
    ebpf: &mut aya::Ebpf,
    names: &[&'static str],
) -> Result<Vec<(&'static str, Option<u32>)>, KernelError> {
    let mut slots: Vec<Option<&mut aya::programs::Program>> = names.iter().map(|_| None).collect();
    for (name, program) in ebpf.programs_mut() {
        if let Some(i) = names.iter().position(|n| *n == name) {
            slots[i] = Some(program);
        }
    }
    let mut work = Vec::with_capacity(names.len());
    for (name, slot) in names.iter().copied().zip(slots) {
        let program = slot.ok_or(KernelError::Missing { kind: "program", name })?;
        let program: &mut SchedClassifier = program.try_into().map_err(program_err(name))?;
        work.push((name, program));
    }
    let queue = std::sync::Mutex::new(work.into_iter().enumerate());
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(names.len());
    let load_next = || {
        let mut done = Vec::new();
        loop {
            let Some((i, (name, program))) = queue.lock().ok().and_then(|mut q| q.next()) else {
                return done;
            };
            let result = program
                .load()
                .map_err(program_err(name))
                .map(|()| program.info().ok().and_then(|info| info.verified_instruction_count()));
            done.push((i, name, result));
        }
    };
    let mut done = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).map(|_| s.spawn(load_next)).collect();
        let mut done = load_next();
        for helper in helpers {
            done.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        done
    });
    done.sort_by_key(|(i, ..)| *i);
    done.into_iter().map(|(_, name, result)| result.map(|insns| (name, insns))).collect()
}

impl Kernel {
    /// Loads the embedded object and all its programs (not attached yet).
    pub fn load(options: &LoadOptions) -> Result<Self, KernelError> {
        Self::load_with(Loader::new(), options)
    }

    /// [`load`](Self::load) with a loader made earlier ([`Loader::new`]).
    pub fn load_with(loader: Loader, options: &LoadOptions) -> Result<Self, KernelError> {
        let level = options.kernel_log.level();
        let mut loader: EbpfLoader<'_> = loader.0;
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| KernelError::Io {
            context: "counting the possible CPUs".to_owned(),
            source,
        })? as u32;
        // Each CPU's slots, then the header (tracer_common::remotes).
        let remote_slots = cpus << slot_bits(options.remote_entries);
        loader
            .map_max_entries(COUNTERS_MAP, options.counter_entries)
            .map_max_entries(REMOTES_MAP, remote_slots + 1)
            .map_max_entries(GEO_V4_TABLE_MAP, options.geo.v4_blocks.max(1))
            .map_max_entries(GEO_V4_NODES_MAP, options.geo.v4_nodes.max(1))
            .map_max_entries(GEO_V4_RANGES_MAP, options.geo.v4_lines.max(1))
            .map_max_entries(GEO_V4_LPM_MAP, options.geo.v4_lpm_prefixes.max(1))
            .map_max_entries(GEO_V6_TABLE_MAP, options.geo.v6_blocks.max(1))
            .map_max_entries(GEO_V6_NODES_MAP, options.geo.v6_nodes.max(1))
            .map_max_entries(GEO_V6_RANGES_MAP, options.geo.v6_lines.max(1))
            .map_max_entries(GEO_V6_LPM_MAP, options.geo.v6_prefixes.max(1));
        if options.bench_programs {
            loader.map_max_entries(BENCH_SLOTS_MAP, BENCH_SLOTS_PER_CPU * cpus);
        }
        if let Some(dir) = &options.pin_dir {
            std::fs::create_dir_all(dir).map_err(|source| KernelError::Io {
                context: format!(
                    "creating the pin directory {} (is bpffs mounted? `mount -t bpf bpf /sys/fs/bpf`)",
                    dir.display()
                ),
                source,
            })?;
            for name in PINNED_MAPS {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        loader.override_global(aya_log::LEVEL, &level, false);
        let counters_continued =
            options.pin_dir.as_ref().is_some_and(|dir| dir.join(COUNTERS_MAP).exists());
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|source| KernelError::Load { source: Box::new(source) })?;
        // With the level off the programs never write to the log ring buffer: no reader.
        let logger = if options.kernel_log == KernelLog::Off {
            None
        } else {
            aya_log::EbpfLogger::init(&mut ebpf)
                .map_err(|e| tracing::warn!("kernel diagnostics unavailable: {e}"))
                .ok()
        };
        let bench: &[&'static str] = if options.bench_programs {
            &[
                programs::PARSE_ONLY,
                programs::PARSE_PULL,
                programs::PARSE_COPY,
                programs::FLOOR,
                programs::FLOOR_SLOT,
                programs::EMPTY,
            ]
        } else {
            &[]
        };
        let names: Vec<&'static str> = [programs::UPLOAD, programs::DOWNLOAD]
            .into_iter()
            .chain(bench.iter().copied())
            .collect();
        for (name, verified) in load_programs(&mut ebpf, &names)? {
            // What the verifier walked (kernels since 5.16 say): how close to its limit of a
            // million instructions the program is on this kernel.
            if let Some(insns) = verified {
                tracing::info!(program = name, verified_insns = insns, "program loaded");
            }
        }
        Ok(Self {
            ebpf,
            counter_entries: options.counter_entries,
            attachments: Vec::new(),
            pin_dir: options.pin_dir.clone(),
            logger,
            counters_continued,
        })
    }

    /// Whether the traffic counters continue from an earlier agent (their map was pinned when
    /// this object was loaded), rather than starting from zero (the first start since boot or
    /// since `egress-tracer reset`, or no pinning).
    pub fn counters_continued(&self) -> bool {
        self.counters_continued
    }

    /// The programs' diagnostics, for [`spawn_kernel_log`] (only with a level other than off).
    pub fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }

    /// A loaded program by name, for attaching or `BPF_PROG_TEST_RUN`.
    pub fn program(&self, name: &'static str) -> Result<&SchedClassifier, KernelError> {
        self.ebpf
            .program(name)
            .ok_or(KernelError::Missing { kind: "program", name })?
            .try_into()
            .map_err(program_err(name))
    }

    pub(super) fn program_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut SchedClassifier, KernelError> {
        self.ebpf
            .program_mut(name)
            .ok_or(KernelError::Missing { kind: "program", name })?
            .try_into()
            .map_err(program_err(name))
    }

    pub(super) fn take_map(&mut self, name: &'static str) -> Result<aya::maps::Map, KernelError> {
        self.ebpf.take_map(name).ok_or(KernelError::Missing { kind: "map", name })
    }

    pub(super) fn map_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut aya::maps::Map, KernelError> {
        self.ebpf.map_mut(name).ok_or(KernelError::Missing { kind: "map", name })
    }
}

#[cfg(test)]
mod tests {
    use super::EBPF_OBJECT;

    /// [`super::Loader`] drops the kernel's BTF, which only CO-RE relocations would need.
    #[test]
    fn the_object_has_no_core_relocations() {
        let object = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded object parses");
        assert!(
            !object.has_btf_relocations(),
            "the object has CO-RE relocations: Loader::new must keep the kernel's BTF"
        );
    }

    /// The build script removed the DWARF (`build/strip_debug.rs`) and kept the BTF the
    /// kernel reads (types, function and line info of the global functions).
    #[test]
    fn the_object_has_btf_and_no_dwarf() {
        let has = |name: &[u8]| EBPF_OBJECT.windows(name.len()).any(|w| w == name);
        assert!(has(b".BTF.ext\0") && has(b".BTF\0"), "the embedded object lost its BTF");
        for dwarf in [b".debug_info".as_slice(), b".debug_line", b".debug_str", b".debug_loc"] {
            assert!(
                !has(dwarf),
                "the embedded object still holds {}",
                String::from_utf8_lossy(dwarf)
            );
        }
        assert!(
            EBPF_OBJECT.len() < 300 * 1024,
            "the embedded object is {} bytes: did its DWARF come back?",
            EBPF_OBJECT.len()
        );
    }
}
