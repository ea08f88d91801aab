//! The processes of a data-parallel run, as the training loop sees them: each holds the whole
//! model, takes its share of every batch, and sums its gradients with the others' before the
//! same optimizer step. [`Alone`] is one process; `vae-train --features mpi` implements
//! [`Collective`] over MPI. This crate knows nothing of MPI.

use std::hash::Hasher;

use nn::ParamStore;
use sha2::{Digest, Sha256};

/// The processes of a run and the collective operations the training loop needs. Every
/// process calls the same operations in the same order; each returns the same result on all.
pub trait Collective {
    /// This process's number, 0 for the one that writes files and shows progress.
    fn rank(&self) -> usize;

    /// How many processes share the run.
    fn ranks(&self) -> usize;

    /// Sums `mine` element by element over the processes into `sums` (of the same length).
    fn sum_into(&self, mine: &[f32], sums: &mut [f32]);

    /// Sums `values` element by element over the processes, in place.
    fn sum_f64(&self, values: &mut [f64]);

    /// The smallest and the largest of every process's `value`.
    fn min_max(&self, value: u64) -> (u64, u64);
}

/// A run of one process: nothing to combine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn sum_into(&self, mine: &[f32], sums: &mut [f32]) {
        sums.copy_from_slice(mine);
    }

    fn sum_f64(&self, _: &mut [f64]) {}

    fn min_max(&self, value: u64) -> (u64, u64) {
        (value, value)
    }
}

/// Whether `value` is the same on every process.
pub fn agree(world: &dyn Collective, value: u64) -> bool {
    let (min, max) = world.min_max(value);
    min == max
}

/// A checksum of bytes, the same on every machine and every build (std's hasher promises
/// neither): the first 8 bytes of their SHA-256.
#[derive(Debug, Clone, Default)]
pub struct Checksum(Sha256);

impl Hasher for Checksum {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a 32-byte digest"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A checksum of every parameter's name, shape and bits: equal on two processes exactly when
/// their parameters are (but for a hash collision).
pub fn params_hash(store: &ParamStore) -> u64 {
    let mut h = Checksum::default();
    for (_, name, value) in store.iter() {
        h.write(name.as_bytes());
        h.write_usize(value.nrows());
        h.write_usize(value.ncols());
        for v in value.iter() {
            h.write_u32(v.to_bits());
        }
    }
    h.finish()
}

/// Part `part` of `parts` of `0..n`: `⌊part·n/parts⌋..⌊(part+1)·n/parts⌋`, so the parts are
/// contiguous, in order, and differ in length by at most one.
pub fn share(n: usize, part: usize, parts: usize) -> std::ops::Range<usize> {
    part * n / parts..(part + 1) * n / parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Matrix;

    #[test]
    fn shares_cover_the_range_in_order() {
        for (n, parts) in [(10, 3), (2, 3), (0, 2), (128, 2), (7, 7)] {
            let all: Vec<usize> = (0..parts).flat_map(|p| share(n, p, parts)).collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "{n} in {parts}");
            let lens: Vec<usize> = (0..parts).map(|p| share(n, p, parts).len()).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn the_parameter_hash_sees_every_bit() {
        let mut store = ParamStore::new();
        let w = store.add("w", Matrix::from_elem((2, 3), 0.5));
        let base = params_hash(&store);
        assert_eq!(params_hash(&store.clone()), base);
        // The least significant bit of one weight.
        store.value_mut(w)[[1, 2]] = f32::from_bits(0.5f32.to_bits() + 1);
        assert_ne!(params_hash(&store), base);
        // SHA-256 of "abc" begins ba 78 16 bf 8f 01 cf ea (FIPS 180-2's example), read little-endian.
        let mut h = Checksum::default();
        h.write(b"abc");
        assert_eq!(h.finish(), 0xeacf_018f_bf16_78ba);
        assert!(agree(&Alone, 3));
    }
}
