//! Checked conversions from C arguments to Rust values. NULL where a pointer is
//! required, a length too large for a slice, or a misaligned struct pointer become
//! errors here instead of undefined behaviour further in.

use core::ptr::NonNull;

use crate::status::{fail, Failed, MICRUN_ERR_INVALID_ARG, MICRUN_ERR_NULL};

/// `len` bytes at `ptr`, which may be NULL only when `len` is 0.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` bytes for `'a`, and nothing
/// may write them meanwhile.
pub unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failed> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(fail!(MICRUN_ERR_NULL, "{what} is NULL with length {len}"));
    }
    if len > isize::MAX as usize {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what}: length {len} is too large"
        ));
    }
    // SAFETY: non-NULL, length in range; validity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `cap` writable bytes at `ptr`, which may be NULL only when `cap` is 0 (a size
/// query).
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads and writes of `cap` bytes for `'a`,
/// and no other reference may reach them meanwhile.
pub unsafe fn buffer<'a>(ptr: *mut u8, cap: usize, what: &str) -> Result<&'a mut [u8], Failed> {
    check_buffer(ptr, cap, what)?;
    if cap == 0 {
        return Ok(&mut []);
    }
    // SAFETY: non-NULL, length in range; validity is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, cap) })
}

/// The checks of [`buffer`] without making the slice, for callers that must
/// write through the raw pointer first.
pub fn check_buffer(ptr: *mut u8, cap: usize, what: &str) -> Result<(), Failed> {
    if cap != 0 && ptr.is_null() {
        return Err(fail!(MICRUN_ERR_NULL, "{what} is NULL with capacity {cap}"));
    }
    if cap > isize::MAX as usize {
        return Err(fail!(
            MICRUN_ERR_INVALID_ARG,
            "{what}: capacity {cap} is too large"
        ));
    }
    Ok(())
}

/// A required pointer to a struct the caller filled in.
pub fn input<T>(ptr: *const T, what: &str) -> Result<NonNull<T>, Failed> {
    let p = NonNull::new(ptr as *mut T).ok_or_else(|| fail!(MICRUN_ERR_NULL, "{what} is NULL"))?;
    aligned(p, what)
}

/// A required pointer to where a result goes. Written with [`Out::set`], never
/// read, so it may point to uninitialised memory.
pub struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    pub fn new(ptr: *mut T, what: &str) -> Result<Self, Failed> {
        let p = NonNull::new(ptr).ok_or_else(|| fail!(MICRUN_ERR_NULL, "{what} is NULL"))?;
        aligned(p, what).map(Out)
    }

    /// Stores `v`.
    ///
    /// # Safety
    /// The pointer given to [`Out::new`] must be valid for a write of `T`.
    pub unsafe fn set(&self, v: T) {
        // SAFETY: non-NULL and aligned (checked in new); valid per the contract.
        unsafe { self.0.as_ptr().write(v) }
    }
}

fn aligned<T>(p: NonNull<T>, what: &str) -> Result<NonNull<T>, Failed> {
    if (p.as_ptr() as usize) % core::mem::align_of::<T>() != 0 {
        return Err(fail!(MICRUN_ERR_INVALID_ARG, "{what} is misaligned"));
    }
    Ok(p)
}

/// Whether two byte ranges share memory.
pub fn overlap(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}
