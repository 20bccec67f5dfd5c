//! Construction in place, for the RTOS side's RAM: an endpoint holds its
//! console rings (kilobytes), and a value built by `new` is built in stack
//! temporaries and copied where it stays, which a microcontroller's 2–4 KiB
//! main stack cannot hold. [`crate::RtosEndpoint::init`] instead builds the
//! endpoint where it stays: it clears the whole place (one `memset`), then
//! writes, through raw pointers, only the fields whose initial value is not
//! zero bytes, recursing into the in-place initialisers of its parts
//! (`Core`, `Session`, `Queue`, `Ring`, `Deframer`: `init_zeroed`, each
//! taking its own `&mut MaybeUninit<Self>` of zero bytes). A field they leave
//! is of a type for which zero bytes are a valid value and its initial one:
//! integers, `bool`, byte arrays and structs of those (`Ms`, `Wrap`,
//! `Counters`, `Ring`, `Deframer`). Enums, references and the queues' items
//! are always written, whatever their layout. One clear instead of a clear
//! per ring and a store per field is ≈ 60 B less code on a Cortex-M
//! (docs/footprint.md, round 7). The `new` functions of these types are built
//! on the same initialisers over `MaybeUninit::zeroed`, so the field list
//! exists once (only `Deframer::new` stays a `const fn` of its own; tests
//! `zeroed_init_is_new` and `init_over_garbage_is_new`).
//!
//! These initialisers, and the two helpers below, are the only unsafe code
//! of the crate (`#![deny(unsafe_code)]`, allowed on each of them); every
//! unsafe block says why it is sound.

use core::mem::MaybeUninit;

/// A value built by value on top of its in-place initialiser, over zero bytes.
///
/// # Safety
/// `init`, given a slot of zero bytes, must leave a valid value in it (every
/// `init_zeroed` of this crate does: that is its contract).
#[allow(unsafe_code)]
pub(crate) unsafe fn new<T>(init: impl FnOnce(&mut MaybeUninit<T>)) -> T {
    let mut slot = MaybeUninit::zeroed();
    init(&mut slot);
    // SAFETY: `init` initialised the slot (the caller's guarantee).
    unsafe { slot.assume_init() }
}

/// The place `p` points at (a field of a value under construction) as a slot
/// of its own, for that field's in-place initialiser.
///
/// # Safety
/// `p` is aligned and valid for writes of a `T`, and nothing else reads or
/// writes that place while the returned reference lives.
#[allow(unsafe_code)]
pub(crate) unsafe fn field<'a, T>(p: *mut T) -> &'a mut MaybeUninit<T> {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and any bytes are a
    // valid `MaybeUninit<T>`; validity and exclusiveness: the caller's.
    unsafe { &mut *p.cast::<MaybeUninit<T>>() }
}
