//! A fixed-capacity FIFO with `u8` indices for the endpoints' short queues
//! (events, control messages, frames in flight): on a 32-bit MCU smaller in RAM
//! (2 bytes of bookkeeping, not `heapless::Deque`'s 9–12) and in code.
//! Items are small `Copy` values kept in a plain array (no `Option` per slot):
//! a slot outside the queue holds a filler or an old item, never read.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

/// Up to `N` (≤ 255) items, oldest first.
#[derive(Clone)]
pub(crate) struct Queue<T, const N: usize> {
    /// Slots outside the `len` items from `head` hold old items or fillers.
    buf: [T; N],
    head: u8,
    len: u8,
}

/// An item of a [`Queue`]: a small `Copy` value with a filler for the unused
/// slots (never read; written into a new queue's slots, as the zero bytes
/// around it are not an item for every type).
pub(crate) trait Item: Copy {
    const FILL: Self;
}

impl<T: Item, const N: usize> Queue<T, N> {
    const CAPACITY_FITS: () = assert!(N > 0 && N <= 255);

    #[cfg(test)]
    #[allow(unsafe_code)]
    pub(crate) fn new() -> Self {
        // SAFETY: `init::new` hands over zero bytes, which `init_zeroed`
        // turns into an empty queue.
        unsafe { crate::init::new(|slot| Self::init_zeroed(slot)) }
    }

    /// An empty queue where it stays, over zero bytes (see [`crate::init`]):
    /// the slots written one by one with the filler (an item's zero bytes
    /// need not be a valid item), never a whole array on the stack; `head`
    /// and `len` are 0 already.
    ///
    /// # Safety
    /// `slot` holds zero bytes.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn init_zeroed(slot: &mut MaybeUninit<Self>) {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS;
        let p = slot.as_mut_ptr();
        // SAFETY: `p` is valid for writes of a queue (from the `&mut`); each
        // of the `N` slots of the array is written through a raw pointer in
        // bounds of it; `head` and `len` are `u8`s of zero bytes (the
        // caller's guarantee): 0, an empty queue.
        unsafe {
            let buf = addr_of_mut!((*p).buf).cast::<T>();
            for i in 0..N {
                buf.add(i).write(T::FILL);
            }
        }
    }

    /// The buffer index of the `i`-th item (a remainder by a constant: the
    /// compiler knows it is in bounds, so indexing with it cannot panic).
    fn at(&self, i: usize) -> usize {
        (usize::from(self.head) + i) % N
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() == N
    }

    /// Appends `item`; gives it back when the queue is full.
    pub(crate) fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.is_full() {
            return Err(item);
        }
        let at = self.at(self.len());
        self.buf[at] = item;
        self.len += 1;
        Ok(())
    }

    /// Drops the oldest item, if any, leaving it in its slot (unreachable
    /// until reused: no write to the slot).
    pub(crate) fn drop_front(&mut self) {
        if !self.is_empty() {
            self.head = self.at(1) as u8;
            self.len -= 1;
        }
    }

    /// Appends `item`; when the queue is full the oldest item goes first.
    pub(crate) fn push_back_overwrite(&mut self, item: T) {
        if self.is_full() {
            // The oldest slot becomes the newest: it is overwritten below.
            self.drop_front();
        }
        let at = self.at(self.len());
        self.buf[at] = item;
        self.len += 1;
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let item = self.buf[self.at(0)];
        self.head = self.at(1) as u8;
        self.len -= 1;
        Some(item)
    }

    /// The `i`-th item, oldest first.
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len() {
            return None;
        }
        Some(&self.buf[self.at(i)])
    }

    /// Removes the `i`-th item (the later ones move up), if there is one.
    pub(crate) fn remove(&mut self, i: usize) {
        if i >= self.len() {
            return;
        }
        for k in i + 1..self.len() {
            self.buf[self.at(k - 1)] = self.buf[self.at(k)];
        }
        self.len -= 1;
    }

    /// Empties the queue. The old items stay in their slots (unreachable)
    /// until new ones replace them: two stores instead of a loop.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

impl<T: Item + core::fmt::Debug, const N: usize> core::fmt::Debug for Queue<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries((0..self.len()).filter_map(|i| self.get(i)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Item, Queue};

    impl Item for u32 {
        const FILL: u32 = 0;
    }
    use std::collections::VecDeque;

    /// Against `VecDeque` over a long pseudo-random run of pushes (also
    /// over the oldest item), pops and drops, removals, clears and lookups, with every wrap-around position of the head.
    #[test]
    fn behaves_like_vecdeque() {
        let mut q: Queue<u32, 3> = Queue::new();
        let mut model = VecDeque::new();
        let mut x = 0x9E37_79B9u32;
        for n in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 7 {
                0..=2 => {
                    let r = q.push_back(n);
                    if model.len() < 3 {
                        assert_eq!(r, Ok(()));
                        model.push_back(n);
                    } else {
                        assert_eq!(r, Err(n));
                    }
                }
                3 if x % 3 == 0 => {
                    q.drop_front();
                    model.pop_front();
                }
                3..=4 => assert_eq!(q.pop_front(), model.pop_front()),
                5 if x % 3 == 0 => {
                    q.push_back_overwrite(n);
                    if model.len() == 3 {
                        model.pop_front();
                    }
                    model.push_back(n);
                }
                5 => {
                    let i = (x >> 8) as usize % 4;
                    q.remove(i);
                    model.remove(i);
                }
                _ if x % 5 == 0 => {
                    q.clear();
                    model.clear();
                }
                _ => {}
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.is_empty(), model.is_empty());
            assert_eq!(q.is_full(), model.len() == 3);
            for i in 0..4 {
                assert_eq!(q.get(i), model.get(i));
            }
        }
    }
}
