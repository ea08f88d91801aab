//! A batch of examples as the models see it, and the one-pass byte → f32 conversions that make it.

use autodiff::Matrix;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `GRAY[p] = p / 255`: the intensity of pixel byte `p`, computed once.
pub(crate) static GRAY: [f32; 256] = gray_table();

const fn gray_table() -> [f32; 256] {
    let mut table = [0.0; 256];
    let mut p = 0;
    while p < 256 {
        table[p] = p as f32 / 255.0;
        p += 1;
    }
    table
}

/// A batch of `b` examples: images as rows of values in [0, 1], with their labels and positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `b × (height · width)` targets in [0, 1]: 0/1 when binarized, `pixel / 255` otherwise.
    pub images: Matrix,
    /// The `b` labels (0–9), row for row.
    pub labels: Vec<u8>,
    /// The `b` positions of these examples in their split, row for row.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The `b × (height · width)` image matrix.
    pub fn images(&self) -> &Matrix {
        &self.images
    }

    /// The labels, row for row.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Appends `pixel / 255` for each pixel.
pub(crate) fn push_gray(pixels: &[u8], out: &mut Vec<f32>) {
    out.extend(pixels.iter().map(|&p| GRAY[usize::from(p)]));
}

/// Appends a Bernoulli(`pixel / 255`) draw for each pixel: 1 when a uniform `u ∈ [0, 1)` is below
/// `pixel / 255`, so 0 stays 0 and 255 is always 1.
pub(crate) fn push_bernoulli(pixels: &[u8], rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
    out.extend(pixels.iter().map(|&p| {
        let u: f32 = rng.random();
        if u < GRAY[usize::from(p)] { 1.0 } else { 0.0 }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gray_table_is_pixel_over_255() {
        // 0/255 = 0, 51/255 = 0.2, 255/255 = 1, each the correctly rounded f32 quotient.
        assert_eq!(GRAY[0], 0.0);
        assert_eq!(GRAY[51], 0.2);
        assert_eq!(GRAY[255], 1.0);
        assert!(GRAY.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bernoulli_keeps_the_extremes_and_matches_the_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut out = Vec::new();
        push_bernoulli(&[0, 255], &mut rng, &mut out);
        // p = 0 never fires; p = 1 always does, since u < 1.
        assert_eq!(out, [0.0, 1.0]);
        // 100,000 draws of Bernoulli(51/255 = 0.2): standard error √(0.2·0.8/1e5) ≈ 0.0013,
        // so 0.2 ± 0.006 is more than four standard errors.
        out.clear();
        push_bernoulli(&[51; 100_000], &mut rng, &mut out);
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean - 0.2).abs() < 0.006, "mean {mean}");
        assert!(out.iter().all(|&x| x == 0.0 || x == 1.0));
    }
}
