//! Priors over a VQ-VAE's discrete codes, fitted after training to the codes of the training
//! images, so that the model draws images and has a likelihood bound: an independent categorical
//! per position ([`categorical_log_probs`]), and an autoregressive prior over the positions in
//! raster order, [`Made`] (Germain et al. 2015), a masked MLP whose logits for position `n` see
//! only the codes of the positions before it.
//!
//! Codes are given as `&[usize]`, `positions` per image in raster order, each in `0..classes`.

use std::ops::ControlFlow;
use std::rc::Rc;

use autodiff::{Matrix, Tape, Var};
use nn::{Adam, AdamConfig, Bound, Linear, ParamStore};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::train;
use crate::train::Loss;

/// Elements of the one-hot input per forward pass when scoring or sampling many code sequences
/// (16 MB of f32; with the logits and their log-softmax, a pass stays under 100 MB).
const CHUNK_ELEMENTS: usize = 1 << 22;

/// The log-probabilities (`positions × classes`, nats) of independent categoricals, one per
/// position, fitted to `codes` by Laplace's rule: `(count + 1) / (rows + classes)`, so that a
/// code never seen in training keeps a finite cost.
///
/// Panics if `codes` is not whole rows or a code is out of range.
#[track_caller]
pub fn categorical_log_probs(codes: &[usize], positions: usize, classes: usize) -> Matrix {
    let rows = whole_rows(codes, positions);
    let mut counts = Matrix::ones((positions, classes));
    for row in codes.chunks_exact(positions) {
        for (n, &k) in row.iter().enumerate() {
            assert!(k < classes, "categorical_log_probs: code {k} of {classes}");
            counts[[n, k]] += 1.0;
        }
    }
    let total = (rows + classes) as f64;
    counts.mapv(|c| (f64::from(c) / total).ln() as f32)
}

/// `ln p(z)` (nats) of each row of `codes` under the categoricals `log_probs`
/// (`positions × classes`): the sum over positions of each code's log-probability.
#[track_caller]
pub fn categorical_log_prob(log_probs: &Matrix, codes: &[usize]) -> Vec<f64> {
    let positions = log_probs.nrows();
    whole_rows(codes, positions);
    codes
        .chunks_exact(positions)
        .map(|row| {
            (row.iter().enumerate())
                .map(|(n, &k)| f64::from(log_probs[[n, k]]))
                .sum()
        })
        .collect()
}

/// The index drawn with probability proportional to its weight (weights ≥ 0, not all 0).
fn draw(weights: impl Iterator<Item = f64> + Clone, rng: &mut ChaCha8Rng) -> usize {
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last = i;
            if u < w {
                return i;
            }
            u -= w;
        }
    }
    last
}

/// The number of rows of `codes`, checking that they are whole.
#[track_caller]
fn whole_rows(codes: &[usize], positions: usize) -> usize {
    assert!(
        positions > 0 && codes.len().is_multiple_of(positions),
        "{} codes are not whole rows of {positions}",
        codes.len()
    );
    codes.len() / positions
}

/// One-hot rows (`rows × positions·classes`) of code sequences: position `n`'s code `k` sets
/// column `n·classes + k`.
pub fn one_hot_codes(codes: &[usize], positions: usize, classes: usize) -> Matrix {
    let rows = whole_rows(codes, positions);
    let mut x = Matrix::zeros((rows, positions * classes));
    for (i, row) in codes.chunks_exact(positions).enumerate() {
        for (n, &k) in row.iter().enumerate() {
            x[[i, n * classes + k]] = 1.0;
        }
    }
    x
}

/// How a [`Made`] is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    /// Passes over the codes.
    pub epochs: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
}

/// An autoregressive prior over `positions` codes of `classes` values, in raster order: MADE, a
/// masked MLP with ReLU hidden layers. (MADE's optional direct input-to-output connection is
/// left out: it is `(positions·classes)²` weights, 67 M for 16 codes of 512.)
///
/// Each input unit of position `n` (0-based) has degree `n + 1`; hidden unit `h` of every layer
/// has degree `1 + h mod (positions − 1)`; a hidden unit sees the units of the layer below of
/// degree ≤ its own, and the logits of position `n` see the hidden units of degree ≤ `n`, which
/// see only the inputs of positions before `n`. So `p(z) = Π_n p(z_n | z_<n)` with every factor a softmax,
/// normalised by construction. Its parameters are `prior.made.fc*` and `prior.made.out`, in a
/// store of its own.
#[derive(Debug, Clone)]
pub struct Made {
    positions: usize,
    classes: usize,
    store: ParamStore,
    hidden: Vec<Linear>,
    masks: Vec<Rc<Matrix>>,
    output: Linear,
    output_mask: Rc<Matrix>,
}

impl Made {
    /// A MADE with hidden layers of `hidden` widths, weights drawn from `rng`.
    ///
    /// Panics if a size is zero.
    #[track_caller]
    pub fn new(positions: usize, classes: usize, hidden: &[usize], rng: &mut ChaCha8Rng) -> Made {
        assert!(
            positions > 0 && classes > 0 && !hidden.is_empty() && !hidden.contains(&0),
            "Made: positions {positions}, classes {classes}, hidden {hidden:?}"
        );
        let mut store = ParamStore::new();
        let inputs: Vec<usize> = (0..positions * classes).map(|i| i / classes + 1).collect();
        let span = (positions - 1).max(1);
        let mut below = inputs.clone();
        let (mut layers, mut masks) = (Vec::new(), Vec::new());
        for (i, &width) in hidden.iter().enumerate() {
            let degrees: Vec<usize> = (0..width).map(|h| 1 + h % span).collect();
            let name = format!("prior.made.fc{}", i + 1);
            layers.push(Linear::new(&mut store, &name, below.len(), width, rng));
            masks.push(mask(&below, &degrees, |from, to| from <= to));
            below = degrees;
        }
        let output = Linear::new(&mut store, "prior.made.out", below.len(), inputs.len(), rng);
        let output_mask = mask(&below, &inputs, |from, to| from < to);
        Made {
            positions,
            classes,
            store,
            hidden: layers,
            masks,
            output,
            output_mask,
        }
    }

    /// Its parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Its parameters, to restore them from a checkpoint.
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// The logits (`rows × positions·classes`) of one-hot code sequences `x`; the block of
    /// position `n` depends on the blocks of the positions before it only.
    pub fn logits<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        let mut h = x;
        for (layer, mask) in self.hidden.iter().zip(&self.masks) {
            h = layer.forward_masked(p, h, mask).relu();
        }
        self.output.forward_masked(p, h, &self.output_mask)
    }

    /// `ln p(z)` (`rows × 1`, nats) of the one-hot code sequences `x`: the log-softmax of each
    /// position's block of logits, read at the position's code.
    pub fn log_prob_var<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        let rows = x.shape().0;
        let logits = self
            .logits(p, x)
            .reshape((rows * self.positions, self.classes));
        let log_probs = logits
            .log_softmax()
            .reshape((rows, self.positions * self.classes));
        (log_probs * x).sum_cols()
    }

    /// Code sequences per forward pass of many.
    fn chunk_rows(&self) -> usize {
        (CHUNK_ELEMENTS / (self.positions * self.classes)).max(1)
    }

    /// `ln p(z)` (nats) of each row of `codes`.
    pub fn log_prob(&self, codes: &[usize]) -> Vec<f64> {
        let mut out = Vec::with_capacity(codes.len() / self.positions);
        for chunk in codes.chunks(self.chunk_rows() * self.positions) {
            let tape = Tape::new();
            let p = self.store.bind_frozen(&tape);
            let x = p.constant(one_hot_codes(chunk, self.positions, self.classes));
            out.extend(
                self.log_prob_var(&p, x)
                    .value()
                    .iter()
                    .map(|&v| f64::from(v)),
            );
        }
        out
    }

    /// `n` code sequences drawn position by position, each from its softmax given those before.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut codes = Vec::with_capacity(n * self.positions);
        let chunk = self.chunk_rows();
        for start in (0..n).step_by(chunk) {
            codes.extend(self.sample_chunk(chunk.min(n - start), rng));
        }
        codes
    }

    /// [`sample`](Self::sample) in one forward pass a position.
    fn sample_chunk(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let (positions, classes) = (self.positions, self.classes);
        let mut codes = vec![0; n * positions];
        for position in 0..positions {
            let tape = Tape::new();
            let p = self.store.bind_frozen(&tape);
            let x = p.constant(one_hot_codes(&codes, positions, classes));
            let logits = self.logits(&p, x).value().to_owned();
            let block = position * classes..(position + 1) * classes;
            for (i, row) in logits.rows().into_iter().enumerate() {
                let row = &row.as_slice().expect("standard layout")[block.clone()];
                let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let weights = row.iter().map(|&l| f64::from(l - top).exp());
                codes[i * positions + position] = draw(weights, rng);
            }
        }
        codes
    }

    /// Fits the prior to `codes` by maximum likelihood (Adam on the mean `−ln p(z)`), shuffled
    /// by `rng` every epoch; `on_step` is told every step and may stop the fit (`Break`).
    /// Returns the mean `−ln p(z)` of each epoch's steps, in nats.
    pub fn fit(
        &mut self,
        codes: &[usize],
        config: FitConfig,
        rng: &mut ChaCha8Rng,
        mut on_step: impl FnMut() -> ControlFlow<()>,
    ) -> ControlFlow<(), Vec<f64>> {
        let (positions, classes) = (self.positions, self.classes);
        let rows = whole_rows(codes, positions);
        let adam_config = AdamConfig {
            lr: config.lr,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&self.store, adam_config);
        // The store is taken out for the fit so that the steps may update it while the layers
        // are read; it is put back whatever happens.
        let mut store = std::mem::take(&mut self.store);
        let mut order: Vec<usize> = (0..rows).collect();
        let mut losses = Vec::with_capacity(config.epochs);
        let fitted = (|| {
            for _ in 0..config.epochs {
                order.shuffle(rng);
                let (mut total, mut seen) = (0.0, 0);
                for batch in order.chunks(config.batch_size.max(1)) {
                    let picked: Vec<usize> = (batch.iter())
                        .flat_map(|&i| codes[i * positions..(i + 1) * positions].iter().copied())
                        .collect();
                    let x = Rc::new(one_hot_codes(&picked, positions, classes));
                    let stepped = train::step(&mut store, &mut adam, |p| {
                        let nll = -self.log_prob_var(p, p.constant(Rc::clone(&x)));
                        Loss::new(nll.mean_rows(), [("nll", nll)])
                    });
                    // A prior's fit on a finite set of codes does not diverge; if a step
                    // ever did, it was skipped and the epoch goes on.
                    if let Ok(metrics) = stepped {
                        total += metrics.loss * batch.len() as f64;
                        seen += batch.len();
                    }
                    on_step()?;
                }
                losses.push(total / seen.max(1) as f64);
            }
            ControlFlow::Continue(())
        })();
        self.store = store;
        fitted?;
        ControlFlow::Continue(losses)
    }
}

/// A 0/1 mask (`from.len() × to.len()`) keeping the connections whose degrees `connects`.
fn mask(from: &[usize], to: &[usize], connects: impl Fn(usize, usize) -> bool) -> Rc<Matrix> {
    Rc::new(Matrix::from_shape_fn((from.len(), to.len()), |(i, j)| {
        f32::from(u8::from(connects(from[i], to[j])))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Every sequence of `positions` codes of `classes` values, in order.
    fn every_sequence(positions: usize, classes: usize) -> Vec<usize> {
        let count = classes.pow(positions as u32);
        (0..count)
            .flat_map(|mut i| {
                let mut row = vec![0; positions];
                for slot in row.iter_mut().rev() {
                    *slot = i % classes;
                    i /= classes;
                }
                row
            })
            .collect()
    }

    fn total_probability(log_probs: &[f64]) -> f64 {
        log_probs.iter().map(|l| l.exp()).sum()
    }

    #[test]
    fn both_priors_sum_to_one_over_every_sequence() {
        let (positions, classes) = (3, 3);
        let all = every_sequence(positions, classes);
        assert_eq!(all.len(), 27 * 3);
        // A categorical fitted to a few sequences, and a MADE at its random initialisation
        // (normalised by construction, whatever its weights).
        let categorical = categorical_log_probs(&all[..12], positions, classes);
        let p = total_probability(&categorical_log_prob(&categorical, &all));
        assert!((p - 1.0).abs() < 1e-6, "categorical: {p}");
        let made = Made::new(
            positions,
            classes,
            &[7, 5],
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        let p = total_probability(&made.log_prob(&all));
        assert!((p - 1.0).abs() < 1e-5, "MADE: {p}");
    }

    #[test]
    fn laplace_smoothing_counts_one_more_of_every_code() {
        // Position 0 saw code 1 twice, position 1 codes 0 and 2: (count + 1) / (2 + 3).
        let lp = categorical_log_probs(&[1, 0, 1, 2], 2, 3);
        let expected = [[1.0, 3.0, 1.0], [2.0, 1.0, 2.0]].map(|r| r.map(|c: f64| c / 5.0));
        for n in 0..2 {
            for k in 0..3 {
                assert!((f64::from(lp[[n, k]]).exp() - expected[n][k]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn the_logits_of_a_position_see_only_the_codes_before_it() {
        let (positions, classes) = (4, 3);
        let made = Made::new(positions, classes, &[16], &mut ChaCha8Rng::seed_from_u64(1));
        let logits = |codes: &[usize]| {
            let tape = Tape::new();
            let p = made.store().bind_frozen(&tape);
            let x = p.constant(one_hot_codes(codes, positions, classes));
            made.logits(&p, x).value().to_owned()
        };
        let base = logits(&[0, 1, 2, 0]);
        for changed in 0..positions {
            let mut codes = vec![0, 1, 2, 0];
            codes[changed] = (codes[changed] + 1) % classes;
            let other = logits(&codes);
            for position in 0..positions {
                let block = position * classes..(position + 1) * classes;
                let same = (block.clone()).all(|j| base[[0, j]] == other[[0, j]]);
                // Position n's logits change only if a code before it changed.
                assert_eq!(
                    same,
                    changed >= position,
                    "code {changed}, logits {position}"
                );
            }
        }
    }

    #[test]
    fn a_fitted_made_learns_a_dependence_the_categorical_cannot() {
        // Two positions, the second a copy of the first, the first uniform over 4 codes: the
        // best categorical costs 2·ln 4 nats, the true distribution ln 4.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let codes: Vec<usize> = (0..400).flat_map(|i| [i % 4, i % 4]).collect();
        let categorical = categorical_log_probs(&codes, 2, 4);
        let cat_rate = -categorical_log_prob(&categorical, &codes)
            .iter()
            .sum::<f64>()
            / 400.0;
        assert!((cat_rate - 2.0 * 4f64.ln()).abs() < 0.05, "{cat_rate}");
        let mut made = Made::new(2, 4, &[16], &mut rng);
        let config = FitConfig {
            epochs: 60,
            batch_size: 50,
            lr: 1e-2,
        };
        let losses = made.fit(&codes, config, &mut rng, || ControlFlow::Continue(()));
        let losses = match losses {
            ControlFlow::Continue(l) => l,
            ControlFlow::Break(()) => panic!("not stopped"),
        };
        assert!(losses[0] > *losses.last().unwrap());
        let made_rate = -made.log_prob(&codes).iter().sum::<f64>() / 400.0;
        assert!(made_rate < 4f64.ln() + 0.1, "{made_rate} nats");
        // Its samples copy the first code into the second.
        let samples = made.sample(50, &mut rng);
        let copies = samples.chunks(2).filter(|s| s[0] == s[1]).count();
        assert!(copies >= 45, "{copies} of 50");
    }

    #[test]
    fn a_fit_stops_when_asked_and_keeps_its_store() {
        let mut made = Made::new(2, 3, &[4], &mut ChaCha8Rng::seed_from_u64(0));
        let mut steps = 0;
        let fit = made.fit(
            &[0, 1, 2, 0],
            PRIOR_TEST_FIT,
            &mut ChaCha8Rng::seed_from_u64(0),
            || {
                steps += 1;
                if steps == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!((fit, steps), (ControlFlow::Break(()), 3));
        assert_eq!(made.store().len(), 4);
    }

    const PRIOR_TEST_FIT: FitConfig = FitConfig {
        epochs: 10,
        batch_size: 1,
        lr: 1e-3,
    };
}
