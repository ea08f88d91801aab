//! Weight initialisers, each drawing from an explicit seeded RNG.

use autodiff::Matrix;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// How to fill a new `[fan_in, fan_out]` parameter (weights are stored `[in, out]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// Glorot & Bengio (2010): `U(−a, a)` with `a = √(6 / (fan_in + fan_out))`, so that the
    /// variance is `a²/3 = 2 / (fan_in + fan_out)`. The default for weights.
    #[default]
    XavierUniform,
    /// He et al. (2015): `N(0, 2 / fan_in)`, for layers followed by a ReLU.
    HeNormal,
    /// All zeros. The default for biases.
    Zeros,
}

impl Init {
    /// A `rows × cols` matrix (`fan_in = rows`, `fan_out = cols`), drawn row-major from `rng`.
    pub fn matrix(self, rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Matrix {
        let (fan_in, fan_out) = (rows as f32, cols as f32);
        match self {
            Init::XavierUniform => {
                let a = (6.0 / (fan_in + fan_out)).sqrt();
                let uniform = Uniform::new(-a, a).expect("a is finite and positive");
                Matrix::from_shape_simple_fn((rows, cols), || uniform.sample(rng))
            }
            Init::HeNormal => {
                let normal =
                    Normal::new(0.0, (2.0 / fan_in).sqrt()).expect("std is finite and positive");
                Matrix::from_shape_simple_fn((rows, cols), || normal.sample(rng))
            }
            Init::Zeros => Matrix::zeros((rows, cols)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Mean and (population) variance, in f64.
    fn moments(m: &Matrix) -> (f64, f64) {
        let n = m.len() as f64;
        let mean = m.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = m
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var)
    }

    #[test]
    fn xavier_uniform_is_bounded_with_variance_two_over_fans() {
        let w = Init::XavierUniform.matrix(200, 300, &mut ChaCha8Rng::seed_from_u64(0));
        // a = √(6/500) = 0.10954; variance a²/3 = 2/500 = 0.004.
        let a = (6.0f32 / 500.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= a));
        let (mean, var) = moments(&w);
        // Over n = 60 000 draws the sample mean has std a/√(3n) = 2.6e-4 and the sample variance a
        // relative std of √(0.8/n) = 0.37%: bounds of 1.5e-3 and 3% are over 5σ.
        assert!(mean.abs() < 1.5e-3, "{mean}");
        assert!((var / 0.004 - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn he_normal_has_variance_two_over_fan_in() {
        let w = Init::HeNormal.matrix(200, 300, &mut ChaCha8Rng::seed_from_u64(0));
        // Variance 2/200 = 0.01 (std 0.1); over n = 60 000 draws the sample mean has std
        // 0.1/√n = 4.1e-4 and the sample variance a relative std of √(2/n) = 0.58%.
        let (mean, var) = moments(&w);
        assert!(mean.abs() < 2.5e-3, "{mean}");
        assert!((var / 0.01 - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn same_seed_same_values_and_zeros_are_zeros() {
        let draw = |seed| Init::HeNormal.matrix(3, 4, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(Init::Zeros.matrix(2, 3, &mut rng), Matrix::zeros((2, 3)));
    }
}
