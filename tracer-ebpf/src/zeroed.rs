//! Zeroing without `memset`.
//!
//! LLVM turns the zeroing of a `Default` struct or a `[0; N]` into a call of `memset`, which
//! the BPF target does not expand inline and aya-ebpf implements as a byte loop: the verifier
//! walks that loop a byte at a time at every call it reaches (64 bytes: some 320 instructions
//! a visit). A volatile store per word, into the value's own place (a copy of zeroed memory
//! would become a `memset` again), keeps the zeroing inline.

use core::mem::{MaybeUninit, align_of, size_of};

/// Sets every byte of `*slot` to zero with one store per `u64` word.
///
/// # Safety
///
/// `slot` must be valid for writes; `T` must be a multiple of 8 bytes and 8-aligned (checked
/// at compile time), and made of integers only, so that the zeroed value is a valid `T`.
#[inline(always)]
pub(crate) unsafe fn zero<T>(slot: *mut T) {
    const { assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() >= 8) };
    let words = slot.cast::<u64>();
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        // SAFETY: word `i` of `*slot`, which is 8-aligned and `size_of::<T>() / 8` words long.
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Zeroes `slot` in place (see [`zero`]) and returns the value.
#[inline(always)]
pub(crate) fn zeroed_in<T: Copy>(slot: &mut MaybeUninit<T>) -> &mut T {
    // SAFETY: a local slot, valid for writes; `zero` checks the layout, and the callers use it
    // for plain structs of integers, valid when all zero.
    unsafe {
        zero(slot.as_mut_ptr());
        slot.assume_init_mut()
    }
}
