//! Filling an array map through a shared mapping of its values (`BPF_F_MMAPABLE`, kernel
//! 5.5+): one `mmap(2)` and a copy at memory speed, where `BPF_MAP_UPDATE_BATCH` copies and
//! checks each element in the kernel (the geo maps' 52,000 elements took 12-17 ms of every load
//! that way, 1 ms this way).

use std::{io, os::fd::RawFd};

use aya::Pod;

/// Writes `values` into the array map `map_fd` at indices 0, 1, ... through a shared mapping.
/// `Ok(false)` when the map cannot be mapped (created without `BPF_F_MMAPABLE`); nothing was
/// written then, and the caller writes one element at a time. The kernel's element stride is the value size rounded up to 8, so `V`'s size
/// must be a multiple of 8.
pub(super) fn write_array<V: Pod>(map_fd: RawFd, values: &[V]) -> io::Result<bool> {
    const { assert!(size_of::<V>().is_multiple_of(8)) };
    let len = size_of_val(values);
    if len == 0 {
        return Ok(true);
    }
    // SAFETY: a fresh shared mapping of the map's first `len` bytes (the kernel refuses one
    // larger than the map); nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            map_fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EINVAL | libc::ENODEV | libc::ENOTSUP) => Ok(false),
            _ => Err(io::Error::new(err.kind(), format!("mapping the array: {err}"))),
        };
    }
    // SAFETY: `base` is `len` writable bytes, and `values` is `len` bytes of plain old data
    // that cannot overlap a mapping made just now.
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), base.cast::<u8>(), len) };
    // SAFETY: unmaps exactly the mapping made above.
    if unsafe { libc::munmap(base, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
