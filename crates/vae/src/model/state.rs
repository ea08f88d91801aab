//! A model's state as the run schedules, saves and restores it ([`State`]), and the parameters
//! of a model trained by one Adam ([`Params`]).

use std::path::Path;

use nn::checkpoint::{self, Metadata, Trained, TrainedMut};
use nn::{Adam, AdamConfig, Optimizer, ParamStore};

use super::{RunConfig, RunError};

/// A model's state as the run schedules, saves and restores it.
pub struct State<'a> {
    /// Each optimizer with the parameters it trains, under its key in the checkpoint (`None`
    /// for a model of one optimizer, whose state is saved as `optim.*`). The run sets each
    /// one's rate every epoch.
    pub trained: Vec<(
        Option<&'static str>,
        &'a mut ParamStore,
        &'a mut dyn Optimizer,
    )>,
    /// Tensors of its state that no optimizer trains (a codebook's moving averages, a fitted
    /// prior, a generator's batch-norm statistics).
    pub buffers: Vec<&'a mut ParamStore>,
    /// The model's own metadata entries (read back by [`RunModel::read_metadata`](super::RunModel::read_metadata)).
    pub metadata: Metadata,
    /// Whether it trains data-parallel: the processes of a run then hold its parameters
    /// alike. Such a model takes its share of every batch through
    /// [`train::epoch`](crate::train::epoch) with [`Epoch::plan`](super::Epoch::plan), keys every draw of its epoch
    /// by its example, and makes every value of its [`test`](super::RunModel::test) a mean over the
    /// test images of per-image values, so that the processes can each take a share.
    pub data_parallel: bool,
}

impl<'a> State<'a> {
    /// The state of a model of one store trained by one optimizer.
    pub fn single(store: &'a mut ParamStore, optimizer: &'a mut dyn Optimizer) -> State<'a> {
        State {
            trained: vec![(None, store, optimizer)],
            buffers: Vec::new(),
            metadata: Metadata::new(),
            data_parallel: false,
        }
    }

    /// `self`, data-parallel.
    pub fn data_parallel(self) -> State<'a> {
        State {
            data_parallel: true,
            ..self
        }
    }

    /// `self` with the buffers `buffers`.
    pub fn with_buffers(self, buffers: Vec<&'a mut ParamStore>) -> State<'a> {
        State { buffers, ..self }
    }

    /// Sets every optimizer's learning rate.
    pub fn set_lr(&mut self, lr: f32) {
        for (_, _, optimizer) in &mut self.trained {
            optimizer.set_lr(lr);
        }
    }

    /// Every optimizer's learning rate, in order.
    pub fn lrs(&self) -> Vec<f32> {
        self.trained.iter().map(|(_, _, o)| o.lr()).collect()
    }

    /// Writes the parameters, optimizer state, buffers, the model's own metadata and
    /// `metadata` to the checkpoint `path`, atomically.
    pub fn save(&self, path: &Path, metadata: &Metadata) -> Result<(), RunError> {
        let mut metadata = metadata.clone();
        metadata.extend(self.metadata.clone());
        let buffers: Vec<&ParamStore> = self.buffers.iter().map(|b| &**b).collect();
        match self.trained.as_slice() {
            [(None, store, optimizer)] => {
                checkpoint::save_with_buffers(path, store, *optimizer, &buffers, &metadata)?
            }
            trained => {
                let trained: Vec<Trained<'_>> = (trained.iter())
                    .map(|(key, store, optimizer)| Trained {
                        key: key.expect("several optimizers are keyed"),
                        store,
                        optimizer: *optimizer,
                    })
                    .collect();
                checkpoint::save_trained(path, &trained, &buffers, &metadata)?
            }
        }
        Ok(())
    }

    /// Reads from the checkpoint `path` the parameters and buffers and, with
    /// [`Restore::Everything`], the optimizers' state. On error nothing has changed.
    pub fn restore(self, path: &Path, what: Restore) -> Result<(), RunError> {
        let State {
            trained,
            mut buffers,
            ..
        } = self;
        let mut trained = trained.into_iter();
        match what {
            Restore::Params => {
                let (_, first, _) = trained.next().expect("a model trains some parameters");
                let mut rest: Vec<&mut ParamStore> = trained.map(|(_, store, _)| store).collect();
                rest.extend(buffers);
                checkpoint::load_params_with_buffers(path, first, &mut rest)?;
            }
            Restore::Everything => match trained.as_slice() {
                [(None, ..)] => {
                    let (_, store, optimizer) = trained.next().expect("one");
                    checkpoint::load_with_buffers(path, store, optimizer, &mut buffers)?;
                }
                _ => {
                    let mut keyed: Vec<TrainedMut<'_>> = trained
                        .map(|(key, store, optimizer)| TrainedMut {
                            key: key.expect("several optimizers are keyed"),
                            store,
                            optimizer,
                        })
                        .collect();
                    checkpoint::load_trained(path, &mut keyed, &mut buffers)?;
                }
            },
        }
        Ok(())
    }

    /// The parameters that the processes of a data-parallel run hold alike, as one checksum.
    pub fn params_hash(&self) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::parallel::Checksum::default();
        for (_, store, _) in &self.trained {
            h.write_u64(crate::parallel::params_hash(store));
        }
        h.finish()
    }
}

/// Which parts of a checkpoint to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The parameters only: to evaluate or sample.
    Params,
    /// Parameters and optimizer state: to resume training exactly.
    Everything,
}

/// The parameters of a model trained by one Adam, and that Adam: what the models of one network
/// (or of several networks trained as one) hold, with the checkpoint methods they share.
#[derive(Debug, Clone)]
pub struct Params {
    /// The parameters.
    pub store: ParamStore,
    /// Their optimizer.
    pub opt: Adam,
}

impl Params {
    /// `store`, filled by the model's constructor, with an Adam at the rate of `config`.
    pub fn new(store: ParamStore, config: &RunConfig) -> Params {
        let opt = Adam::new(
            &store,
            AdamConfig {
                lr: config.optimizer.lr,
                weight_decay: config.optimizer.weight_decay,
                ..AdamConfig::default()
            },
        );
        Params { store, opt }
    }

    /// The [`State`] of a model of these parameters alone.
    pub fn state(&mut self) -> State<'_> {
        State::single(&mut self.store, &mut self.opt)
    }

    /// The store and the optimizer, for a step.
    pub fn parts(&mut self) -> (&mut ParamStore, &mut Adam) {
        (&mut self.store, &mut self.opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimizer_takes_the_runs_rate_and_weight_decay() {
        let mut config = RunConfig::default();
        config.optimizer.lr = 3e-3;
        config.optimizer.weight_decay = 1e-2;
        let params = Params::new(ParamStore::new(), &config);
        let adam = params.opt.config();
        assert_eq!((adam.lr, adam.weight_decay), (3e-3, 1e-2));
        // Adam's coupled L2 penalty (λ·θ in the gradient), as the flag's help says.
        assert!(!adam.decoupled_weight_decay);
    }
}
