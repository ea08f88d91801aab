//! One training step (bind, forward, backward, drop the tape, update) and one epoch of them.

use autodiff::Tape;
use nn::{Bound, Optimizer, ParamStore};
use rand_chacha::ChaCha8Rng;

use crate::data::{Batch, TrainSet};
use crate::models::{Loss, Metrics, MetricsMean};

/// One step of gradient descent on the loss that `loss` builds on the bound parameters;
/// returns its metrics.
pub fn step(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    loss: impl for<'t> FnOnce(&Bound<'t>) -> Loss<'t>,
) -> Metrics {
    let (metrics, grads) = {
        let tape = Tape::new();
        let p = store.bind(&tape);
        let out = loss(&p);
        (out.metrics(), p.grads(tape.backward(out.loss)))
    }; // the tape is dropped before the update, so the parameters are no longer shared
    opt.step(store, &grads);
    metrics
}

/// One pass over the shuffled training set, a step per batch on the loss `loss` builds for it;
/// `on_batch` sees each batch's metrics. Returns the example-weighted means.
pub fn epoch(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    train: &TrainSet,
    batch_size: usize,
    rng: &mut ChaCha8Rng,
    loss: impl for<'t> Fn(&Bound<'t>, Batch, &mut ChaCha8Rng) -> Loss<'t>,
    mut on_batch: impl FnMut(&Metrics),
) -> Metrics {
    let mut mean = MetricsMean::default();
    let mut batches = train.epoch(batch_size, rng);
    while let Some(batch) = batches.next_batch(rng) {
        let examples = batch.len();
        let metrics = step(store, opt, |p| loss(p, batch, rng));
        on_batch(&metrics);
        mean.add(&metrics, examples);
    }
    mean.mean()
}

/// One pass over the shuffled `unlabeled` set for semi-supervised training: every step takes
/// its next `batch_size` unlabeled examples and the next `labeled_batch` labeled ones (the
/// labeled set reshuffled whenever it runs out), and `loss` builds the loss of the pair
/// `(labeled, unlabeled)`.
#[allow(clippy::too_many_arguments)]
pub fn semi_supervised_epoch(
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    labeled: &TrainSet,
    unlabeled: &TrainSet,
    (labeled_size, batch_size): (usize, usize),
    rng: &mut ChaCha8Rng,
    loss: impl for<'t> Fn(&Bound<'t>, Batch, Batch, &mut ChaCha8Rng) -> Loss<'t>,
    mut on_batch: impl FnMut(&Metrics),
) -> Metrics {
    let mut mean = MetricsMean::default();
    let mut batches = unlabeled.epoch(batch_size, rng);
    let mut labeled_batches = labeled.epoch(labeled_size, rng);
    while let Some(batch) = batches.next_batch(rng) {
        let labeled_batch = match labeled_batches.next_batch(rng) {
            Some(b) => b,
            None => {
                labeled_batches = labeled.epoch(labeled_size, rng);
                labeled_batches
                    .next_batch(rng)
                    .expect("a non-empty labeled set")
            }
        };
        let examples = batch.len();
        let metrics = step(store, opt, |p| loss(p, labeled_batch, batch, rng));
        on_batch(&metrics);
        mean.add(&metrics, examples);
    }
    mean.mean()
}
