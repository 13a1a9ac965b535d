//! TC classifier programs: count every packet a LAN device sends or receives by the country of
//! the remote address.
//!
//! `tc_upload` runs on TC ingress of a LAN interface (frames sent by devices, the remote is the
//! destination); `tc_download` on TC egress (frames sent to devices, the remote is the source).
//! Both return `TC_ACT_OK` except for packets a `block` policy drops (`TC_ACT_SHOT`); with no
//! policy configured they only observe.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod budget;
#[cfg(target_arch = "bpf")]
mod capture;
#[cfg(target_arch = "bpf")]
mod classify;
#[cfg(target_arch = "bpf")]
mod count;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod policy;
#[cfg(target_arch = "bpf")]
mod zeroed;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{bindings::TC_ACT_OK, macros::classifier, programs::TcContext};
    use tracer_common::Direction;

    /// Frames sent by LAN devices (TC ingress of the LAN interface).
    #[classifier]
    pub(crate) fn tc_upload(ctx: TcContext) -> i32 {
        crate::count::account(&ctx, Direction::Upload)
    }

    /// Frames sent to LAN devices (TC egress of the LAN interface).
    #[classifier]
    pub(crate) fn tc_download(ctx: TcContext) -> i32 {
        crate::count::account(&ctx, Direction::Download)
    }

    /// Parses like the classifier but touches no map: the bench's "parse only" baseline.
    #[classifier]
    pub(crate) fn tc_parse_only(ctx: TcContext) -> i32 {
        let parsed = crate::parse::parse(&ctx, Direction::Upload);
        core::hint::black_box(&parsed);
        TC_ACT_OK
    }

    /// Parses after pulling the headers into the linear area (`bpf_skb_pull_data`): the
    /// bench's comparison for non-linear frames.
    #[classifier]
    pub(crate) fn tc_parse_pull(ctx: TcContext) -> i32 {
        let parsed = crate::parse::parse_pulled(&ctx, Direction::Upload);
        core::hint::black_box(&parsed);
        TC_ACT_OK
    }

    /// Parses by copying the headers out (`bpf_skb_load_bytes`) instead of pulling them into
    /// the linear area: the bench's comparison for non-linear frames.
    #[classifier]
    pub(crate) fn tc_parse_copy(ctx: TcContext) -> i32 {
        let parsed = crate::parse::parse_copied(&ctx, Direction::Upload);
        core::hint::black_box(&parsed);
        TC_ACT_OK
    }

    /// Parses and adds the frame to one per-CPU hash entry keyed by its device: the least any
    /// per-device counting does, the bench's floor.
    #[classifier]
    pub(crate) fn tc_floor(ctx: TcContext) -> i32 {
        crate::count::floor(&ctx)
    }

    /// The floor, and one slot of a flat array keyed by the remote: the bench's measure of the
    /// least any table of remotes adds.
    #[classifier]
    pub(crate) fn tc_floor_slot(ctx: TcContext) -> i32 {
        crate::count::floor_slot(&ctx)
    }

    /// Returns at once: the bench's "empty program" baseline.
    #[classifier]
    pub(crate) fn tc_empty(_ctx: TcContext) -> i32 {
        TC_ACT_OK
    }
}

/// The license the kernel checks GPL-only helpers against.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
