//! One training step (bind, forward, backward, drop the tape, update) and one epoch of them.

use autodiff::{Matrix, Tape};
use nn::{Optimizer, ParamStore};
use rand_chacha::ChaCha8Rng;

use crate::data::TrainSet;
use crate::models::{Metrics, MetricsMean, Vae};

/// One step of gradient descent on the negative ELBO of a batch of `images` (rows); returns the
/// batch's metrics.
pub fn step(
    vae: &Vae,
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    images: Matrix,
    rng: &mut ChaCha8Rng,
) -> Metrics {
    let (metrics, grads) = {
        let tape = Tape::new();
        let p = store.bind(&tape);
        let x = p.constant(images);
        let out = vae.loss(&p, x, None, rng);
        (out.metrics(), p.grads(tape.backward(out.loss)))
    }; // the tape is dropped before the update, so the parameters are no longer shared
    opt.step(store, &grads);
    metrics
}

/// One pass over the shuffled training set; `on_batch` sees each batch's metrics. Returns the
/// example-weighted means.
pub fn epoch(
    vae: &Vae,
    store: &mut ParamStore,
    opt: &mut dyn Optimizer,
    train: &TrainSet,
    batch_size: usize,
    rng: &mut ChaCha8Rng,
    mut on_batch: impl FnMut(&Metrics),
) -> Metrics {
    let mut mean = MetricsMean::default();
    let mut batches = train.epoch(batch_size, rng);
    while let Some(batch) = batches.next_batch(rng) {
        let examples = batch.len();
        let metrics = step(vae, store, opt, batch.images, rng);
        on_batch(&metrics);
        mean.add(&metrics, examples);
    }
    mean.mean()
}
