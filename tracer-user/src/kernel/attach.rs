//! Attaching the programs to LAN interfaces (TCX on kernels >= 6.6, netlink clsact below).

use aya::{
    programs::{TcAttachType, tc},
    util::KernelVersion,
};

use super::{Kernel, KernelError, programs};

/// How the programs were attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// TCX links (kernel >= 6.6).
    Tcx,
    /// cls_bpf filters on a clsact qdisc.
    Netlink,
}

/// One LAN interface the programs are attached to.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// Interface name.
    pub interface: String,
    /// TCX or netlink.
    pub mode: AttachMode,
}

impl Kernel {
    /// Attaches the upload program to ingress and the download program to egress of
    /// `interface`. Detached again when the [`Kernel`] is dropped.
    pub fn attach(&mut self, interface: &str) -> Result<Attachment, KernelError> {
        if nix_if_index(interface) == 0 {
            return Err(KernelError::NoSuchInterface(interface.to_owned()));
        }
        let mode = if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) {
            AttachMode::Tcx
        } else {
            // Fails with EEXIST when the qdisc is already there, which is fine.
            let _ = tc::qdisc_add_clsact(interface);
            AttachMode::Netlink
        };
        for (program, attach_type, direction) in [
            (programs::UPLOAD, TcAttachType::Ingress, "ingress"),
            (programs::DOWNLOAD, TcAttachType::Egress, "egress"),
        ] {
            self.program_mut(program)?
                .attach(interface, attach_type)
                .map_err(|source| KernelError::Attach {
                    program,
                    interface: interface.to_owned(),
                    direction,
                    source: Box::new(source),
                })?;
        }
        Ok(Attachment {
            interface: interface.to_owned(),
            mode,
        })
    }
}

/// The interface index of `name`, 0 if there is none.
pub(crate) fn nix_if_index(name: &str) -> u32 {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `c_name` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c_name.as_ptr()) }
}
