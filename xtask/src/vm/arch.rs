//! The VM matrix: per architecture, the Rust target, the Debian architecture and kernel
//! flavour, and how QEMU boots it.

/// An architecture the VM test boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Arch {
    /// amd64, with KVM when /dev/kvm works.
    #[value(name = "x86_64")]
    X86_64,
    /// arm64 on `-M virt -cpu cortex-a57` (TCG).
    Aarch64,
    /// armhf (ARMv7, the armmp kernel) on `-M virt` (TCG).
    Armv7,
    /// mipsel (the 4kc-malta kernel) on `-M malta` (TCG).
    Mipsel,
    /// s390x (z/Architecture, big-endian: the `bpfeb` object, as big-endian MIPS routers need)
    /// on `-M s390-ccw-virtio` (TCG).
    S390x,
}

impl Arch {
    /// Every architecture, in the order the suite runs them.
    pub(crate) const ALL: [Arch; 5] =
        [Arch::X86_64, Arch::Aarch64, Arch::Armv7, Arch::Mipsel, Arch::S390x];

    /// The name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::Mipsel => "mipsel",
            Arch::S390x => "s390x",
        }
    }

    /// The Rust target of the static agent (`crate::dist::build`).
    pub(crate) fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
            Arch::Armv7 => "armv7-unknown-linux-musleabihf",
            Arch::Mipsel => "mipsel-unknown-linux-musl",
            Arch::S390x => "s390x-unknown-linux-musl",
        }
    }

    /// The Debian architecture the kernel and busybox come from.
    pub(crate) fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "armhf",
            Arch::Mipsel => "mipsel",
            Arch::S390x => "s390x",
        }
    }

    /// Debian's kernel flavour for this architecture (`linux-image-<flavour>`).
    pub(crate) fn kernel_flavour(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "armmp",
            Arch::Mipsel => "4kc-malta",
            Arch::S390x => "s390x",
        }
    }

    /// The QEMU system emulator.
    pub(crate) fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::Armv7 => "qemu-system-arm",
            Arch::Mipsel => "qemu-system-mipsel",
            Arch::S390x => "qemu-system-s390x",
        }
    }

    /// The Debian package that ships [`qemu`](Self::qemu).
    pub(crate) fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 | Arch::Armv7 => "qemu-system-arm",
            Arch::Mipsel => "qemu-system-mips",
            Arch::S390x => "qemu-system-misc",
        }
    }

    /// The machine (and CPU) options; `kvm` only matters on x86_64.
    pub(crate) fn machine_args(self, kvm: bool) -> Vec<&'static str> {
        match self {
            Arch::X86_64 if kvm => vec!["-M", "q35", "-enable-kvm", "-cpu", "host"],
            Arch::X86_64 => vec!["-M", "q35", "-cpu", "max"],
            Arch::Aarch64 => vec!["-M", "virt", "-cpu", "cortex-a57"],
            Arch::Armv7 => vec!["-M", "virt,highmem=off", "-cpu", "cortex-a15"],
            Arch::Mipsel => vec!["-M", "malta"],
            Arch::S390x => vec!["-M", "s390-ccw-virtio", "-cpu", "max"],
        }
    }

    /// The kernel's serial console device.
    pub(crate) fn console(self) -> &'static str {
        match self {
            Arch::X86_64 | Arch::Mipsel => "ttyS0",
            Arch::Aarch64 | Arch::Armv7 => "ttyAMA0",
            Arch::S390x => "ttysclp0",
        }
    }

    /// Guest memory in MiB (the malta board takes at most 256 MiB of low memory).
    pub(crate) fn memory_mib(self) -> u32 {
        match self {
            Arch::Mipsel => 256,
            _ => 1024,
        }
    }

    /// How long the whole boot-to-poweroff may take, in seconds (emulated 32-bit boards are
    /// slow).
    pub(crate) fn timeout_secs(self, kvm: bool) -> u64 {
        match self {
            Arch::X86_64 if kvm => 180,
            Arch::X86_64 | Arch::Aarch64 | Arch::S390x => 600,
            Arch::Armv7 | Arch::Mipsel => 900,
        }
    }
}

/// Which of bookworm's kernels: its release kernel, or the newer series it also ships.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Series {
    /// 6.1, bookworm's own (`linux-image-amd64`, ...): no TCX, the netlink clsact path.
    #[default]
    #[value(name = "6.1")]
    V6_1,
    /// 6.12 (`linux-image-6.12-amd64`, ...): TCX.
    #[value(name = "6.12")]
    V6_12,
}

impl Series {
    /// The metapackage of `arch`'s kernel in this series (it depends on the real
    /// `linux-image-<version>-<flavour>` package).
    pub(crate) fn metapackage(self, arch: Arch) -> String {
        match self {
            Series::V6_1 => format!("linux-image-{}", arch.kernel_flavour()),
            Series::V6_12 => format!("linux-image-6.12-{}", arch.kernel_flavour()),
        }
    }

    /// The series as on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// The cache directory's suffix: none for 6.1, `-6.12` for 6.12.
    pub(crate) fn cache_suffix(self) -> &'static str {
        match self {
            Series::V6_1 => "",
            Series::V6_12 => "-6.12",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_a_distinct_triple_and_debian_arch() {
        let triples: std::collections::BTreeSet<_> = Arch::ALL.iter().map(|a| a.triple()).collect();
        let debs: std::collections::BTreeSet<_> = Arch::ALL.iter().map(|a| a.debian()).collect();
        assert_eq!((triples.len(), debs.len()), (5, 5));
        assert_eq!(Arch::Armv7.qemu_package(), "qemu-system-arm");
        assert!(Arch::X86_64.machine_args(true).contains(&"-enable-kvm"));
        assert!(!Arch::X86_64.machine_args(false).contains(&"-enable-kvm"));
        assert_eq!(Series::V6_1.metapackage(Arch::Armv7), "linux-image-armmp");
        assert_eq!(Series::V6_12.metapackage(Arch::X86_64), "linux-image-6.12-amd64");
        assert_eq!(Series::V6_1.metapackage(Arch::S390x), "linux-image-s390x");
        assert_eq!(Arch::S390x.console(), "ttysclp0");
        assert_eq!(crate::dist::find(Arch::S390x.triple()).unwrap().debian_arch, "s390x");
    }
}
