//! [`Dropout`] and the [`Mode`] that layers with a training and an evaluation behaviour take as
//! an argument (never from global state).

use autodiff::{Matrix, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Bound;

/// Whether a forward pass trains or evaluates. Training draws the layers' noise (dropout's
/// masks) from one RNG per row of the batch, so that an example's noise does not depend on the
/// rows beside it; evaluation is deterministic.
#[derive(Debug)]
pub enum Mode<'r> {
    /// A training step, row `r`'s noise drawn from the `r`-th RNG.
    Train(&'r mut [ChaCha8Rng]),
    /// Evaluation: dropout is the identity.
    Eval,
}

impl Mode<'_> {
    /// The same mode for one more layer (the RNG lent again, not moved).
    pub fn reborrow(&mut self) -> Mode<'_> {
        match self {
            Mode::Train(rng) => Mode::Train(rng),
            Mode::Eval => Mode::Eval,
        }
    }
}

/// Inverted dropout (Srivastava et al. 2014): in training each element is zeroed with
/// probability `p` and the survivors are scaled by `1/(1 − p)`, so that the expected output is
/// the input and evaluation needs no rescaling. `y = x ⊙ m` with the mask `m` a constant of the
/// tape, so `∂y/∂x = m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Dropout of probability `p`, in `[0, 1)`.
    ///
    /// Panics on a `p` outside `[0, 1)` (a setting is checked where the user gives it).
    #[track_caller]
    pub fn new(p: f32) -> Dropout {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout: the probability must be in [0, 1), got {p}"
        );
        Dropout { p }
    }

    /// The probability of dropping an element.
    pub fn p(self) -> f32 {
        self.p
    }

    /// `x` with dropout applied in [`Mode::Train`]; `x` itself in [`Mode::Eval`] or with `p = 0`
    /// (no op on the tape, no draws from the RNG).
    pub fn forward<'t>(self, p: &Bound<'t>, x: Var<'t>, mode: Mode<'_>) -> Var<'t> {
        match mode {
            Mode::Train(rng) if self.p > 0.0 => x * p.constant(self.mask(x.shape(), rng)),
            _ => x,
        }
    }

    /// A mask of `shape`: `1/(1 − p)` with probability `1 − p`, else 0.
    #[track_caller]
    fn mask(self, shape: (usize, usize), rngs: &mut [ChaCha8Rng]) -> Matrix {
        assert_eq!(
            shape.0,
            rngs.len(),
            "Dropout: {} rows for {} RNGs",
            shape.0,
            rngs.len()
        );
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        let mut mask = Matrix::zeros(shape);
        for (mut row, rng) in mask.rows_mut().into_iter().zip(rngs) {
            row.mapv_inplace(|_| {
                if rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            });
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

    /// One RNG per row, row `r` on stream `r` of `seed`.
    fn rngs(rows: usize, seed: u64) -> Vec<ChaCha8Rng> {
        (0..rows as u64)
            .map(|r| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(r);
                rng
            })
            .collect()
    }

    fn apply(dropout: Dropout, x: &Matrix, mode: Mode<'_>) -> Matrix {
        let store = ParamStore::new();
        let tape = Tape::new();
        let p = store.bind(&tape);
        dropout
            .forward(&p, p.constant(x.clone()), mode)
            .value()
            .as_ref()
            .clone()
    }

    #[test]
    fn evaluation_is_the_identity_and_draws_nothing() {
        let x = Matrix::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32);
        assert_eq!(apply(Dropout::new(0.5), &x, Mode::Eval), x);
        let rngs = &mut rngs(3, 0);
        assert_eq!(apply(Dropout::new(0.0), &x, Mode::Train(rngs)), x);
        assert!(
            rngs.iter().all(|r| r.get_word_pos() == 0),
            "p = 0 drew from an RNG"
        );
    }

    #[test]
    fn training_drops_a_fraction_p_and_keeps_the_mean() {
        let x = Matrix::from_elem((200, 500), 2.0);
        let rng = &mut rngs(200, 1);
        let y = apply(Dropout::new(0.3), &x, Mode::Train(rng));
        // Every element is either dropped or scaled by 1/0.7.
        assert!(y.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.7).abs() < 1e-6));
        // 100 000 Bernoulli(0.3) draws: the dropped fraction has sd ≈ 0.0014.
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / 1e5;
        assert!((dropped - 0.3).abs() < 0.007, "dropped {dropped}");
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e5;
        assert!((mean - 2.0).abs() < 0.03, "mean {mean}");
        // The next mask is another draw.
        let again = apply(Dropout::new(0.3), &x, Mode::Train(rng));
        assert_ne!(y, again);
        // A row's mask is its RNG's: the same rows alone draw the same masks.
        let two = &mut rngs(2, 1);
        let first = apply(
            Dropout::new(0.3),
            &x.slice(ndarray::s![..2, ..]).to_owned(),
            Mode::Train(two),
        );
        assert_eq!(first, y.slice(ndarray::s![..2, ..]));
    }

    #[test]
    fn the_gradient_is_the_mask() {
        let x = Matrix::from_shape_fn((4, 5), |(i, j)| (i as f32 - 1.5) * 0.3 + j as f32 * 0.1);
        // The same seed each evaluation, so the finite differences see the analytic side's mask.
        let report = gradcheck(
            |v| {
                let store = ParamStore::new();
                let p = store.bind_vars(v[0].tape(), &[]);
                Dropout::new(0.4).forward(&p, v[0], Mode::Train(&mut rngs(4, 7)))
            },
            &[x],
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.elements, 20);
    }

    #[test]
    #[should_panic(expected = "must be in [0, 1)")]
    fn a_probability_of_one_is_refused() {
        Dropout::new(1.0);
    }
}
