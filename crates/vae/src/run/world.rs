//! The processes of a run that trains on several (data-parallel): the checks that they agree,
//! the test set shared among them, stopping together on a signal, and the replay of an epoch
//! that diverged under anomaly detection.

use std::ops::ControlFlow;
use std::path::Path;

use super::{Interrupt, RunError};
use crate::data::Split;
use crate::model::{Build, Epoch, Restore, Row, RunConfig, RunModel, TestData, TrainData};
use crate::parallel::{self, Alone, Collective};
use crate::random::Keys;
use crate::train::Stepped;

/// The test columns of `model` with the evaluation keys of `seed`: each process of `world`
/// evaluates its share `mine` of `test` and the shares' means are combined, weighted by their
/// images. Alone (no share), or for a model that is not data-parallel, the whole test set.
pub(super) fn shared_test(
    (model, data_parallel): (&dyn RunModel, bool),
    (test, mine): (&TestData, Option<&TestData>),
    seed: u64,
    world: &dyn Collective,
) -> Row {
    let keys = Keys::evaluation(seed);
    let Some(mine) = mine.filter(|_| data_parallel) else {
        return model.test(test, keys);
    };
    let weight = mine.x.nrows() as f64 / test.x.nrows().max(1) as f64;
    let mut row = model.test(mine, keys).scaled(weight);
    let mut values: Vec<f64> = row.values().collect();
    world.sum_f64(&mut values);
    row.values_mut().zip(values).for_each(|(v, sum)| *v = sum);
    row
}

/// The signal that stops every process of `world` at this step boundary: the strongest any of
/// them received (SIGTERM over SIGINT), so that all stop at the same step (`mpirun` passes a
/// signal to each, and they see it at different steps). One all-reduce of two numbers, the
/// processes that received each; alone, `received`.
pub(super) fn stop_together(
    world: &dyn Collective,
    received: Option<Interrupt>,
) -> Option<Interrupt> {
    if world.ranks() == 1 {
        return received;
    }
    let mut received = [Interrupt::Int, Interrupt::Term].map(|s| f64::from(received == Some(s)));
    world.sum_f64(&mut received);
    match received {
        [_, term] if term > 0.0 => Some(Interrupt::Term),
        [int, _] if int > 0.0 => Some(Interrupt::Int),
        _ => None,
    }
}

/// A checksum of what every process of a run must agree on besides the data: the settings of
/// its trajectory and those that decide which collectives it calls (epochs, test images,
/// importance samples).
fn settings_hash(config: &RunConfig) -> u64 {
    use std::hash::Hasher;
    let mut h = parallel::Checksum::default();
    let mut kept = config.clone();
    kept.data.dir = None;
    h.write(kept.to_toml().as_bytes());
    h.finish()
}

/// A checksum of a run's data (both splits' pixels and labels), the same on every process
/// that read the same files.
fn splits_hash(train: &Split, test: &Split) -> u64 {
    use std::hash::Hasher;
    let mut h = parallel::Checksum::default();
    for split in [train, test] {
        h.write_usize(split.len());
        for i in 0..split.len() {
            h.write(split.image(i));
        }
        h.write(split.labels());
    }
    h.finish()
}

/// Refuses to train on several processes a model that is not data-parallel, or processes that
/// were given different settings or read different data (`dir` names where they read it).
pub(super) fn check_agreement(
    world: &dyn Collective,
    (config, data_parallel): (&RunConfig, bool),
    (train, test, dir): (&Split, &Split, &Path),
) -> Result<(), RunError> {
    if world.ranks() == 1 {
        return Ok(());
    }
    if !data_parallel {
        return Err(RunError::Config(format!(
            "model {} does not train data-parallel: run it as one process",
            config.kind()
        )));
    }
    if !parallel::agree(world, settings_hash(config)) {
        return Err(RunError::Config(
            "the processes were given different settings (their checksums differ): give every \
             process the same flags"
                .into(),
        ));
    }
    if !parallel::agree(world, splits_hash(train, test)) {
        return Err(RunError::Config(format!(
            "the processes read different data from {} (their checksums differ)",
            dir.display()
        )));
    }
    Ok(())
}

/// Why an epoch stopped before its end.
pub(super) enum Halt {
    Interrupted(Interrupt),
    Diverged,
}

/// An epoch to train again from its start under anomaly detection.
pub(super) struct Replay<'a> {
    pub(super) config: &'a RunConfig,
    pub(super) build: &'a Build,
    /// The checkpoint the epoch started from (`None`: the initialisation).
    pub(super) from: Option<&'a Path>,
    /// The epoch's keys.
    pub(super) keys: Keys,
    pub(super) lr: f32,
}

impl Replay<'_> {
    /// The model as the epoch started, trained again on `data` with every tape in anomaly mode
    /// up to the step that diverges: the op that first produced a non-finite number.
    pub(super) fn anomaly(self, data: &TrainData) -> Option<autodiff::Anomaly> {
        let mut model = (self.config.kind().entry().build)(self.config, self.build);
        if let Some(path) = self.from {
            super::restore(&mut *model, path, Restore::Everything).ok()?;
        }
        model.state().set_lr(self.lr);
        let mut found = None;
        autodiff::detect_anomaly(|| {
            model.train_epoch(
                data,
                &mut Epoch {
                    keys: self.keys,
                    world: &Alone,
                    batch_size: self.config.optimizer.batch_size,
                    on_batch: &mut |stepped| match stepped {
                        Stepped::Trained(_) => ControlFlow::Continue(()),
                        Stepped::Diverged(d) => {
                            found = d.anomaly.clone();
                            ControlFlow::Break(())
                        }
                    },
                },
            )
        });
        found
    }
}
