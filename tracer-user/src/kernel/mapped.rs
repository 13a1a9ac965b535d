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
    let mapping = match SharedArray::map(map_fd, len) {
        Ok(mapping) => mapping,
        Err(err)
            if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENODEV | libc::ENOTSUP)) =>
        {
            return Ok(false);
        }
        Err(err) => return Err(io::Error::new(err.kind(), format!("mapping the array: {err}"))),
    };
    // SAFETY: the mapping is `len` writable bytes, and `values` is `len` bytes of plain old
    // data that cannot overlap a mapping made just now.
    unsafe {
        std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), mapping.base.as_ptr(), len);
    }
    mapping.unmap()?;
    Ok(true)
}

/// A shared, writable mapping of an array map (`BPF_F_MMAPABLE`), unmapped when dropped: the
/// agent reads what the programs write there at memory speed, and writes the few words the
/// programs leave to it. Reads and writes are volatile: the programs write the same
/// memory concurrently.
pub(super) struct SharedArray {
    base: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory shared with the kernel; every access goes through
// volatile reads and writes of plain old data, and the methods take `&self` only where a torn
// or concurrent value is acceptable to the caller.
unsafe impl Send for SharedArray {}
// SAFETY: as above.
unsafe impl Sync for SharedArray {}

impl SharedArray {
    /// Maps the first `len` bytes of the array map `map_fd` (its elements times their stride);
    /// the error is `mmap(2)`'s own (`EINVAL` for a map created without `BPF_F_MMAPABLE`).
    pub(super) fn map(map_fd: RawFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping; the kernel refuses one larger than the map.
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
            return Err(io::Error::last_os_error());
        }
        let base = std::ptr::NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self { base, len })
    }

    /// The element at byte `offset`, read at once (its words may be from different moments
    /// while a program writes it).
    pub(super) fn read<V: Pod>(&self, offset: usize) -> V {
        assert!(offset + size_of::<V>() <= self.len && offset.is_multiple_of(align_of::<V>()));
        // SAFETY: in bounds and aligned (asserted; the mapping is page-aligned); V is plain old
        // data, valid for any bytes.
        unsafe { self.base.add(offset).cast::<V>().read_volatile() }
    }

    /// Writes `value` at byte `offset`.
    pub(super) fn write<V: Pod>(&self, offset: usize, value: V) {
        assert!(offset + size_of::<V>() <= self.len && offset.is_multiple_of(align_of::<V>()));
        // SAFETY: in bounds and aligned (asserted); the memory is the map's, which the kernel
        // lets its mapper write.
        unsafe { self.base.add(offset).cast::<V>().write_volatile(value) }
    }
}

impl SharedArray {
    /// Unmaps now, saying whether `munmap(2)` failed.
    fn unmap(self) -> io::Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: unmaps exactly the mapping made in `map`; `this` is not dropped again.
        if unsafe { libc::munmap(this.base.as_ptr().cast(), this.len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for SharedArray {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing refers to any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
