//! One training step (bind, forward, backward, drop the tape, update) and one epoch of them. A
//! step whose loss or gradients are not finite is not applied, and ends its epoch. In a
//! data-parallel run each process steps on its share of the batch and the processes sum their
//! weighted gradients before the update ([`shared_step`]).

use std::ops::ControlFlow;

use autodiff::{Anomaly, Tape, Var};
use nn::{Bound, Optimizer, ParamGrads, ParamStore};

use crate::data::{Batch, TrainSet};
use crate::parallel::Collective;
use crate::random::{Draws, Keys, Purpose};

/// A step whose loss or gradients were not finite (NaN or ±inf): its update was not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// The op that first produced a non-finite number, when the step ran under
    /// [`autodiff::detect_anomaly`].
    pub anomaly: Option<Anomaly>,
}

/// What each step of an epoch reports to the epoch's caller.
#[derive(Debug, Clone, Copy)]
pub enum Stepped<'a> {
    /// The update was applied; the batch's metrics.
    Trained(&'a Metrics),
    /// The loss or a gradient was not finite; the epoch stops here.
    Diverged(&'a Diverged),
}

/// One step of gradient descent on the loss that `loss` builds on the bound parameters;
/// returns its metrics. If the loss or a gradient is not finite, the parameters and the
/// optimizer are left as they were.
pub fn step(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    loss: impl for<'t> FnOnce(&Bound<'t>) -> Loss<'t>,
) -> Result<Metrics, Diverged> {
    step_seeing_grads(store, opt, loss, |_| {})
}

/// [`step`], with `grads` shown the finite gradients before the update (to measure their
/// norm, say).
pub fn step_seeing_grads(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    loss: impl for<'t> FnOnce(&Bound<'t>) -> Loss<'t>,
    grads: impl FnOnce(&ParamGrads),
) -> Result<Metrics, Diverged> {
    combined_step(store, opt, loss, None, grads)
}

/// [`step`] on one process's share of a batch: the loss is the mean over the share, `weight`
/// the share's examples over the batch's. The processes sum the gradients of `weight·loss`
/// (and `weight·metrics`) before the update, so each applies the gradient of the batch's
/// mean, the same on every process. Alone, it is [`step`].
pub fn shared_step(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    world: &dyn Collective,
    weight: f64,
    loss: impl for<'t> FnOnce(&Bound<'t>) -> Loss<'t>,
) -> Result<Metrics, Diverged> {
    let shared = (world.ranks() > 1).then_some((world, weight));
    combined_step(store, opt, loss, shared, |_| {})
}

/// The step of [`step_seeing_grads`] and [`shared_step`]: bind, forward, backward (of
/// `weight·loss` when `shared`), drop the tape, sum over the processes when `shared`, check
/// that everything is finite, show `see` the gradients, update.
fn combined_step(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    loss: impl for<'t> FnOnce(&Bound<'t>) -> Loss<'t>,
    shared: Option<(&dyn Collective, f64)>,
    see: impl FnOnce(&ParamGrads),
) -> Result<Metrics, Diverged> {
    let (mut metrics, mut grads) = {
        let tape = Tape::new();
        let p = store.bind(&tape);
        let out = loss(&p);
        // A share's weight goes on the tape: the gradients come out scaled, with no pass of
        // their own.
        let objective = match shared {
            Some((_, weight)) => out.loss * weight as f32,
            None => out.loss,
        };
        let grads = (tape.try_backward(objective)).map_err(|a| Diverged { anomaly: Some(a) })?;
        (out.metrics(), p.grads(grads))
    }; // the tape is dropped before the update, so the parameters are no longer shared
    if let Some((world, weight)) = shared {
        if weight == 0.0 {
            // A stand-in row counts for nothing, even where its loss is not finite (0·∞ is NaN).
            grads.iter_mut().for_each(|g| g.fill(0.0));
        }
        sum_over(world, weight, &mut grads, &mut metrics);
    }
    if !metrics.loss.is_finite() || !grads.iter().all(|(_, g)| all_finite(g)) {
        return Err(Diverged { anomaly: None });
    }
    see(&grads);
    opt.step(store, &grads);
    Ok(metrics)
}

thread_local! {
    /// The matrices the gradients' sums are received into, one per parameter: after a step
    /// they hold its own gradients, which the next step's sums overwrite (no allocation and no
    /// copy of the gradients in the steady state).
    static SUMS: std::cell::RefCell<Vec<autodiff::Matrix>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Replaces `grads` by their sums over the processes, and `metrics` by the sums of `weight`
/// times each process's.
fn sum_over(world: &dyn Collective, weight: f64, grads: &mut ParamGrads, metrics: &mut Metrics) {
    SUMS.with_borrow_mut(|sums| {
        for (i, g) in grads.iter_mut().enumerate() {
            if !g.is_standard_layout() {
                *g = g.as_standard_layout().into_owned();
            }
            if sums.get(i).is_none_or(|s| s.dim() != g.dim()) {
                sums.truncate(i);
                sums.push(autodiff::Matrix::zeros(g.dim()));
            }
            let mine = g.as_slice().expect("a standard-layout matrix");
            let total = sums[i].as_slice_mut().expect("a new matrix");
            world.sum_into(mine, total);
            std::mem::swap(g, &mut sums[i]);
        }
    });
    let mut values: Vec<f64> = std::iter::once(metrics.loss)
        .chain(metrics.parts.iter().map(|&(_, v)| v))
        .map(|v| if weight == 0.0 { 0.0 } else { v * weight })
        .collect();
    world.sum_f64(&mut values);
    metrics.loss = values[0];
    for ((_, v), &sum) in metrics.parts.iter_mut().zip(&values[1..]) {
        *v = sum;
    }
}

/// Whether every element of `m` is finite: one pass without early exit over the exponent bits
/// (all ones for NaN and ±inf), which the compiler vectorizes; a step checks every gradient.
fn all_finite(m: &autodiff::Matrix) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    let special = |v: &f32| u32::from(v.to_bits() & EXPONENT == EXPONENT);
    match m.as_slice_memory_order() {
        Some(values) => values.iter().fold(0, |any, v| any | special(v)) == 0,
        None => m.iter().all(|v| v.is_finite()),
    }
}

/// Takes one step's outcome to `on_batch` and the epoch's running mean; `Break` ends the epoch.
/// A model that writes its own epoch loop (to do more around each step) reports through it.
pub fn report(
    stepped: Result<Metrics, Diverged>,
    examples: usize,
    mean: &mut MetricsMean,
    on_batch: &mut (impl FnMut(Stepped<'_>) -> ControlFlow<()> + ?Sized),
) -> ControlFlow<()> {
    match stepped {
        Ok(metrics) => {
            mean.add(&metrics, examples);
            on_batch(Stepped::Trained(&metrics))
        }
        Err(diverged) => {
            let _ = on_batch(Stepped::Diverged(&diverged));
            ControlFlow::Break(())
        }
    }
}

/// How an epoch's batches are drawn and shared: examples per step (over all processes), the
/// keys of the epoch's draws, and the processes.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    /// Examples per step.
    pub batch_size: usize,
    /// The epoch's keys.
    pub keys: Keys,
    /// The processes that share each batch.
    pub world: &'a dyn Collective,
}

/// One pass over the shuffled training set, a step per batch on the loss `loss` builds for it
/// (with the draws of its examples); `on_batch` sees each step's outcome and may stop the
/// epoch (`Break`), which a diverged step always does. Returns the example-weighted means of
/// the steps applied. Each process of `plan.world` steps on its share of every batch.
pub fn epoch(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    train: &TrainSet,
    plan: Plan<'_>,
    loss: impl for<'t> Fn(&Bound<'t>, Batch, &Draws<'_>) -> Loss<'t>,
    mut on_batch: impl FnMut(Stepped<'_>) -> ControlFlow<()>,
) -> Metrics {
    let (world, keys) = (plan.world, plan.keys);
    let mut mean = MetricsMean::default();
    let mut batches = train.epoch(plan.batch_size, keys);
    while let Some(share) = batches.next_share(world.rank(), world.ranks()) {
        let (weight, examples) = (share.weight(), share.batch.indices.clone());
        let stepped = shared_step(store, opt, world, weight, |p| {
            loss(p, share.batch, &keys.draws(&examples))
        });
        if report(stepped, share.of, &mut mean, &mut on_batch).is_break() {
            break;
        }
    }
    mean.mean()
}

/// One pass over the shuffled `unlabeled` set for semi-supervised training: every step takes
/// its next `plan.batch_size` unlabeled examples and the next `labeled_size` labeled ones (the
/// labeled set reshuffled whenever it runs out), and `loss` builds the loss of the pair
/// `(labeled, unlabeled)` with each one's draws: the mean over the pair's examples. The labeled
/// examples draw from [`Keys::labeled_pass`] (afresh on each pass), their orders from
/// [`Purpose::LabeledShuffle`]. Each process of `plan.world` takes its share of both halves;
/// a share with no row of a half gets an empty half (not a stand-in row, which would enter the
/// mean), so `loss` must take halves of no row.
pub fn semi_supervised_epoch(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    (labeled, unlabeled): (&TrainSet, &TrainSet),
    labeled_size: usize,
    plan: Plan<'_>,
    loss: impl for<'t> Fn(&Bound<'t>, (Batch, &Draws<'_>), (Batch, &Draws<'_>)) -> Loss<'t>,
    mut on_batch: impl FnMut(Stepped<'_>) -> ControlFlow<()>,
) -> Metrics {
    let (keys, world) = (plan.keys, plan.world);
    let (part, parts) = (world.rank(), world.ranks());
    let labeled_epoch = |cycle| {
        let order = &mut keys.shared(Purpose::LabeledShuffle, cycle);
        labeled.epoch_in_order(labeled_size, keys.labeled_pass(cycle), order)
    };
    let (mut cycle, mut mean) = (0, MetricsMean::default());
    let mut batches = unlabeled.epoch(plan.batch_size, keys);
    let mut labeled_batches = labeled_epoch(cycle);
    while let Some(u) = batches.next_share(part, parts) {
        let l = match labeled_batches.next_share(part, parts) {
            Some(b) => b,
            None => {
                cycle += 1;
                labeled_batches = labeled_epoch(cycle);
                (labeled_batches.next_share(part, parts)).expect("a non-empty labeled set")
            }
        };
        let (of, l, u) = (l.of + u.of, l.counted_rows(), u.counted_rows());
        let weight = (l.len() + u.len()) as f64 / of as f64;
        let (l_examples, u_examples) = (l.indices.clone(), u.indices.clone());
        let l_keys = keys.labeled_pass(cycle);
        let (l_draws, u_draws) = (l_keys.draws(&l_examples), keys.draws(&u_examples));
        let stepped = shared_step(store, opt, world, weight, |p| {
            loss(p, (l, &l_draws), (u, &u_draws))
        });
        if report(stepped, of, &mut mean, &mut on_batch).is_break() {
            break;
        }
    }
    mean.mean()
}

/// A model's loss on one batch, with the named per-example parts it is made of.
pub struct Loss<'t> {
    /// The scalar (1×1) that training minimises.
    pub loss: Var<'t>,
    /// Per-example (m×1) parts, e.g. `("recon", …)`, `("kl", …)`.
    pub parts: Vec<(&'static str, Var<'t>)>,
}

impl<'t> Loss<'t> {
    /// A loss and its named parts.
    pub fn new(loss: Var<'t>, parts: impl IntoIterator<Item = (&'static str, Var<'t>)>) -> Self {
        Loss {
            loss,
            parts: parts.into_iter().collect(),
        }
    }

    /// The per-example part named `name`, if the model reports one.
    pub fn part(&self, name: &str) -> Option<Var<'t>> {
        self.parts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The loss and the batch mean of each part, as numbers.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            loss: f64::from(self.loss.item()),
            parts: self
                .parts
                .iter()
                .map(|&(name, v)| (name, f64::from(v.value().mean().unwrap_or(0.0))))
                .collect(),
        }
    }
}

/// Numbers of one batch (or averages over many).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// The training loss.
    pub loss: f64,
    /// Means of the named parts.
    pub parts: Vec<(&'static str, f64)>,
}

impl Metrics {
    /// The part called `name`.
    pub fn part(&self, name: &str) -> Option<f64> {
        self.parts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

/// A running example-weighted mean of [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct MetricsMean {
    sum: Metrics,
    count: usize,
}

impl MetricsMean {
    /// Adds the metrics of a batch of `examples` examples.
    pub fn add(&mut self, m: &Metrics, examples: usize) {
        let w = examples as f64;
        if self.count == 0 {
            self.sum = Metrics {
                loss: 0.0,
                parts: m.parts.iter().map(|&(n, _)| (n, 0.0)).collect(),
            };
        }
        self.sum.loss += w * m.loss;
        for ((_, total), &(_, v)) in self.sum.parts.iter_mut().zip(&m.parts) {
            *total += w * v;
        }
        self.count += examples;
    }

    /// The mean so far.
    pub fn mean(&self) -> Metrics {
        let n = self.count.max(1) as f64;
        Metrics {
            loss: self.sum.loss / n,
            parts: self.sum.parts.iter().map(|&(k, v)| (k, v / n)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Matrix;
    use nn::{Adam, AdamConfig};

    #[test]
    fn all_finite_finds_nan_and_both_infinities_anywhere() {
        let mut m = Matrix::from_elem((3, 37), f32::MAX);
        m[[0, 0]] = f32::MIN_POSITIVE / 2.0; // subnormal: finite
        assert!(all_finite(&m));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [(0, 0), (1, 20), (2, 36)] {
                let mut m = m.clone();
                m[at] = bad;
                assert!(!all_finite(&m), "{bad} at {at:?}");
                // The same in column-major order.
                assert!(!all_finite(&m.t().to_owned()));
            }
        }
    }

    #[test]
    fn a_step_with_a_non_finite_loss_or_gradient_changes_nothing() {
        let mut store = ParamStore::new();
        let w = store.add("w", Matrix::from_elem((1, 2), 1.0));
        let mut opt = Adam::new(&store, AdamConfig::default());
        let state = opt.state();
        // ln(w - 1) at w = 1: a -inf loss (and an infinite gradient).
        let stepped = step(&mut store, &mut opt, |p| {
            let v = (p[w] - p.constant(Matrix::from_elem((1, 2), 1.0))).log();
            Loss::new(v.sum(), [])
        });
        assert_eq!(stepped, Err(Diverged { anomaly: None }));
        assert_eq!(store.value(w).to_owned(), Matrix::from_elem((1, 2), 1.0));
        assert_eq!(opt.state(), state);
        // Under anomaly detection the step names the op.
        let stepped = autodiff::detect_anomaly(|| {
            step(&mut store, &mut opt, |p| {
                let v = (p[w] - p.constant(Matrix::from_elem((1, 2), 1.0))).log();
                Loss::new(v.sum(), [])
            })
        });
        assert_eq!(stepped.unwrap_err().anomaly.map(|a| a.op), Some("log"));
        // A finite step is applied.
        let stepped = step(&mut store, &mut opt, |p| Loss::new(p[w].square().sum(), []));
        assert!(stepped.is_ok());
        assert_ne!(store.value(w).to_owned(), Matrix::from_elem((1, 2), 1.0));
    }

    /// Process 0 of two, the other's part recorded beforehand: its weighted gradients, one per
    /// parameter in order, and its weighted metrics, added to this process's own.
    struct WithOther {
        grads: std::cell::RefCell<std::vec::IntoIter<Vec<f32>>>,
        metrics: Vec<f64>,
    }

    impl Collective for WithOther {
        fn rank(&self) -> usize {
            0
        }

        fn ranks(&self) -> usize {
            2
        }

        fn sum_into(&self, mine: &[f32], sums: &mut [f32]) {
            let other = self.grads.borrow_mut().next().expect("one per parameter");
            for ((s, m), o) in sums.iter_mut().zip(mine).zip(other) {
                *s = m + o;
            }
        }

        fn sum_f64(&self, values: &mut [f64]) {
            values
                .iter_mut()
                .zip(&self.metrics)
                .for_each(|(v, o)| *v += o);
        }

        fn min_max(&self, value: u64) -> (u64, u64) {
            (value, value)
        }
    }

    /// `mean over rows r of Σ_j (x_r·w + b)_j²`, part `sq` per row, for rows `rows` of `x`.
    fn square_loss<'t>(
        p: &Bound<'t>,
        (w, b): (nn::ParamId, nn::ParamId),
        x: &Matrix,
        rows: std::ops::Range<usize>,
    ) -> Loss<'t> {
        let xs = p.constant(x.slice(ndarray::s![rows, ..]).to_owned());
        let sq = (xs.matmul(p[w]) + p[b]).square().sum_cols();
        Loss::new(sq.mean_rows(), [("sq", sq)])
    }

    #[test]
    fn shares_of_unequal_size_step_as_the_whole_batch() {
        // A batch of 4 rows in shares of 3 (this process, weight 3/4) and 1 (the other, 1/4).
        // With plain SGD the update is the gradient itself, so a wrong weight shows.
        let x = Matrix::from_shape_fn((4, 3), |(i, j)| (i as f32 - 1.5) * 0.7 + j as f32 * 0.3);
        let mut store = ParamStore::new();
        let w = store.add(
            "w",
            Matrix::from_shape_fn((3, 2), |(i, j)| 0.2 * i as f32 - 0.1 * j as f32),
        );
        let b = store.add("b", Matrix::from_elem((1, 2), 0.05));
        let sgd = |store: &ParamStore| {
            let config = nn::SgdConfig {
                lr: 0.1,
                ..nn::SgdConfig::default()
            };
            nn::Sgd::new(store, config)
        };
        let (mut whole, mut shared) = (store.clone(), store.clone());
        let all = step(&mut whole, &mut sgd(&store), |p| {
            square_loss(p, (w, b), &x, 0..4)
        })
        .unwrap();
        // The other process: the gradients of ¼·(its mean), and ¼ of its metrics.
        let (other_grads, other_metrics) = {
            let tape = Tape::new();
            let p = store.bind(&tape);
            let out = square_loss(&p, (w, b), &x, 3..4);
            let m = out.metrics();
            let grads = p.grads(tape.backward(out.loss * 0.25));
            let flat: Vec<Vec<f32>> = grads
                .iter()
                .map(|(_, g)| g.iter().copied().collect())
                .collect();
            (flat, vec![0.25 * m.loss, 0.25 * m.parts[0].1])
        };
        let world = WithOther {
            grads: std::cell::RefCell::new(other_grads.into_iter()),
            metrics: other_metrics,
        };
        let mine = shared_step(&mut shared, &mut sgd(&store), &world, 0.75, |p| {
            square_loss(p, (w, b), &x, 0..3)
        })
        .unwrap();
        for id in [w, b] {
            for (a, s) in whole.value(id).iter().zip(shared.value(id)) {
                assert!((a - s).abs() < 1e-6, "{a} against {s}");
            }
        }
        assert!((all.loss - mine.loss).abs() < 1e-6 * all.loss.abs().max(1.0));
        assert!((all.parts[0].1 - mine.parts[0].1).abs() < 1e-6 * all.loss.abs().max(1.0));
        assert_ne!(whole.value(w), store.value(w), "the step moved nothing");
    }

    #[test]
    fn a_share_of_weight_zero_counts_for_nothing_even_when_not_finite() {
        // A stand-in row whose loss is +inf (a huge input squared): the step applies the other
        // process's gradient alone, and the metrics are the other's.
        let x = Matrix::from_elem((1, 3), 1e30);
        let mut store = ParamStore::new();
        let w = store.add("w", Matrix::from_elem((3, 2), 1.0));
        let b = store.add("b", Matrix::zeros((1, 2)));
        let world = WithOther {
            grads: std::cell::RefCell::new(vec![vec![1.0; 6], vec![2.0; 2]].into_iter()),
            metrics: vec![7.0, 7.0],
        };
        let config = nn::SgdConfig {
            lr: 0.5,
            ..nn::SgdConfig::default()
        };
        let mut opt = nn::Sgd::new(&store, config);
        let m = shared_step(&mut store, &mut opt, &world, 0.0, |p| {
            square_loss(p, (w, b), &x, 0..1)
        })
        .unwrap();
        // w − 0.5·1 and b − 0.5·2.
        assert!(store.value(w).iter().all(|&v| v == 0.5));
        assert!(store.value(b).iter().all(|&v| v == -1.0));
        assert_eq!((m.loss, m.parts[0].1), (7.0, 7.0));
    }
}
