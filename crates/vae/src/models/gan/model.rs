//! `--model gan` and `--model wgan` as a run trains them: their settings, both networks with
//! their optimizers, the adversarial epochs, the pictures of training unfolding, and the
//! reference classifier's scores of the samples every epoch.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::{Matrix, Tape, Var, bce_with_logits};
use ndarray::s;
use nn::checkpoint::Metadata;
use nn::{
    Adam, AdamConfig, Bound, Optimizer, ParamStore, Rmsprop, RmspropConfig, Stats, clip_weights,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::WGAN;
use super::net::{Discriminator, GAN_BETA1, Game, GanLoss, Generator, WGAN_CLIP, critic_steps};
use super::settings::{GanSettings, WganSettings};
use crate::data::TrainSet;
use crate::dist::standard_normal;
use crate::eval::quality::Coverage;
use crate::model::{
    Abilities, Build, Columns, Epoch, Figure, Finish, Picture, Report, Row, RunConfig, RunError,
    RunModel, Sample, Samples, State, TestData, TrainData, Yardstick, files,
};
use crate::random::{Draws, Keys, Purpose, examples};
use crate::train::{self, Loss, Metrics, MetricsMean};

/// Samples drawn from fixed noise for `samples.png`; the first [`PROGRESS_COLS`] also make a row
/// of `progress.png` every epoch.
const SAMPLES_SHOWN: usize = 64;
/// Images in each row of `progress.png`.
const PROGRESS_COLS: usize = 10;
/// `progress.png` shows at most this many rows (every k-th epoch beyond).
const PROGRESS_ROWS_SHOWN: usize = 40;
/// Generated images per epoch for the test columns D(G(z)) and the yardstick.
const TEST_FAKES: usize = 2000;
/// The samples of the end-of-run yardstick figures.
const FINAL_SAMPLES: usize = 10_000;
/// Rows per forward pass of evaluation.
const CHUNK_ROWS: usize = 4096;
/// The stream of the fixed noise of the pictures.
const PICTURE_STREAM: u64 = 0x6a_0e5e;
/// The checkpoint's metadata key of the number of `progress.png` rows saved.
const PROGRESS_KEY: &str = "gan_progress_rows";
/// The checkpoint tensor of those rows.
const PROGRESS_TENSOR: &str = "progress";
/// A warning when D's mean loss falls below this (ln 2 ≈ 0.69 at equilibrium).
const D_LOSS_COLLAPSE: f64 = 0.05;
/// A warning when the generated classes' KL to uniform exceeds this (ln 10 ≈ 2.3 for one class).
const CLASS_KL_COLLAPSE: f64 = 0.5;

/// `--model gan` and `--model wgan`: both networks, their stores and optimizers, the noise of
/// the pictures, the rows of `progress.png` so far, and the reference classifier that scores
/// the samples every epoch.
pub struct GanModel {
    game: Game,
    g: Generator,
    d: Discriminator,
    g_store: ParamStore,
    /// G's batch-normalization running statistics.
    g_buffers: ParamStore,
    d_store: ParamStore,
    g_opt: Box<dyn Optimizer>,
    d_opt: Box<dyn Optimizer>,
    /// The noise of `samples.png` and `progress.png`, the same every epoch.
    fixed_z: Matrix,
    /// One row of [`PROGRESS_COLS`] images per epoch trained, as one tensor of a store of its
    /// own (empty before the first epoch).
    progress: ParamStore,
    shape: (usize, usize),
    quality_samples: usize,
    reference: Option<Rc<dyn Yardstick>>,
}

impl GanModel {
    /// The GAN or WGAN of `config` for images of `build.shape`, with the reference classifier
    /// of `build` if its settings asked for one.
    pub fn new(config: &RunConfig, build: &Build) -> Self {
        let (height, width) = build.shape;
        let pixels = height * width;
        let (net, game, minibatch) = if config.kind().name() == WGAN.name {
            (
                &config.settings::<WganSettings>().net,
                Game::Wasserstein,
                false,
            )
        } else {
            let gan: &GanSettings = config.settings();
            (
                &gan.net,
                Game::Gan(gan.gan_loss),
                gan.minibatch_discrimination,
            )
        };
        let rng = &mut config.init_rng();
        let (mut g_store, mut g_buffers, mut d_store) =
            (ParamStore::new(), ParamStore::new(), ParamStore::new());
        let g = Generator::new(
            (&mut g_store, &mut g_buffers),
            net.latent_dim,
            &net.hidden,
            pixels,
            rng,
        );
        let d = Discriminator::new(&mut d_store, pixels, minibatch, rng);
        let lr = config.optimizer.lr;
        let optimizer = |store: &ParamStore| -> Box<dyn Optimizer> {
            match game {
                Game::Gan(_) => Box::new(Adam::new(
                    store,
                    AdamConfig {
                        lr,
                        beta1: GAN_BETA1,
                        ..AdamConfig::default()
                    },
                )),
                Game::Wasserstein => Box::new(Rmsprop::new(
                    store,
                    RmspropConfig {
                        lr,
                        ..RmspropConfig::default()
                    },
                )),
            }
        };
        let (g_opt, d_opt) = (optimizer(&g_store), optimizer(&d_store));
        if game == Game::Wasserstein {
            // The critic starts inside the clipping box, as after any of its steps.
            clip_weights(&mut d_store, WGAN_CLIP);
        }
        let mut picture_rng = ChaCha8Rng::seed_from_u64(config.seed);
        picture_rng.set_stream(PICTURE_STREAM);
        GanModel {
            game,
            g,
            d,
            g_opt,
            d_opt,
            fixed_z: standard_normal(&mut picture_rng, (SAMPLES_SHOWN, net.latent_dim)),
            g_store,
            g_buffers,
            d_store,
            progress: ParamStore::new(),
            shape: (height, width),
            quality_samples: net.quality_samples,
            reference: (net.quality_samples > 0)
                .then(|| build.reference.clone())
                .flatten(),
        }
    }

    /// The game.
    pub fn game(&self) -> Game {
        self.game
    }

    /// The generator's images of `z` in [0, 1], in evaluation mode.
    pub fn generate(&self, z: &Matrix) -> Matrix {
        self.g.images(&self.g_store, &self.g_buffers, z)
    }

    /// The parameters of G, of D and G's running statistics.
    pub fn stores(&self) -> [&ParamStore; 3] {
        [&self.g_store, &self.d_store, &self.g_buffers]
    }

    /// The optimizers' steps so far: G's and D's.
    pub fn steps(&self) -> (u64, u64) {
        (self.g_opt.t(), self.d_opt.t())
    }

    fn monitored(&self) -> Option<&dyn Yardstick> {
        (self.quality_samples > 0)
            .then_some(self.reference.as_deref())
            .flatten()
    }

    /// One batch of the GAN: G's step, then D's on the same generated images (detached). Fake
    /// row `r` draws its z from real row `r`'s example in `draws`.
    fn gan_batch(
        &mut self,
        loss: GanLoss,
        real: Matrix,
        draws: &Draws<'_>,
    ) -> Result<Metrics, train::Diverged> {
        let rows = real.nrows();
        let z = draws.normal(Purpose::Latent, 1, self.g.latent_dim());
        let (ones, zeros) = (
            Rc::new(Matrix::ones((rows, 1))),
            Rc::new(Matrix::zeros((rows, 1))),
        );
        let (g_loss, g_norm, fake) = self.generator_step(z, |p, logits| match loss {
            GanLoss::NonSaturating => bce_with_logits(logits, p.constant(ones.clone())),
            GanLoss::Minimax => -bce_with_logits(logits, p.constant(zeros.clone())),
        })?;
        let d = &self.d;
        let (mut d_real, mut d_fake) = (0.0, 0.0);
        let mut d_norm = 0.0;
        let d_step = train::step_seeing_grads(
            &mut self.d_store,
            self.d_opt.as_mut(),
            |p| {
                let real_logits = d.forward(p, p.constant(real));
                let fake_logits = d.forward(p, p.constant(fake));
                d_real = mean_probability(real_logits.value().iter());
                d_fake = mean_probability(fake_logits.value().iter());
                let real_loss = bce_with_logits(real_logits, p.constant(ones));
                let fake_loss = bce_with_logits(fake_logits, p.constant(zeros));
                let loss = (real_loss.mean_rows() + fake_loss.mean_rows()).scale(0.5);
                Loss::new(loss, [])
            },
            |grads| d_norm = grads.norm(),
        )?;
        Ok(Metrics {
            loss: d_step.loss,
            parts: vec![
                ("g_loss", g_loss),
                ("d_real", d_real),
                ("d_fake", d_fake),
                ("d_grad_norm", f64::from(d_norm)),
                ("g_grad_norm", f64::from(g_norm)),
            ],
        })
    }

    /// One critic step of the WGAN on `real`: minimises `mean D(G(z)) − mean D(x)`, then clips
    /// the weights. Returns its metrics; the loss is the critic's, so the Wasserstein estimate
    /// is its negative.
    fn critic_step(&mut self, real: Matrix, draws: &Draws<'_>) -> Result<Metrics, train::Diverged> {
        let z = draws.normal(Purpose::Latent, 1, self.g.latent_dim());
        let fake = {
            let tape = Tape::new();
            let p = self.g_store.bind_frozen(&tape);
            let x = self
                .g
                .forward(&p, p.constant(z), Stats::Batch(&mut self.g_buffers));
            x.value()
        };
        let d = &self.d;
        let mut d_norm = 0.0;
        let step = train::step_seeing_grads(
            &mut self.d_store,
            self.d_opt.as_mut(),
            |p| {
                let real = d.forward(p, p.constant(real)).mean_rows();
                let fake = d.forward(p, p.constant(fake)).mean_rows();
                Loss::new(fake - real, [])
            },
            |grads| d_norm = grads.norm(),
        )?;
        clip_weights(&mut self.d_store, WGAN_CLIP);
        Ok(Metrics {
            loss: step.loss,
            parts: vec![
                ("wasserstein", -step.loss),
                ("d_grad_norm", f64::from(d_norm)),
            ],
        })
    }

    /// G's step with D frozen, on `rows` fresh noise vectors: minimises the mean over them of
    /// `loss(p, D's logit of G(z))`. Returns the step's loss, G's gradient norm and the images
    /// it generated (before the update), which the GAN's D step reuses.
    fn generator_step(
        &mut self,
        z: Matrix,
        loss: impl for<'t> FnOnce(&Bound<'t>, Var<'t>) -> Var<'t>,
    ) -> Result<(f64, f32, Rc<Matrix>), train::Diverged> {
        let (g, d, d_store, g_buffers) = (&self.g, &self.d, &self.d_store, &mut self.g_buffers);
        let (mut g_norm, mut fake) = (0.0, None);
        let step = train::step_seeing_grads(
            &mut self.g_store,
            self.g_opt.as_mut(),
            |p| {
                let pd = d_store.bind_frozen(p.tape());
                let x = g.forward(p, p.constant(z), Stats::Batch(g_buffers));
                fake = Some(x.value());
                let per_image = loss(p, d.forward(&pd, x));
                Loss::new(per_image.mean_rows(), [])
            },
            |grads| g_norm = grads.norm(),
        )?;
        let fake = fake.expect("the generator's step ran its forward pass");
        Ok((step.loss, g_norm, fake))
    }

    /// An epoch of the GAN; the means of its train columns.
    fn gan_epoch(&mut self, loss: GanLoss, train: &TrainSet, ctx: &mut Epoch<'_>) -> Vec<f64> {
        let mut mean = MetricsMean::default();
        let mut batches = train.epoch(ctx.batch_size, ctx.keys);
        while let Some(batch) = batches.next_batch() {
            let examples = batch.len();
            let draws = ctx.keys.draws(&batch.indices);
            let stepped = self.gan_batch(loss, scaled(batch.images), &draws);
            if train::report(stepped, examples, &mut mean, &mut *ctx.on_batch).is_break() {
                break;
            }
        }
        let m = mean.mean();
        let part = |name| m.part(name).unwrap_or(f64::NAN);
        vec![
            m.loss,
            part("g_loss"),
            part("d_real"),
            part("d_fake"),
            part("d_grad_norm"),
            part("g_grad_norm"),
        ]
    }

    /// An epoch of the WGAN, as the reference code loops: [`critic_steps`] critic steps, each
    /// on the next batch, then a generator step, until the batches run out (the last
    /// generator step may follow fewer critic steps).
    fn wgan_epoch(&mut self, train: &TrainSet, ctx: &mut Epoch<'_>) -> Vec<f64> {
        let (mut critic, mut generator) = (MetricsMean::default(), MetricsMean::default());
        let mut batches = train.epoch(ctx.batch_size, ctx.keys);
        // The generator's steps draw copy 1 of examples numbered by step and row.
        let mut generated = 0;
        'epoch: loop {
            let mut taken = 0;
            while taken < critic_steps(self.g_opt.t()) {
                let Some(batch) = batches.next_batch() else {
                    break;
                };
                taken += 1;
                let examples = batch.len();
                let draws = ctx.keys.draws(&batch.indices);
                let stepped = self.critic_step(scaled(batch.images), &draws);
                if train::report(stepped, examples, &mut critic, &mut *ctx.on_batch).is_break() {
                    break 'epoch;
                }
            }
            if taken == 0 {
                break;
            }
            // The WGAN's G minimises −mean D(G(z)).
            let rows: Vec<usize> = (generated..generated + ctx.batch_size).collect();
            generated += ctx.batch_size;
            let z = ctx.keys.draws(&rows).copy(1);
            let z = z.normal(Purpose::Latent, 1, self.g.latent_dim());
            match self.generator_step(z, |_, logits| -logits) {
                Ok((loss, g_norm, _)) => {
                    let parts = vec![("g_grad_norm", f64::from(g_norm))];
                    generator.add(&Metrics { loss, parts }, ctx.batch_size);
                }
                Err(diverged) => {
                    let _ = (ctx.on_batch)(train::Stepped::Diverged(&diverged));
                    break;
                }
            }
        }
        let (c, g) = (critic.mean(), generator.mean());
        let part = |m: &Metrics, name| m.part(name).unwrap_or(f64::NAN);
        vec![
            c.loss,
            g.loss,
            part(&c, "wasserstein"),
            part(&c, "d_grad_norm"),
            part(&g, "g_grad_norm"),
        ]
    }

    /// The row of `progress.png` of the current generator.
    fn progress_row(&self) -> Matrix {
        self.generate(&self.fixed_z.slice(s![..PROGRESS_COLS, ..]).to_owned())
    }

    /// `progress.png`: a row per epoch (every k-th when there are more than
    /// [`PROGRESS_ROWS_SHOWN`], always with the last), oldest at the top.
    fn progress_picture(&self) -> Option<Matrix> {
        let progress = self.progress_rows();
        let n = progress.len();
        if n == 0 {
            return None;
        }
        let every = n.div_ceil(PROGRESS_ROWS_SHOWN);
        let mut shown: Vec<usize> = (0..n).filter(|e| (e + 1) % every == 0).collect();
        if shown.last() != Some(&(n - 1)) {
            shown.push(n - 1);
        }
        let rows: Vec<&Matrix> = shown.iter().map(|&e| &progress[e]).collect();
        Some(crate::image::above(&rows, PROGRESS_COLS))
    }

    /// `rows` as one checkpoint tensor, in a store of their own.
    fn progress_store(rows: &[Matrix]) -> ParamStore {
        let mut store = ParamStore::new();
        if let Some(first) = rows.first() {
            let width = first.len();
            let mut all = Matrix::zeros((rows.len(), width));
            for (mut row, m) in all.rows_mut().into_iter().zip(rows) {
                row.assign(&ndarray::ArrayView1::from(
                    m.as_slice().expect("standard layout"),
                ));
            }
            store.add(PROGRESS_TENSOR, all);
        }
        store
    }

    /// A store shaped for the progress rows a checkpoint's `meta` says it holds.
    fn progress_store_for(&self, meta: &Metadata, path: &Path) -> Result<ParamStore, RunError> {
        let rows: usize = match meta.get(PROGRESS_KEY) {
            Some(n) => n.parse().map_err(|_| {
                RunError::Config(format!(
                    "{}: {PROGRESS_KEY} = {n:?} is not a number of rows",
                    path.display()
                ))
            })?,
            None => 0,
        };
        let mut store = ParamStore::new();
        if rows > 0 {
            let width = PROGRESS_COLS * self.shape.0 * self.shape.1;
            store.add(PROGRESS_TENSOR, Matrix::zeros((rows, width)));
        }
        Ok(store)
    }

    /// The rows of `progress.png` so far, one per epoch trained.
    fn progress_rows(&self) -> Vec<Matrix> {
        let pixels = self.shape.0 * self.shape.1;
        match self.progress.id(PROGRESS_TENSOR) {
            Some(id) => (self.progress.value(id).rows().into_iter())
                .map(|r| {
                    Matrix::from_shape_vec((PROGRESS_COLS, pixels), r.to_vec())
                        .expect("rows of PROGRESS_COLS images")
                })
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The yardstick's figures of an epoch's row, if it has them: the Inception Score, the classes
/// covered and the class KL to uniform.
fn quality(row: &Row) -> Option<(f64, f64, f64)> {
    Some((
        row.find("inception_score")?,
        row.find("classes")?,
        row.find("class_kl")?,
    ))
}

/// Images in [0, 1] scaled, in place, to the generator's range, [−1, 1].
fn scaled(mut images: Matrix) -> Matrix {
    images.mapv_inplace(|v| 2.0 * v - 1.0);
    images
}

/// The mean of `σ(l)` over logits `l`: the discriminator's mean probability of "real".
fn mean_probability<'a>(logits: impl IntoIterator<Item = &'a f32>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for &l in logits {
        sum += 1.0 / (1.0 + (-f64::from(l)).exp());
        n += 1;
    }
    sum / n.max(1) as f64
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

const GAN_TRAIN: [&str; 6] = [
    "train_d_loss",
    "train_g_loss",
    "train_d_real",
    "train_d_fake",
    "train_d_grad_norm",
    "train_g_grad_norm",
];
const WGAN_TRAIN: [&str; 5] = [
    "train_critic_loss",
    "train_g_loss",
    "train_wasserstein",
    "train_d_grad_norm",
    "train_g_grad_norm",
];

/// `metrics.csv` of the GAN: D's loss, G's loss, the mean D(x) and D(G(z)) (probabilities of
/// "real") and both gradient norms in training; D(x) on the test set and D(G(z)) on
/// [`TEST_FAKES`] images of fixed noise; with the yardstick, their Inception Score, classes
/// covered and class KL to uniform.
const GAN_COLUMNS: [Columns; 2] = [
    Columns {
        train: &GAN_TRAIN,
        test: &["test_d_real", "test_d_fake"],
    },
    Columns {
        train: &GAN_TRAIN,
        test: &[
            "test_d_real",
            "test_d_fake",
            "inception_score",
            "classes",
            "class_kl",
        ],
    },
];

/// `metrics.csv` of the WGAN: the critic's loss, G's loss, the Wasserstein estimate
/// `mean D(x) − mean D(G(z))` and both gradient norms in training; the estimate between the
/// test set and fixed noise's images; with the yardstick, as the GAN.
const WGAN_COLUMNS: [Columns; 2] = [
    Columns {
        train: &WGAN_TRAIN,
        test: &["test_wasserstein"],
    },
    Columns {
        train: &WGAN_TRAIN,
        test: &["test_wasserstein", "inception_score", "classes", "class_kl"],
    },
];

impl RunModel for GanModel {
    fn columns(&self) -> Columns {
        let monitored = usize::from(self.monitored().is_some());
        match self.game {
            Game::Gan(_) => GAN_COLUMNS[monitored],
            Game::Wasserstein => WGAN_COLUMNS[monitored],
        }
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let values = match self.game {
            Game::Gan(loss) => self.gan_epoch(loss, data.all(), ctx),
            Game::Wasserstein => self.wgan_epoch(data.all(), ctx),
        };
        let mut rows = self.progress_rows();
        rows.push(self.progress_row());
        self.progress = Self::progress_store(&rows);
        Row::new(self.columns().train, values)
    }

    fn test(&self, test: &TestData, keys: Keys) -> Row {
        let fakes = examples(TEST_FAKES);
        let z = keys
            .draws(&fakes)
            .normal(Purpose::Latent, 1, self.g.latent_dim());
        let fakes = self.generate(&z);
        let chunk = if self.d.has_minibatch() {
            64
        } else {
            CHUNK_ROWS
        };
        let real = self.d.logits(&self.d_store, &scaled(test.x.clone()), chunk);
        let fake = self.d.logits(&self.d_store, &scaled(fakes.clone()), chunk);
        let mut values = match self.game {
            Game::Gan(_) => vec![mean_probability(&real), mean_probability(&fake)],
            Game::Wasserstein => vec![mean(&real) - mean(&fake)],
        };
        if let Some(reference) = self.monitored() {
            let n = self.quality_samples.min(TEST_FAKES);
            let images = fakes.slice(s![..n, ..]).to_owned();
            let (score, coverage) = reference.score_and_coverage(&images);
            values.extend([score, coverage.classes as f64, coverage.kl_to_uniform]);
        }
        Row::new(self.columns().test, values)
    }

    fn state(&mut self) -> State<'_> {
        let rows = self.progress_rows().len();
        State {
            trained: vec![
                (Some("g"), &mut self.g_store, self.g_opt.as_mut()),
                (Some("d"), &mut self.d_store, self.d_opt.as_mut()),
            ],
            buffers: vec![&mut self.g_buffers, &mut self.progress],
            metadata: Metadata::from_iter([(PROGRESS_KEY.to_string(), rows.to_string())]),
            data_parallel: false,
        }
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            sample: Some(self),
            ..Abilities::default()
        }
    }

    fn read_metadata(&mut self, meta: &Metadata, path: &Path) -> Result<(), RunError> {
        self.progress = self.progress_store_for(meta, path)?;
        Ok(())
    }
}

impl Report for GanModel {
    fn describe(&self, v: &Row) -> String {
        let quality = match quality(v) {
            Some((score, classes, kl)) => {
                format!("  IS {score:5.2}  classes {classes:2.0}  class KL {kl:5.3}")
            }
            None => String::new(),
        };
        match self.game {
            Game::Gan(_) => format!(
                "D loss {:6.3}  G loss {:6.3}  D(x) {:5.3}  D(G(z)) {:5.3}  |∇D| {:6.3}  \
                 |∇G| {:6.3}  test D(x) {:5.3}  D(G(z)) {:5.3}{quality}",
                v.get("train_d_loss"),
                v.get("train_g_loss"),
                v.get("train_d_real"),
                v.get("train_d_fake"),
                v.get("train_d_grad_norm"),
                v.get("train_g_grad_norm"),
                v.get("test_d_real"),
                v.get("test_d_fake"),
            ),
            Game::Wasserstein => format!(
                "critic loss {:8.5}  G loss {:8.5}  W {:8.5}  |∇D| {:6.3}  |∇G| {:6.3}  \
                 test W {:8.5}{quality}",
                v.get("train_critic_loss"),
                v.get("train_g_loss"),
                v.get("train_wasserstein"),
                v.get("train_d_grad_norm"),
                v.get("train_g_grad_norm"),
                v.get("test_wasserstein"),
            ),
        }
    }

    fn describe_test(&self, v: &Row) -> String {
        let head = match self.game {
            Game::Gan(_) => format!(
                "test D(x) {:.3}, D(G(z)) {:.3}",
                v.get("test_d_real"),
                v.get("test_d_fake")
            ),
            Game::Wasserstein => {
                format!("test Wasserstein estimate {:.5}", v.get("test_wasserstein"))
            }
        };
        match quality(v) {
            Some((score, classes, kl)) => format!(
                "{head}; {} samples: Inception Score {score:.2}, {classes} of 10 classes, \
                 class KL {kl:.3}",
                self.quality_samples.min(TEST_FAKES)
            ),
            None => head,
        }
    }

    fn finish(&self, _test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let Some(reference) = self.reference.as_deref() else {
            return Ok(Vec::new());
        };
        (ctx.note)(&format!(
            "scoring {FINAL_SAMPLES} samples with the reference classifier"
        ));
        let samples = examples(FINAL_SAMPLES);
        let z = ctx
            .keys
            .draws(&samples)
            .normal(Purpose::Latent, 1, self.g.latent_dim());
        let (score, coverage) = reference.score_and_coverage(&self.generate(&z));
        let Coverage {
            classes,
            kl_to_uniform,
            ..
        } = coverage;
        Ok(vec![
            Figure::new(
                "inception score",
                score,
                format!("{FINAL_SAMPLES} samples: classifier Inception Score {score:.2}"),
            ),
            Figure::new(
                "classes",
                classes as f64,
                format!(
                    "{FINAL_SAMPLES} samples: {classes} of 10 classes, class KL to uniform \
                     {kl_to_uniform:.3}"
                ),
            ),
        ])
    }

    fn pictures(
        &self,
        _test: &TestData,
        out: &Path,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        self.epoch_pictures(out)
    }

    fn epoch_pictures(&self, out: &Path) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = crate::models::report::Grids::new(out, self.shape);
        let cols = (SAMPLES_SHOWN as f64).sqrt() as usize;
        grids.grid(files::SAMPLES, &self.generate(&self.fixed_z), cols)?;
        if let Some(progress) = self.progress_picture() {
            grids.grid(files::PROGRESS, &progress, PROGRESS_COLS)?;
        }
        Ok(grids.finish())
    }

    fn warnings(&self, v: &Row) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Game::Gan(loss) = self.game
            && v.get("train_d_loss") < D_LOSS_COLLAPSE
        {
            let consequence = match loss {
                GanLoss::Minimax => "the minimax loss's gradients vanish",
                GanLoss::NonSaturating => "G learns from a near-certain D",
            };
            warnings.push(format!(
                "D's loss fell to {:.4}: D tells real from generated almost surely \
                 (mean D(x) {:.3}, D(G(z)) {:.3}); {consequence}",
                v.get("train_d_loss"),
                v.get("train_d_real"),
                v.get("train_d_fake")
            ));
        }
        if let Some((_, classes, kl)) = quality(v)
            && (classes < 10.0 || kl > CLASS_KL_COLLAPSE)
        {
            warnings.push(format!(
                "the samples' classes collapse: {classes} of 10 classes, class KL to uniform \
                 {kl:.3} (mode collapse)"
            ));
        }
        warnings
    }

    fn sample_picture(
        &self,
        _test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        let z = standard_normal(rng, (n, self.g.latent_dim()));
        Ok(Picture::square(
            self.generate(&z),
            format!("{n} samples of the generator"),
        ))
    }
}

impl Sample for GanModel {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        let z = standard_normal(rng, (n, self.g.latent_dim()));
        Samples {
            images: self.generate(&z),
            labels: None,
        }
    }

    /// G's images are images, not pixel probabilities.
    fn draws_means(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
