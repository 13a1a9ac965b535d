//! Attaching the programs to LAN interfaces (TCX on kernels >= 6.6, netlink clsact below), and
//! handing the attachments over to a new object atomically.

use std::path::{Path, PathBuf};

use aya::{
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        links::{FdLink, PinnedLink},
        tc,
        tc::{NlOptions, SchedClassifierLink, SchedClassifierLinkId, TcAttachOptions, TcHandle},
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// Pinned TCX links (removed on a clean detach).
    pins: Vec<PathBuf>,
}

/// Priority and handle of our netlink filters. Fixed, so that an agent started after one that
/// was killed replaces the filter left behind instead of adding a second one.
const NL_PRIORITY: u16 = 0x4554;
const NL_HANDLE: TcHandle = TcHandle::new(0, 0x4554);

fn link_err(
    program: &'static str,
    interface: &str,
    direction: &'static str,
) -> impl Fn(aya::programs::links::LinkError) -> KernelError {
    let attach = attach_err(program, interface, direction);
    move |e| attach(aya::programs::ProgramError::IOError(std::io::Error::other(e.to_string())))
}

/// Attaches `prog` to one hook so that the attachment outlives a killed agent and is taken over
/// by the next one: netlink filters at a fixed priority and handle; TCX links pinned in
/// `pin_dir`. Returns the link id and the pin (TCX).
fn attach_hook(
    prog: &mut SchedClassifier,
    (program, hook, direction): (&'static str, TcAttachType, &'static str),
    interface: &str,
    mode: AttachMode,
    pin_dir: Option<&Path>,
) -> Result<(SchedClassifierLinkId, Option<PathBuf>), KernelError> {
    let err = attach_err(program, interface, direction);
    let lerr = link_err(program, interface, direction);
    match mode {
        AttachMode::Netlink => {
            let options =
                NlOptions { priority: NL_PRIORITY, handle: NL_HANDLE, ..NlOptions::default() };
            match prog.attach_with_options(interface, hook, TcAttachOptions::Netlink(options)) {
                Ok(id) => Ok((id, None)),
                Err(first) => {
                    // Our filter is still there (its agent was killed): replace it atomically.
                    let link = SchedClassifierLink::attached(
                        interface,
                        hook,
                        NL_PRIORITY,
                        NL_HANDLE,
                        None,
                    )
                    .map_err(|_| err(first))?;
                    Ok((prog.attach_to_link(link).map_err(&err)?, None))
                }
            }
        }
        AttachMode::Tcx => {
            let tcx = || TcAttachOptions::TcxOrder(LinkOrder::default());
            let Some(dir) = pin_dir else {
                return Ok((prog.attach_with_options(interface, hook, tcx()).map_err(err)?, None));
            };
            let path = dir.join(format!("link-{interface}-{direction}"));
            if let Ok(old) = PinnedLink::from_pin(&path) {
                // A killed agent's link, still counting: move it to this program in one step.
                let link = SchedClassifierLink::try_from(FdLink::from(old)).map_err(&lerr)?;
                return Ok((prog.attach_to_link(link).map_err(&err)?, Some(path)));
            }
            let id = prog.attach_with_options(interface, hook, tcx()).map_err(&err)?;
            let fd = FdLink::try_from(prog.take_link(id).map_err(&err)?).map_err(&lerr)?;
            let pinned = fd.pin(&path).map_err(|e| {
                err(aya::programs::ProgramError::IOError(std::io::Error::other(e.to_string())))
            })?;
            let link = SchedClassifierLink::try_from(FdLink::from(pinned)).map_err(&lerr)?;
            Ok((prog.attach_to_link(link).map_err(&err)?, Some(path)))
        }
    }
}

/// Program, hook and its name, upload first.
const HOOKS: [(&str, TcAttachType, &str); 2] = [
    (programs::UPLOAD, TcAttachType::Ingress, "ingress"),
    (programs::DOWNLOAD, TcAttachType::Egress, "egress"),
];

/// Whether the kernel has TCX (6.6 and newer).
fn has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

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
        if crate::kernel::netif::index(interface) == 0 {
            return Err(KernelError::NoSuchInterface(interface.to_owned()));
        }
        let mode = match preference {
            AttachPreference::Tcx => AttachMode::Tcx,
            AttachPreference::Auto if has_tcx() => AttachMode::Tcx,
            AttachPreference::Auto | AttachPreference::Netlink => {
                // Fails with EEXIST when the qdisc is already there, which is fine.
                let _ = tc::qdisc_add_clsact(interface);
                AttachMode::Netlink
            }
        };
        let pin_dir = self.pin_dir.clone();
        let [up_hook, down_hook] = HOOKS;
        let (upload, up_pin) = attach_hook(
            self.program_mut(up_hook.0)?,
            up_hook,
            interface,
            mode,
            pin_dir.as_deref(),
        )?;
        let (download, down_pin) = attach_hook(
            self.program_mut(down_hook.0)?,
            down_hook,
            interface,
            mode,
            pin_dir.as_deref(),
        )?;
        let info = Attachment { interface: interface.to_owned(), mode };
        let pins = up_pin.into_iter().chain(down_pin).collect();
        self.attachments.push(Attached { info: info.clone(), upload, download, pins });
        Ok(info)
    }

    /// Attaches one loaded program, alone, to TC ingress of `interface` (TCX where the kernel
    /// has it, else netlink clsact), without pinning: what the in-situ benchmark measures each
    /// program with. [`Kernel::detach_program`] takes it off again.
    pub fn attach_program(
        &mut self,
        name: &'static str,
        interface: &str,
    ) -> Result<SchedClassifierLinkId, KernelError> {
        if !has_tcx() {
            // Fails with EEXIST when the qdisc is already there, which is fine.
            let _ = tc::qdisc_add_clsact(interface);
        }
        self.program_mut(name)?
            .attach(interface, TcAttachType::Ingress)
            .map_err(attach_err(name, interface, "ingress"))
    }

    /// Detaches what [`Kernel::attach_program`] attached.
    pub fn detach_program(
        &mut self,
        name: &'static str,
        link: SchedClassifierLinkId,
    ) -> Result<(), KernelError> {
        self.program_mut(name)?.detach(link).map_err(super::load::program_err(name))
    }

    /// Detaches for good: removes the link pins, so that dropping the object detaches the
    /// programs (a killed agent leaves them attached and counting instead).
    pub fn detach_all(&mut self) {
        for attached in &self.attachments {
            for pin in &attached.pins {
                let _ = std::fs::remove_file(pin);
            }
        }
    }

    /// Moves every attachment of `old` to this object's programs, atomically per hook (a TCX
    /// link update, or a netlink filter replace): each packet runs either the old or the new
    /// program, never neither. `old` keeps no attachment and can be dropped.
    pub fn take_over(&mut self, old: &mut Kernel) -> Result<(), KernelError> {
        for attached in std::mem::take(&mut old.attachments) {
            let iface = attached.info.interface.as_str();
            let mut moved = Vec::with_capacity(2);
            for ((program, _, direction), id) in
                HOOKS.into_iter().zip([attached.upload, attached.download])
            {
                let err = attach_err(program, iface, direction);
                let link = old.program_mut(program)?.take_link(id).map_err(&err)?;
                moved.push(self.program_mut(program)?.attach_to_link(link).map_err(&err)?);
            }
            let (Some(download), Some(upload)) = (moved.pop(), moved.pop()) else {
                unreachable!("two hooks were moved")
            };
            self.attachments.push(Attached {
                info: attached.info,
                upload,
                download,
                pins: attached.pins,
            });
        }
        Ok(())
    }
}
