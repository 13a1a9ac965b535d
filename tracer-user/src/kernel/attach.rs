//! Attaching the programs to LAN interfaces (TCX on kernels >= 6.6, netlink clsact below), and
//! handing the attachments over to a new object atomically.

use aya::{
    programs::{
        LinkOrder, TcAttachType, tc,
        tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
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

/// Which attach mechanism to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachPreference {
    /// TCX where the kernel has it (>= 6.6), netlink clsact otherwise.
    #[default]
    Auto,
    /// TCX links only.
    Tcx,
    /// cls_bpf filters on a clsact qdisc, as on kernels before 6.6 (OpenWrt 23.05 runs 5.15).
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

/// An attachment and the links that make it.
#[derive(Debug)]
pub(super) struct Attached {
    info: Attachment,
    upload: SchedClassifierLinkId,
    download: SchedClassifierLinkId,
}

/// Program, hook and its name, upload first.
const HOOKS: [(&str, TcAttachType, &str); 2] = [
    (programs::UPLOAD, TcAttachType::Ingress, "ingress"),
    (programs::DOWNLOAD, TcAttachType::Egress, "egress"),
];

fn attach_err(
    program: &'static str,
    interface: &str,
    direction: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> KernelError {
    move |source| KernelError::Attach {
        program,
        interface: interface.to_owned(),
        direction,
        source: Box::new(source),
    }
}

impl Kernel {
    /// Attaches the upload program to ingress and the download program to egress of
    /// `interface`. Detached again when the [`Kernel`] is dropped.
    pub fn attach(
        &mut self,
        interface: &str,
        preference: AttachPreference,
    ) -> Result<Attachment, KernelError> {
        if crate::netif::index(interface) == 0 {
            return Err(KernelError::NoSuchInterface(interface.to_owned()));
        }
        let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
        let mode = match preference {
            AttachPreference::Tcx => AttachMode::Tcx,
            AttachPreference::Auto if tcx => AttachMode::Tcx,
            AttachPreference::Auto | AttachPreference::Netlink => {
                // Fails with EEXIST when the qdisc is already there, which is fine.
                let _ = tc::qdisc_add_clsact(interface);
                AttachMode::Netlink
            }
        };
        let options = || match mode {
            AttachMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            AttachMode::Netlink => TcAttachOptions::Netlink(NlOptions::default()),
        };
        let [(up, up_hook, up_dir), (down, down_hook, down_dir)] = HOOKS;
        let upload = self
            .program_mut(up)?
            .attach_with_options(interface, up_hook, options())
            .map_err(attach_err(up, interface, up_dir))?;
        let download = self
            .program_mut(down)?
            .attach_with_options(interface, down_hook, options())
            .map_err(attach_err(down, interface, down_dir))?;
        let info = Attachment { interface: interface.to_owned(), mode };
        self.attachments.push(Attached { info: info.clone(), upload, download });
        Ok(info)
    }

    /// The interfaces the programs are attached to.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.attachments.iter().map(|a| a.info.clone()).collect()
    }

    /// Moves every attachment of `old` to this object's programs, atomically per hook (a TCX
    /// link update, or a netlink filter replace): each packet runs either the old or the new
    /// program, never neither. `old` keeps no attachment and can be dropped.
    pub fn take_over(&mut self, old: &mut Kernel) -> Result<(), KernelError> {
        let [(up, _, up_dir), (down, _, down_dir)] = HOOKS;
        for attached in std::mem::take(&mut old.attachments) {
            let iface = attached.info.interface.as_str();
            let link = old
                .program_mut(up)?
                .take_link(attached.upload)
                .map_err(attach_err(up, iface, up_dir))?;
            let upload = self
                .program_mut(up)?
                .attach_to_link(link)
                .map_err(attach_err(up, iface, up_dir))?;
            let link = old
                .program_mut(down)?
                .take_link(attached.download)
                .map_err(attach_err(down, iface, down_dir))?;
            let download = self
                .program_mut(down)?
                .attach_to_link(link)
                .map_err(attach_err(down, iface, down_dir))?;
            self.attachments.push(Attached { info: attached.info, upload, download });
        }
        Ok(())
    }
}
