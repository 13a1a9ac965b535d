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

/// The errno behind an error, found by walking its sources to the `io::Error` of the syscall.
pub(crate) fn errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(code) = e.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

/// What to do about the errno of a failed load, if it says.
fn hint(err: &aya::EbpfError) -> &'static str {
    match errno(err) {
        Some(libc::EPERM | libc::EACCES) => {
            " (hint: run as root or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)"
        }
        Some(libc::ENOSYS) => " (hint: this kernel was built without CONFIG_BPF_SYSCALL)",
        Some(libc::ENOMEM) => {
            " (hint: the maps do not fit: lower --counter-entries or --remote-entries, or raise \
             RLIMIT_MEMLOCK on kernels before 5.11)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_errno_not_the_text() {
        let denied = aya::EbpfError::MapError(aya::maps::MapError::CreateError {
            name: "COUNTERS".into(),
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        });
        assert_eq!(errno(&denied), Some(libc::EPERM));
        assert!(hint(&denied).contains("CAP_BPF"), "{}", hint(&denied));
        let nomem = aya::EbpfError::MapError(aya::maps::MapError::CreateError {
            name: "COUNTERS".into(),
            io_error: io::Error::from_raw_os_error(libc::ENOMEM),
        });
        assert!(hint(&nomem).contains("--counter-entries"), "{}", hint(&nomem));
        // A message that merely says "Operation not permitted" carries no errno: no hint.
        let text = aya::EbpfError::MapError(aya::maps::MapError::CreateError {
            name: "Operation not permitted".into(),
            io_error: io::Error::other("Operation not permitted"),
        });
        assert_eq!(hint(&text), "");
    }
}
