//! Raw `bpf(2)` calls aya 0.14 does not offer: reading a whole per-CPU hash with
//! `BPF_MAP_LOOKUP_BATCH` (kernel 5.6+; a few syscalls per scrape instead of two per entry,
//! which is what keeps a scrape of 100k series fast).

use std::{io, os::fd::RawFd};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per syscall: small batches keep the kernel's bounce buffer in cache (256
/// read 100k entries in about 20 ms here, 4096 in about 30 ms).
const BATCH: u32 = 256;

/// `union bpf_attr`'s `batch` member (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(size_of::<BatchAttr>() == 56);

/// `bpf(cmd, attr, sizeof attr)`: the error is the call's errno.
///
/// # Safety
/// Every pointer in `attr` must point at memory of the size the command reads or writes.
unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<()> {
    // SAFETY: the caller vouches for the pointers in `attr`; `attr` itself is a live `A`.
    let ret = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<A>() as libc::c_uint)
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Reads every entry of a per-CPU hash with `cpus` possible CPUs, handing each key with its
/// per-CPU values to `each`. `Ok(None)` when the kernel has no batch lookup (the caller falls
/// back to iterating). `V`'s size must be a multiple of 8 (the kernel's per-CPU stride).
pub(super) fn read_all<K: Pod, V: Pod>(
    map_fd: RawFd,
    cpus: usize,
    mut each: impl FnMut(K, &[V]),
) -> io::Result<Option<()>> {
    const { assert!(size_of::<V>().is_multiple_of(8)) };
    let value_size = size_of::<V>();
    let mut per_cpu: Vec<V> = Vec::with_capacity(cpus);
    let mut keys = vec![0u8; BATCH as usize * size_of::<K>()];
    let mut values = vec![0u8; BATCH as usize * value_size * cpus];
    let (mut token, mut next) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { (&raw const token) as u64 },
            out_batch: (&raw mut next) as u64,
            map_fd: map_fd as u32,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: BATCH,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers sized for `count` keys and per-CPU values, and at
        // two u64 batch tokens (the kernel uses 4 bytes of them for hash maps).
        let err = unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        if let Some(e) = &err
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            return match e.raw_os_error() {
                Some(libc::EINVAL | libc::ENOTSUP | libc::EOPNOTSUPP) if first => Ok(None),
                _ => Err(io::Error::new(e.kind(), format!("BPF_MAP_LOOKUP_BATCH: {e}"))),
            };
        }
        for i in 0..attr.count as usize {
            let k = &keys[i * size_of::<K>()..][..size_of::<K>()];
            // SAFETY: K is plain old data (Pod) of exactly this size.
            let key: K = unsafe { std::ptr::read_unaligned(k.as_ptr().cast()) };
            per_cpu.clear();
            for cpu in 0..cpus {
                let v = &values[(i * cpus + cpu) * value_size..][..value_size];
                // SAFETY: V is plain old data (Pod) of exactly this size.
                per_cpu.push(unsafe { std::ptr::read_unaligned(v.as_ptr().cast()) });
            }
            each(key, &per_cpu);
        }
        if err.is_some() {
            return Ok(Some(())); // ENOENT: that was the last batch
        }
        token = next;
        first = false;
    }
}
