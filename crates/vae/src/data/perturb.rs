//! Ren et al.'s (2019) input perturbation, for the background models of the likelihood ratio.

use autodiff::Matrix;
use rand::Rng;

use crate::random::{Draws, Purpose};

/// Ren et al.'s (2019) perturbation for a background model: each pixel of `x`, independently
/// with probability `rate`, replaced by noise: a random bit for `binary` images, else one of the
/// 256 levels `k/255` that 8-bit images are stored in, uniformly (so a model of discrete
/// intensities sees only intensities it can give a probability). Row `r` draws from its example's
/// stream of [`Purpose::Perturb`] in `draws`. In place; at rate 0 `x` comes back untouched and
/// nothing is drawn, so a training step without `--background` does not copy its batch.
pub fn perturb(mut x: Matrix, rate: f32, binary: bool, draws: &Draws<'_>) -> Matrix {
    if rate > 0.0 {
        draws.each_row(Purpose::Perturb, &mut x, |rng, mut row| {
            row.mapv_inplace(|v| {
                if rng.random::<f32>() >= rate {
                    v
                } else if binary {
                    f32::from(u8::from(rng.random::<bool>()))
                } else {
                    f32::from(rng.random::<u8>()) / 255.0
                }
            })
        });
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Keys;

    #[test]
    fn the_background_perturbation_replaces_pixels_at_its_rate() {
        let x = Matrix::from_elem((100, 100), 1.0);
        let examples: Vec<usize> = (0..100).collect();
        let rng = &Keys::epoch(0, 1).draws(&examples);
        assert_eq!(perturb(x.clone(), 0.0, true, rng), x);
        // Binary: a replaced pixel is a fair bit, so a quarter of the ones become zeros.
        let y = perturb(x.clone(), 0.5, true, rng);
        assert!(y.iter().all(|&v| v == 0.0 || v == 1.0));
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        // Grayscale: replaced pixels are uniform over the levels k/255, so their mean is ½.
        let y = perturb(x.clone(), 0.5, false, rng);
        let changed: Vec<f32> = y.iter().copied().filter(|&v| v != 1.0).collect();
        assert!(changed.iter().all(|&v| v == (v * 255.0).round() / 255.0));
        let mean = changed.iter().sum::<f32>() / changed.len() as f32;
        assert!((changed.len() as f64 / 1e4 - 0.5).abs() < 0.02 && (mean - 0.5).abs() < 0.02);
    }
}
