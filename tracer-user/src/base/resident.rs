//! Giving back the resident pages of data embedded in the executable once it has been read.

/// Asks the kernel to reclaim the pages lying wholly inside `data`, data embedded in the
/// executable (`include_bytes!`) that has been read and is not needed again soon
/// (`MADV_PAGEOUT`, Linux 5.4). They are clean pages of the executable file: a later read of
/// `data` maps them again from the page cache (or the file). Only the resident size changes
/// (the embedded database and the eBPF object are over 1 MiB of the agent's steady RSS
/// otherwise). `MADV_PAGEOUT`, unlike `MADV_DONTNEED`, never discards contents: were the
/// executable's image anonymous memory (a self-extracting packer such as UPX), the pages would
/// stay or go to swap, not read back as zeros.
pub fn release_embedded(data: &'static [u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        page if page > 0 => page as usize,
        _ => return,
    };
    let start = (data.as_ptr() as usize).next_multiple_of(page);
    let end = (data.as_ptr() as usize + data.len()) / page * page;
    if end <= start {
        return;
    }
    // SAFETY: `start..end` is whole pages inside `data`, an immutable static; MADV_PAGEOUT
    // only reclaims pages, keeping their contents (from the file, or swap), so nothing the
    // program reads changes.
    let ret = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
    if ret != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "madvise(MADV_PAGEOUT) of embedded data");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATA: [u8; 3 * 65536] = {
        let mut data = [0u8; 3 * 65536];
        let mut i = 0;
        while i < data.len() {
            data[i] = (i % 251) as u8;
            i += 1;
        }
        data
    };

    #[test]
    fn released_data_reads_back_the_same() {
        let data: &'static [u8] = &DATA;
        let sum = |d: &[u8]| d.iter().map(|&b| u64::from(b)).sum::<u64>();
        let before = sum(data);
        release_embedded(data);
        assert_eq!(sum(data), before);
        assert!(data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}
