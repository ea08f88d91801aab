//! How a denoising autoencoder corrupts its input (`--noise`, `--noise-level`): masking,
//! salt-and-pepper or Gaussian noise. Training images are corrupted afresh for every batch from
//! the run's keys; the test set is corrupted once, with a fixed seed of its own, so that a DAE
//! and a plain AE are measured on the very same noisy images.

use std::fmt;
use std::str::FromStr;

use autodiff::Matrix;
use rand::Rng;
use rand::seq::index;
use rand_distr::{Distribution, StandardNormal};

use crate::random::{Draws, Keys, Purpose};

/// How the input is corrupted (`--noise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseKind {
    /// A fraction of the pixels, chosen at random in each image, set to 0.
    #[default]
    Mask,
    /// A fraction of the pixels, chosen at random in each image, set to 0 or 1 by a coin flip.
    SaltPepper,
    /// N(0, σ²) added to every pixel, then clipped to [0, 1].
    Gaussian,
}

impl NoiseKind {
    /// Every kind, in the order the evaluations report them.
    pub const ALL: [NoiseKind; 3] = [NoiseKind::Mask, NoiseKind::SaltPepper, NoiseKind::Gaussian];

    /// Its `--noise` name.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::Mask => "mask",
            NoiseKind::SaltPepper => "salt-pepper",
            NoiseKind::Gaussian => "gaussian",
        }
    }

    /// The level when `--noise-level` is not given: a quarter of the pixels masked or
    /// salt-and-peppered, or σ = 0.5.
    pub fn default_level(self) -> f32 {
        match self {
            NoiseKind::Mask | NoiseKind::SaltPepper => 0.25,
            NoiseKind::Gaussian => 0.5,
        }
    }

    /// The noise of this kind at `level`, if the level is in range: a fraction in [0, 1] for
    /// masking and salt-and-pepper, a finite σ ≥ 0 for Gaussian noise.
    pub fn at(self, level: f32) -> Result<Noise, String> {
        let ok = match self {
            NoiseKind::Mask | NoiseKind::SaltPepper => (0.0..=1.0).contains(&level),
            NoiseKind::Gaussian => level.is_finite() && level >= 0.0,
        };
        if ok {
            Ok(Noise { kind: self, level })
        } else {
            let range = match self {
                NoiseKind::Gaussian => "σ, a finite number ≥ 0",
                _ => "a fraction of the pixels, from 0 to 1",
            };
            Err(format!(
                "--noise-level {level} is out of range for --noise {self} (it is {range})"
            ))
        }
    }

    /// The keys that corrupt the test set for this kind: a fixed seed, whatever the run's, so
    /// that every model is measured on the same noisy images.
    pub fn test_keys(self) -> Keys {
        Keys::evaluation(TEST_NOISE_SEED + self as u64)
    }
}

/// The seed of the test set's corruption ([`NoiseKind::test_keys`]).
pub const TEST_NOISE_SEED: u64 = 20_100_301;

/// An unknown `--noise` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown noise `{0}` (expected mask, salt-pepper or gaussian)")]
pub struct ParseNoiseError(pub String);

impl FromStr for NoiseKind {
    type Err = ParseNoiseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoiseKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ParseNoiseError(s.to_string()))
    }
}

impl fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A corruption process: a kind at a level ([`NoiseKind::at`] checks the range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    kind: NoiseKind,
    level: f32,
}

impl Noise {
    /// The kind at its default level.
    pub fn default_of(kind: NoiseKind) -> Noise {
        Noise {
            kind,
            level: kind.default_level(),
        }
    }

    /// Its kind.
    pub fn kind(self) -> NoiseKind {
        self.kind
    }

    /// Its level.
    pub fn level(self) -> f32 {
        self.level
    }

    /// Pixels of an image of `pixels` that masking or salt-and-pepper noise changes:
    /// `round(level · pixels)`, the same in every image (Vincent et al.'s "fixed number νd").
    pub fn pixels_hit(self, pixels: usize) -> usize {
        ((f64::from(self.level) * pixels as f64).round() as usize).min(pixels)
    }

    /// A corrupted copy of `x` (images as rows, pixels in [0, 1]), row `r` drawn from its
    /// example's stream of [`Purpose::Corrupt`] in `draws`.
    pub fn corrupt(self, x: &Matrix, draws: &Draws<'_>) -> Matrix {
        let mut noisy = x.clone();
        let hit = self.pixels_hit(x.ncols());
        draws.each_row(Purpose::Corrupt, &mut noisy, |rng, mut row| {
            match self.kind {
                NoiseKind::Mask | NoiseKind::SaltPepper => {
                    for j in index::sample(rng, row.len(), hit) {
                        row[j] = match self.kind {
                            NoiseKind::Mask => 0.0,
                            _ => f32::from(u8::from(rng.random::<bool>())),
                        };
                    }
                }
                NoiseKind::Gaussian => {
                    for v in &mut row {
                        let e: f32 = StandardNormal.sample(rng);
                        *v = (*v + self.level * e).clamp(0.0, 1.0);
                    }
                }
            }
        });
        noisy
    }

    /// [`Noise::corrupt`] of test images `examples` (one per row of `x`) with the fixed keys of
    /// [`NoiseKind::test_keys`].
    pub fn corrupt_test(self, x: &Matrix, examples: &[usize]) -> Matrix {
        self.corrupt(x, &self.kind.test_keys().draws(examples))
    }
}

impl fmt::Display for Noise {
    /// `mask 0.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(rows: usize, cols: usize, value: f32) -> Matrix {
        Matrix::from_elem((rows, cols), value)
    }

    use crate::random::test_draws as draws;

    #[test]
    fn masking_zeroes_exactly_the_fraction_asked_in_every_image_at_uniform_places() {
        let noise = NoiseKind::Mask.at(0.25).unwrap();
        let x = gray(4000, 40, 0.7);
        let noisy = noise.corrupt(&x, &draws(1, x.nrows()));
        for row in noisy.rows() {
            assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), 10);
            assert!(row.iter().all(|&v| v == 0.0 || v == 0.7));
        }
        // Each pixel is masked in a quarter of the images: 1000 of 4000, binomial sd ≈ 27.
        for j in 0..40 {
            let hits = noisy.column(j).iter().filter(|&&v| v == 0.0).count();
            assert!(
                (hits as f64 - 1000.0).abs() < 5.0 * 27.4,
                "pixel {j}: {hits}"
            );
        }
    }

    #[test]
    fn salt_and_pepper_sets_the_fraction_to_zero_or_one_by_a_fair_coin() {
        let noise = NoiseKind::SaltPepper.at(0.5).unwrap();
        let x = gray(2000, 30, 0.5);
        let noisy = noise.corrupt(&x, &draws(2, x.nrows()));
        let mut ones = 0;
        for row in noisy.rows() {
            assert_eq!(row.iter().filter(|&&v| v != 0.5).count(), 15);
            assert!(row.iter().all(|&v| v == 0.0 || v == 0.5 || v == 1.0));
            ones += row.iter().filter(|&&v| v == 1.0).count();
        }
        // 30 000 coin flips: half salt, sd ≈ 87.
        assert!(
            (ones as f64 - 15_000.0).abs() < 5.0 * 86.6,
            "{ones} of 30000"
        );
    }

    #[test]
    fn gaussian_noise_has_the_asked_mean_and_variance_then_is_clipped() {
        // Mid-gray with σ = 0.1: clipping (|e| > 5σ) is too rare to move the moments.
        let noise = NoiseKind::Gaussian.at(0.1).unwrap();
        let x = gray(500, 200, 0.5);
        let noisy = noise.corrupt(&x, &draws(3, x.nrows()));
        let added: Vec<f64> = noisy.iter().map(|&v| f64::from(v) - 0.5).collect();
        let n = added.len() as f64;
        let mean = added.iter().sum::<f64>() / n;
        let var = added.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
        // Standard errors: σ/√n ≈ 3.2e-4 for the mean, σ²·√(2/n) ≈ 4.5e-5 for the variance.
        assert!(mean.abs() < 5.0 * 3.2e-4, "mean {mean}");
        assert!((var - 0.01).abs() < 5.0 * 4.5e-5, "variance {var}");
        // A large σ is clipped to [0, 1].
        let wide = NoiseKind::Gaussian.at(3.0).unwrap();
        let noisy = wide.corrupt(&x, &draws(4, x.nrows()));
        assert!(noisy.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(noisy.iter().filter(|&&v| v == 0.0 || v == 1.0).count() > noisy.len() / 2);
    }

    #[test]
    fn levels_out_of_range_are_refused_with_the_range() {
        for (kind, bad) in [
            (NoiseKind::Mask, 1.5),
            (NoiseKind::Mask, -0.1),
            (NoiseKind::SaltPepper, f32::NAN),
            (NoiseKind::Gaussian, -1.0),
            (NoiseKind::Gaussian, f32::INFINITY),
        ] {
            let e = kind.at(bad).unwrap_err();
            assert!(
                e.contains("--noise-level") && e.contains(kind.name()),
                "{e}"
            );
        }
        assert!(NoiseKind::Mask.at(1.0).is_ok() && NoiseKind::Gaussian.at(0.0).is_ok());
        for kind in NoiseKind::ALL {
            assert_eq!(kind.name().parse::<NoiseKind>(), Ok(kind));
            assert!(kind.at(kind.default_level()).is_ok());
        }
        assert!("speckle".parse::<NoiseKind>().is_err());
    }

    #[test]
    fn the_test_corruption_is_the_same_whatever_the_run() {
        let x = gray(3, 20, 0.5);
        for kind in NoiseKind::ALL {
            let noise = Noise::default_of(kind);
            let a = noise.corrupt_test(&x, &[0, 1, 2]);
            let b = noise.corrupt_test(&x, &[0, 1, 2]);
            assert_eq!(a, b);
            // An image's corruption is its own, whichever rows come with it.
            let last = noise.corrupt_test(&x.slice(ndarray::s![2.., ..]).to_owned(), &[2]);
            assert_eq!(last.row(0), a.row(2));
        }
    }
}
