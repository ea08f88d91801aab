//! The model of a run, whichever `--model` chose: building it, its training data, an epoch of
//! training, the test figures of every epoch and of the end, and its pictures.

use std::path::{Path, PathBuf};

use autodiff::{Matrix, Tape};
use ndarray::{Axis, s};
use nn::{Optimizer, ParamStore};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{RunConfig, RunError, files};
use crate::data::{Split, TrainSet};
use crate::eval::{self, ActiveUnits, Elbo};
use crate::image;
use crate::models::{
    CLASSES, Completion, Counts, Cvae, M2, Metrics, ModelKind, Prior, Regressor, Vae, VaeConfig,
    one_hot,
};
use crate::pictures;
use crate::train;

/// Rows evaluated at once by M2's test bound (each decoded under ten labels).
const M2_CHUNK: usize = 400;

/// Rows classified, or scored by the regressor, at once.
const CHUNK: usize = 4096;

/// A built model.
#[derive(Debug, Clone)]
pub enum Model {
    /// `--model vae`.
    Vae(Vae),
    /// `--model cvae`.
    Cvae(Cvae),
    /// `--model completion`.
    Completion(Completion),
    /// `--model regressor`.
    Regressor(Regressor),
    /// `--model m2`.
    M2(M2),
}

/// The training data in the form the model trains on.
pub enum TrainData {
    /// Every training image, labels and all.
    All(TrainSet),
    /// M2's split: a class-balanced labeled subset and the rest, unlabeled.
    SemiSupervised {
        /// The labeled examples.
        labeled: TrainSet,
        /// The others (their labels are never used).
        unlabeled: TrainSet,
    },
}

impl TrainData {
    /// Steps per epoch at `batch_size`.
    pub fn batches(&self, batch_size: usize) -> usize {
        match self {
            TrainData::All(set) => set.len(),
            TrainData::SemiSupervised { unlabeled, .. } => unlabeled.len(),
        }
        .div_ceil(batch_size)
    }
}

/// The test set with its fixed targets, as the evaluations take it.
pub struct TestData {
    /// The split (binarized once with the evaluation seed, when binarizing).
    pub split: Split,
    /// All its images as rows.
    pub x: Matrix,
}

impl TestData {
    /// The split's images as one matrix.
    pub fn new(split: Split) -> TestData {
        let x = super::images(&split);
        TestData { split, x }
    }

    fn one_hot(&self) -> Matrix {
        one_hot(self.split.labels())
    }
}

/// The test figures of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochTest {
    /// The negative ELBO (for the regressor: its exact negative log-likelihood, KL 0).
    pub elbo: Elbo,
    /// M2's classification error, a fraction.
    pub error: Option<f64>,
}

/// The test figures at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalTest {
    /// What the log-likelihood is of (`-log p(x)`, `-log p(x|y)`, `-log p(x_u|x_o)`) and its
    /// value in nats per image: importance-weighted, or exact for the regressor.
    pub nll: Option<(&'static str, f64)>,
    /// The latent dimensions in use.
    pub active_units: Option<ActiveUnits>,
    /// M2's classification error.
    pub error: Option<f64>,
}

/// The labeled subset of M2: `per_class` examples of each class, drawn with `rng`.
pub fn balanced_subset(
    labels: &[u8],
    per_class: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>, RunError> {
    let mut chosen = Vec::with_capacity(per_class * CLASSES);
    for class in 0..CLASSES as u8 {
        let mut of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if of_class.len() < per_class {
            return Err(RunError::Config(format!(
                "--labels: only {} training images of class {class}, {per_class} wanted",
                of_class.len()
            )));
        }
        of_class.shuffle(rng);
        chosen.extend_from_slice(&of_class[..per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

impl Model {
    /// The model `config` describes, for images of `shape`, its parameters added to `store`.
    pub fn build(config: &RunConfig, shape: (usize, usize), store: &mut ParamStore) -> Model {
        let vae = VaeConfig {
            input_dim: shape.0 * shape.1,
            hidden: config.hidden.clone(),
            latent_dim: config.latent_dim,
            activation: config.activation,
            likelihood: config.likelihood,
            beta: config.beta,
            cond_dim: 0,
            prior: Prior::Standard,
        };
        let rng = &mut ChaCha8Rng::seed_from_u64(config.seed);
        match config.model {
            ModelKind::Vae => Model::Vae(Vae::new(store, vae, rng)),
            ModelKind::Cvae => Model::Cvae(Cvae::new(store, vae, rng)),
            ModelKind::Completion => {
                Model::Completion(Completion::new(store, vae, config.observe, shape, rng))
            }
            ModelKind::Regressor => {
                Model::Regressor(Regressor::new(store, &vae, config.observe, shape, rng))
            }
            ModelKind::M2 => Model::M2(M2::new(store, vae, config.alpha, rng)),
        }
    }

    /// The (conditional) VAE inside, if any.
    pub fn vae(&self) -> Option<&Vae> {
        match self {
            Model::Vae(v) => Some(v),
            Model::Cvae(m) => Some(m.vae()),
            Model::Completion(m) => Some(m.vae()),
            Model::M2(m) => Some(m.vae()),
            Model::Regressor(_) => None,
        }
    }

    /// The training data for this model: M2 splits off `config.labels` labeled examples
    /// (class-balanced, drawn with the run's seed on a stream of their own).
    pub fn train_data(&self, config: &RunConfig, train: Split) -> Result<TrainData, RunError> {
        if !matches!(self, Model::M2(_)) {
            return Ok(TrainData::All(TrainSet::new(train, config.binarize)));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(4);
        let labeled = balanced_subset(train.labels(), config.labels / CLASSES, &mut rng)?;
        let mut is_labeled = vec![false; train.len()];
        for &i in &labeled {
            is_labeled[i] = true;
        }
        let unlabeled: Vec<usize> = (0..train.len()).filter(|&i| !is_labeled[i]).collect();
        if unlabeled.is_empty() {
            return Err(RunError::Config(
                "--labels: every training image is labeled; nothing is left unlabeled".into(),
            ));
        }
        Ok(TrainData::SemiSupervised {
            labeled: TrainSet::new(train.subset(&labeled), config.binarize),
            unlabeled: TrainSet::new(train.subset(&unlabeled), config.binarize),
        })
    }

    /// One epoch of training; returns the mean metrics (`on_batch` sees every step's).
    #[allow(clippy::too_many_arguments)]
    pub fn train_epoch(
        &self,
        store: &mut ParamStore,
        opt: &mut dyn Optimizer,
        data: &TrainData,
        batch_size: usize,
        rng: &mut ChaCha8Rng,
        on_batch: impl FnMut(&Metrics),
    ) -> Metrics {
        match (self, data) {
            (Model::M2(m2), TrainData::SemiSupervised { labeled, unlabeled }) => {
                let counts = Counts {
                    labeled: labeled.len(),
                    unlabeled: unlabeled.len(),
                };
                let labeled_size = batch_size.min(labeled.len());
                train::semi_supervised_epoch(
                    store,
                    opt,
                    labeled,
                    unlabeled,
                    (labeled_size, batch_size),
                    rng,
                    |p, l, u, rng| m2.loss(p, (l.images, &l.labels), u.images, counts, rng),
                    on_batch,
                )
            }
            (_, TrainData::All(set)) => train::epoch(
                store,
                opt,
                set,
                batch_size,
                rng,
                |p, batch, rng| match self {
                    Model::Vae(vae) => vae.loss(p, p.constant(batch.images), None, rng),
                    Model::Cvae(m) => m.loss(p, p.constant(batch.images), &batch.labels, rng),
                    Model::Completion(m) => m.loss(p, &batch.images, rng),
                    Model::Regressor(m) => m.loss(p, &batch.images),
                    Model::M2(_) => unreachable!("M2 trains on semi-supervised data"),
                },
                on_batch,
            ),
            (_, TrainData::SemiSupervised { .. }) => {
                unreachable!("only M2 trains on semi-supervised data")
            }
        }
    }

    /// The epoch's figure of the training metrics: the negative ELBO (recon + kl, whatever β)
    /// or, for M2, the objective.
    pub fn train_figure(&self, mean: &Metrics) -> f64 {
        match self {
            Model::M2(_) => mean.loss,
            _ => mean.part("recon").unwrap_or(0.0) + mean.part("kl").unwrap_or(0.0),
        }
    }

    /// The test figures of an epoch, with the same noise (`rng` from the same seed) each time.
    pub fn epoch_test(
        &self,
        store: &ParamStore,
        test: &TestData,
        rng: &mut ChaCha8Rng,
    ) -> EpochTest {
        let elbo = match self {
            Model::Vae(vae) => eval::elbo(vae, store, &test.x, None, rng),
            Model::Cvae(m) => eval::elbo(m.vae(), store, &test.x, Some(&test.one_hot()), rng),
            Model::Completion(m) => {
                let (x_o, x_u) = m.mask().split(&test.x);
                eval::elbo(m.vae(), store, &x_u, Some(&x_o), rng)
            }
            Model::Regressor(m) => {
                let nll = regressor_nll(m, store, &test.x);
                Elbo {
                    neg_elbo: nll,
                    recon: nll,
                    kl: 0.0,
                }
            }
            Model::M2(m) => m2_bound(m, store, &test.x, rng),
        };
        let error = match self {
            Model::M2(m) => Some(m2_error(m, store, test)),
            _ => None,
        };
        EpochTest { elbo, error }
    }

    /// The end-of-run figures: the importance-weighted log-likelihood with `k` samples (`k = 0`
    /// skips it), the active units, M2's error.
    pub fn final_test(
        &self,
        store: &ParamStore,
        test: &TestData,
        k: usize,
        rng: &mut ChaCha8Rng,
    ) -> FinalTest {
        let (what, x, cond) = match self {
            Model::Vae(_) => ("-log p(x)", test.x.clone(), None),
            Model::Cvae(_) => ("-log p(x|y)", test.x.clone(), Some(test.one_hot())),
            Model::Completion(m) => {
                let (x_o, x_u) = m.mask().split(&test.x);
                ("-log p(x_u|x_o)", x_u, Some(x_o))
            }
            Model::Regressor(m) => {
                return FinalTest {
                    nll: Some(("-log p(x_u|x_o)", regressor_nll(m, store, &test.x))),
                    active_units: None,
                    error: None,
                };
            }
            Model::M2(m) => {
                let vae = m.vae();
                return FinalTest {
                    nll: None,
                    active_units: Some(eval::active_units(
                        vae,
                        store,
                        &test.x,
                        Some(&test.one_hot()),
                    )),
                    error: Some(m2_error(m, store, test)),
                };
            }
        };
        let vae = self.vae().expect("every other model has a VAE");
        FinalTest {
            nll: (k > 0).then(|| (what, eval::iw_nll(vae, store, &x, cond.as_ref(), k, rng))),
            active_units: Some(eval::active_units(vae, store, &x, cond.as_ref())),
            error: None,
        }
    }

    /// Writes the model's pictures into `out`; returns their paths.
    pub fn write_pictures(
        &self,
        store: &ParamStore,
        test: &TestData,
        out: &Path,
        seed: u64,
    ) -> Result<Vec<PathBuf>, RunError> {
        let shape = test.split.image_shape();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        let mut written = Vec::new();
        let mut grid = |name: &str, images: Matrix, cols: usize| -> Result<(), RunError> {
            let path = out.join(name);
            image::save_grid(&path, &images, shape, cols)?;
            written.push(path);
            Ok(())
        };
        match self {
            Model::Vae(vae) => {
                let x = test.x.slice(s![..test.x.nrows().min(64), ..]).to_owned();
                grid(
                    files::SAMPLES,
                    pictures::samples(vae, store, 64, &mut rng),
                    8,
                )?;
                let reconstructions = pictures::reconstructions(vae, store, &x, 4, 16);
                grid(files::RECONSTRUCTIONS, reconstructions, 16)?;
                let interpolation = pictures::interpolation(vae, store, &x, 8, 10);
                grid(files::INTERPOLATION, interpolation, 12)?;
                if vae.config().latent_dim == 2 {
                    grid(files::MANIFOLD, pictures::manifold(vae, store, 20), 20)?;
                    let means = eval::posterior_means(vae, store, &test.x, None);
                    let points: Vec<(f32, f32)> =
                        means.rows().into_iter().map(|r| (r[0], r[1])).collect();
                    let path = out.join(files::LATENT);
                    image::save_scatter(&path, &points, test.split.labels(), 600)?;
                    written.push(path);
                }
            }
            Model::Cvae(_) | Model::M2(_) => {
                let vae = self.vae().expect("conditional");
                grid(
                    files::CLASSES,
                    pictures::classes(vae, store, 10, &mut rng),
                    10,
                )?;
                let labels = test.split.labels();
                grid(
                    files::ANALOGIES,
                    pictures::analogies(vae, store, &test.x, labels, 10),
                    CLASSES + 1,
                )?;
            }
            Model::Completion(m) => {
                let samples = 6;
                grid(
                    files::COMPLETION,
                    pictures::completions(m, store, &test.x, 12, samples, &mut rng),
                    samples + 2,
                )?;
            }
            Model::Regressor(m) => grid(
                files::COMPLETION,
                pictures::regressions(m, store, &test.x, 12),
                3,
            )?,
        }
        Ok(written)
    }
}

/// The regressor's exact `-ln p(x_u|x_o)` per image, averaged.
fn regressor_nll(model: &Regressor, store: &ParamStore, x: &Matrix) -> f64 {
    let mut total = 0.0f64;
    for rows in x.axis_chunks_iter(Axis(0), CHUNK) {
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let loss = model.loss(&p, &rows.to_owned());
        let recon = loss
            .part("recon")
            .expect("the regressor's loss reports `recon`");
        total += f64::from(recon.value().sum());
    }
    total / x.nrows().max(1) as f64
}

/// M2's bound `U(x)` on `-ln p(x)` over the test images, with its parts.
fn m2_bound(model: &M2, store: &ParamStore, x: &Matrix, rng: &mut ChaCha8Rng) -> Elbo {
    let (mut recon, mut kl) = (0.0f64, 0.0f64);
    for start in (0..x.nrows()).step_by(M2_CHUNK) {
        let rows = x.slice(s![start..(start + M2_CHUNK).min(x.nrows()), ..]);
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let u = model.unlabeled(&p, p.constant(rows.to_owned()), rng);
        recon += f64::from(u.recon.value().sum());
        kl += f64::from(u.kl.value().sum());
    }
    let n = x.nrows().max(1) as f64;
    Elbo {
        neg_elbo: (recon + kl) / n,
        recon: recon / n,
        kl: kl / n,
    }
}

/// The fraction of test images whose most probable class under `q(y|x)` is not their label.
fn m2_error(model: &M2, store: &ParamStore, test: &TestData) -> f64 {
    let mut wrong = 0usize;
    for (chunk, rows) in test.x.axis_chunks_iter(Axis(0), CHUNK).enumerate() {
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let log_q = model.log_q_y(&p, p.constant(rows.to_owned())).value();
        for (i, row) in log_q.rows().into_iter().enumerate() {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (c, &v)| if v > b.1 { (c, v) } else { b },
                )
                .0;
            if best != usize::from(test.split.labels()[chunk * CHUNK + i]) {
                wrong += 1;
            }
        }
    }
    wrong as f64 / test.x.nrows().max(1) as f64
}
