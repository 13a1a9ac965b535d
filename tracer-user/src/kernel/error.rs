//! Errors of the kernel module.

use std::io;

/// What can go wrong loading, attaching or reading the eBPF programs and maps.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The object could not be loaded (map creation, relocation, BTF...).
    #[error("loading the eBPF object failed: {source}{}", hint(source))]
    Load {
        /// The underlying error.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program failed to load; `verifier_log` says why.
    #[error("loading program {name} failed: {source}")]
    Program {
        /// Program name.
        name: &'static str,
        /// The underlying error (includes the verifier log).
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The object lacks a program or map this agent expects (a build mismatch).
    #[error("the eBPF object has no {kind} named {name}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },
    /// Attaching to an interface failed.
    #[error("attaching {program} to {interface} ({direction}) failed: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface name.
        interface: String,
        /// "ingress" or "egress".
        direction: &'static str,
        /// The underlying error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The underlying error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The interface does not exist.
    #[error("interface {0:?} does not exist (see `ip link`)")]
    NoSuchInterface(String),
    /// Another I/O error.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn hint(err: &aya::EbpfError) -> &'static str {
    let text = err.to_string();
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        " (hint: run as root or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)"
    } else if text.contains("Function not implemented") || text.contains("ENOSYS") {
        " (hint: this kernel was built without CONFIG_BPF_SYSCALL)"
    } else {
        ""
    }
}
