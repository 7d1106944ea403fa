//! Byte buffers of written batches, kept for the next blobs. The scheduler copies every blob
//! it takes out of the frame it came in (and every node it stages); allocating each copy and
//! freeing it once its batch is written cost more than the copy itself. Buffers are pooled by
//! capacity, a power of two per class, within a byte budget.

/// Smallest and largest pooled capacity: 2^6 = 64 bytes (a leaf) to 2^15 = 32 KiB (code);
/// larger blobs are rare and allocated as they come.
const MIN_CLASS: u32 = 6;
const MAX_CLASS: u32 = 15;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;

#[derive(Debug, Default)]
pub(super) struct Buffers {
    /// Free buffers by class: class `c` holds capacities of at least `2^(MIN_CLASS + c)`.
    free: [Vec<Vec<u8>>; CLASSES],
    /// Capacity held in `free`.
    held: usize,
}

impl Buffers {
    /// A buffer holding a copy of `data`: a pooled one if there is one big enough.
    pub fn copy_of(&mut self, data: &[u8]) -> Vec<u8> {
        let len = data.len().max(1);
        let class = usize::BITS - (len - 1).leading_zeros();
        if class > MAX_CLASS {
            return data.to_vec();
        }
        let class = class.max(MIN_CLASS);
        let slot = (class - MIN_CLASS) as usize;
        let mut buffer = match self.free[slot].pop() {
            Some(buffer) => {
                self.held -= buffer.capacity();
                buffer
            }
            None => Vec::with_capacity(1 << class),
        };
        buffer.clear();
        buffer.extend_from_slice(data);
        buffer
    }

    /// Keeps `buffer` for a later copy while the pool holds under `budget` bytes.
    pub fn give_back(&mut self, buffer: Vec<u8>, budget: usize) {
        let capacity = buffer.capacity();
        if capacity < 1 << MIN_CLASS || self.held + capacity > budget {
            return;
        }
        // The largest class whose every length fits: the capacity's own power of two.
        let class = (usize::BITS - 1 - capacity.leading_zeros()).min(MAX_CLASS);
        self.held += capacity;
        self.free[(class - MIN_CLASS) as usize].push(buffer);
    }

    /// Capacity held for reuse.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn copies_reuse_buffers_given_back_within_the_budget() {
        let mut buffers = Buffers::default();
        let first = buffers.copy_of(&[7; 100]);
        assert_eq!(first, vec![7; 100]);
        assert_eq!(first.capacity(), 128);
        let address = first.as_ptr();
        buffers.give_back(first, 1024);
        assert_eq!(buffers.held(), 128);
        // Any length in (64, 128] takes it.
        let second = buffers.copy_of(&[9; 65]);
        assert_eq!(second.as_ptr(), address);
        assert_eq!(second, vec![9; 65]);
        assert_eq!(buffers.held(), 0);
        // Past the budget nothing is kept.
        buffers.give_back(second, 100);
        assert_eq!(buffers.held(), 0);
        // A buffer of any capacity serves the lengths its power of two covers.
        buffers.give_back(Vec::with_capacity(200), 1024);
        assert_eq!(buffers.copy_of(&[1; 128]).capacity(), 200);
        assert!(buffers.copy_of(&[]).is_empty());
        assert_eq!(buffers.copy_of(&[3; 40_000]).len(), 40_000);
    }
}
