//! Fixed-size byte ring addressed by absolute stream positions.
//!
//! Positions are `u32` byte counts since the ring was created and wrap around; the
//! capacity is a power of two so that `pos % N` stays consistent across the wrap.
//! The sender keeps unacknowledged console bytes here until the peer acknowledges
//! them, so retransmission needs no second buffer.

use core::mem::MaybeUninit;

#[derive(Debug)]
pub(crate) struct Ring<const N: usize> {
    buf: [u8; N],
    /// Position of the first byte held.
    tail: u32,
    /// Position one past the last byte held.
    head: u32,
}

impl<const N: usize> Ring<N> {
    const POWER_OF_TWO: () = assert!(
        N.is_power_of_two() && N <= (1 << 30),
        "ring capacity must be a power of two"
    );

    /// An empty ring where it stays, over zero bytes (see [`crate::init`]):
    /// zero bytes are an empty ring (its buffer, positions 0), so nothing is
    /// written; this checks the capacity.
    pub(crate) fn init_zeroed(slot: &mut MaybeUninit<Self>) {
        #[allow(clippy::let_unit_value)]
        let () = Self::POWER_OF_TWO;
        let _ = slot;
    }

    pub(crate) fn len(&self) -> usize {
        self.head.wrapping_sub(self.tail) as usize
    }

    pub(crate) fn free(&self) -> usize {
        N - self.len()
    }

    pub(crate) fn head(&self) -> u32 {
        self.head
    }

    pub(crate) fn tail(&self) -> u32 {
        self.tail
    }

    /// Appends as much of `data` as fits; returns the count.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        for &b in &data[..n] {
            self.buf[self.head as usize % N] = b;
            self.head = self.head.wrapping_add(1);
        }
        n
    }

    /// The longest contiguous run of held bytes starting at `pos`, at most `max`.
    pub(crate) fn contiguous(&self, pos: u32, max: usize) -> &[u8] {
        let avail = self.head.wrapping_sub(pos) as usize;
        if avail > self.len() {
            return &[];
        }
        let start = pos as usize % N;
        let n = avail.min(max).min(N - start);
        &self.buf[start..start + n]
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        self.tail = self.tail.wrapping_add(n as u32);
    }

    /// Takes the held bytes that lie contiguous from the front, in place: up
    /// to the end of the buffer (the rest, after the wrap, on the next call).
    /// They stay where they are until the next `push` may overwrite them.
    pub(crate) fn take(&mut self) -> &[u8] {
        let start = self.tail as usize % N;
        let n = self.len().min(N - start);
        self.tail = self.tail.wrapping_add(n as u32);
        self.buf.get(start..start + n).unwrap_or(&[])
    }

    /// Moves bytes from the front into `out`; returns the count.
    pub(crate) fn pop(&mut self, out: &mut [u8]) -> usize {
        let mut done = 0;
        while done < out.len() {
            let chunk = self.contiguous(self.tail, out.len() - done);
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            out[done..done + n].copy_from_slice(chunk);
            done += n;
            self.consume(n);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    /// `take` gives the held bytes in order, the part before the wrap first,
    /// and frees their room.
    #[test]
    #[allow(unsafe_code)]
    fn take_gives_the_front_in_place() {
        // SAFETY: `init_zeroed` leaves a ring.
        let mut r: Ring<8> = unsafe { crate::init::new(Ring::init_zeroed) };
        assert_eq!(r.take(), b"");
        assert_eq!(r.push(b"abcdef"), 6);
        assert_eq!(r.take(), b"abcdef");
        assert_eq!((r.len(), r.free()), (0, 8));
        assert_eq!(r.push(b"ghijk"), 5); // 2 before the wrap, 3 after
        assert_eq!(r.take(), b"gh");
        assert_eq!(r.take(), b"ijk");
        assert_eq!(r.take(), b"");
        assert_eq!(r.push(b"12345678x"), 8);
        let mut all = r.take().to_vec();
        all.extend_from_slice(r.take());
        assert_eq!(all, b"12345678");
    }
}
