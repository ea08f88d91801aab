//! Generative adversarial networks: `--model gan`, the MLP GAN of PyTorch-GAN's `gan.py`
//! (Goodfellow et al. 2014), optionally with minibatch discrimination (Salimans et al. 2016),
//! and `--model wgan`, the Wasserstein GAN (Arjovsky et al. 2017) with the same generator and a
//! weight-clipped critic.
//!
//! A generator G maps noise z ~ N(0, I) to an image in [−1, 1] (the data are scaled to match);
//! a discriminator D scores images. Each owns its parameters and its optimizer, and a batch
//! takes one step of each, top to bottom: G's step with D frozen, then D's step on the same
//! generated images, detached.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::{Matrix, Tape, Var, bce_with_logits, concat_cols, minibatch_discrimination};
use ndarray::s;
use nn::checkpoint::Metadata;
use nn::{
    Adam, AdamConfig, BatchNorm1d, BatchNormConfig, Bound, Init, Linear, Optimizer, ParamId,
    ParamStore, Rmsprop, RmspropConfig, Stats, clip_weights,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use crate::data::{Binarize, TrainSet};
use crate::dist::standard_normal;
use crate::eval::quality::Coverage;
use crate::model::files;
use crate::model::{
    Abilities, Build, Columns, Epoch, Figure, Finish, ModelEntry, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Settings, State, TestData, TrainData, Yardstick,
    all_images, by_str, check_hidden, keep, positive,
};
use crate::random::{Draws, Keys, Purpose, examples};
use crate::train;
use crate::train::{Loss, Metrics, MetricsMean};

/// The discriminator's hidden widths, as in `gan.py` (784 → 512 → 256 → 1).
pub const D_HIDDEN: [usize; 2] = [512, 256];

/// The slope of every LeakyReLU, G's and D's.
pub const LEAKY_SLOPE: f32 = 0.2;

/// G's batch normalization: `gan.py` writes `nn.BatchNorm1d(out_feat, 0.8)`, whose second
/// argument is ε (not the momentum). Kept, since that is the network users know; it damps the
/// normalization of low-variance features.
pub const G_BATCH_NORM: BatchNormConfig = BatchNormConfig {
    eps: 0.8,
    momentum: 0.1,
};

/// Adam's β₁ for both networks of the GAN (β₂ 0.999), as in DCGAN and `gan.py`.
pub const GAN_BETA1: f32 = 0.5;

/// The critic's weights are clipped to `±WGAN_CLIP` after each of its steps.
pub const WGAN_CLIP: f32 = 0.01;

/// Critic steps per generator step, except in the phases of [`critic_steps`].
pub const N_CRITIC: usize = 5;

/// Minibatch discrimination's kernels (B) and their dimensions (C), the paper's 100 × 5.
pub const MINIBATCH_KERNELS: usize = 100;
/// See [`MINIBATCH_KERNELS`].
pub const MINIBATCH_DIMS: usize = 5;

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

/// The generator's loss (`--gan-loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GanLoss {
    /// Goodfellow's non-saturating loss, `−ln D(G(z))`: strong gradients while D rejects G's
    /// images.
    #[default]
    NonSaturating,
    /// The minimax game's `ln(1 − D(G(z)))`, which saturates (vanishing gradients) while D
    /// wins.
    Minimax,
}

/// An unknown `--gan-loss`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown GAN loss `{0}` (expected non-saturating or minimax)")]
pub struct ParseGanLossError(pub String);

spelled!(GanLoss, ParseGanLossError {
    NonSaturating => "non-saturating",
    Minimax => "minimax",
});

/// The generator: `latent → hidden… → pixels`, each hidden layer Linear, then batch
/// normalization (all but the first, [`G_BATCH_NORM`]) and LeakyReLU 0.2; the output tanh, an
/// image in [−1, 1]. Parameters `g.fc*`, `g.bn*`, `g.out`; running statistics in a buffers
/// store.
#[derive(Debug, Clone)]
pub struct Generator {
    layers: Vec<(Linear, Option<BatchNorm1d>)>,
    out: Linear,
    latent_dim: usize,
}

impl Generator {
    /// A generator of `pixels` from `latent_dim` noise through `hidden` widths.
    ///
    /// Panics if `hidden` is empty or a width is 0.
    #[track_caller]
    pub fn new(
        (params, buffers): (&mut ParamStore, &mut ParamStore),
        latent_dim: usize,
        hidden: &[usize],
        pixels: usize,
        rng: &mut ChaCha8Rng,
    ) -> Generator {
        assert!(
            !hidden.is_empty() && !hidden.contains(&0) && latent_dim > 0,
            "Generator: latent {latent_dim}, hidden {hidden:?}"
        );
        let mut below = latent_dim;
        let mut layers = Vec::new();
        for (i, &width) in hidden.iter().enumerate() {
            let linear = Linear::new(params, &format!("g.fc{}", i + 1), below, width, rng);
            let norm = (i > 0).then(|| {
                let name = format!("g.bn{}", i + 1);
                BatchNorm1d::new(params, buffers, &name, width, G_BATCH_NORM)
            });
            layers.push((linear, norm));
            below = width;
        }
        let out = Linear::new(params, "g.out", below, pixels, rng);
        Generator {
            layers,
            out,
            latent_dim,
        }
    }

    /// Dimensions of z.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Images (`rows × pixels`, in [−1, 1]) of the noise `z`, batch-normalized with `stats`.
    pub fn forward<'t>(&self, p: &Bound<'t>, z: Var<'t>, mut stats: Stats<'_>) -> Var<'t> {
        let mut h = z;
        for (linear, norm) in &self.layers {
            h = linear.forward(p, h);
            if let Some(norm) = norm {
                h = norm.forward(p, h, stats.reborrow());
            }
            h = h.leaky_relu(LEAKY_SLOPE);
        }
        self.out.forward(p, h).tanh()
    }

    /// The images of the rows of `z` in [0, 1], in evaluation mode (running statistics), a
    /// chunk at a time.
    pub fn images(&self, params: &ParamStore, buffers: &ParamStore, z: &Matrix) -> Matrix {
        let mut out = Matrix::zeros((z.nrows(), self.out.out_dim()));
        for start in (0..z.nrows()).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(z.nrows());
            let tape = Tape::new();
            let p = params.bind_frozen(&tape);
            let zc = p.constant(z.slice(s![start..end, ..]).to_owned());
            let x = self.forward(&p, zc, Stats::Running(buffers)).value();
            out.slice_mut(s![start..end, ..])
                .assign(&x.mapv(|v| 0.5 * (v + 1.0)));
        }
        out
    }
}

/// Minibatch discrimination's tensor T (`A × B·C`), read as B kernels of C dimensions.
#[derive(Debug, Clone, PartialEq)]
struct MinibatchFeatures {
    t: ParamId,
}

/// The discriminator (or the WGAN's critic): `pixels → 512 → 256 → 1` with LeakyReLU 0.2, a
/// logit (the critic's score, unbounded). With minibatch discrimination the 256 features `h`
/// of each image are followed by `o(h)` ([`minibatch_discrimination`] of `h·T`) and the output
/// layer reads `[h | o]`. Parameters `d.fc*`, `d.minibatch.t`, `d.out`.
#[derive(Debug, Clone)]
pub struct Discriminator {
    layers: Vec<Linear>,
    minibatch: Option<MinibatchFeatures>,
    out: Linear,
}

impl Discriminator {
    /// A discriminator of `pixels`, with minibatch discrimination if asked.
    pub fn new(
        params: &mut ParamStore,
        pixels: usize,
        minibatch: bool,
        rng: &mut ChaCha8Rng,
    ) -> Discriminator {
        let mut below = pixels;
        let mut layers = Vec::new();
        for (i, &width) in D_HIDDEN.iter().enumerate() {
            layers.push(Linear::new(
                params,
                &format!("d.fc{}", i + 1),
                below,
                width,
                rng,
            ));
            below = width;
        }
        let minibatch = minibatch.then(|| {
            let t = Init::XavierUniform.matrix(below, MINIBATCH_KERNELS * MINIBATCH_DIMS, rng);
            MinibatchFeatures {
                t: params.add("d.minibatch.t", t),
            }
        });
        let features = below
            + if minibatch.is_some() {
                MINIBATCH_KERNELS
            } else {
                0
            };
        let out = Linear::new(params, "d.out", features, 1, rng);
        Discriminator {
            layers,
            minibatch,
            out,
        }
    }

    /// The logits (`rows × 1`) of the images `x` (in [−1, 1]). With minibatch discrimination a
    /// row's logit depends on the other rows of `x`: pass real and generated images separately.
    pub fn forward<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        let mut h = x;
        for layer in &self.layers {
            h = layer.forward(p, h).leaky_relu(LEAKY_SLOPE);
        }
        if let Some(mb) = &self.minibatch {
            let o = minibatch_discrimination(h.matmul(p.var(mb.t)), MINIBATCH_KERNELS);
            h = concat_cols(&[h, o]);
        }
        self.out.forward(p, h)
    }

    /// The logits of the rows of `x` (in [−1, 1]), a chunk at a time (without minibatch
    /// discrimination a row's logit is its own; with it, each chunk is a batch).
    fn logits(&self, params: &ParamStore, x: &Matrix, chunk: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(chunk) {
            let end = (start + chunk).min(x.nrows());
            let tape = Tape::new();
            let p = params.bind_frozen(&tape);
            let l = self.forward(&p, p.constant(x.slice(s![start..end, ..]).to_owned()));
            out.extend(l.value().iter().copied());
        }
        out
    }
}

/// Which adversarial game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Game {
    /// The GAN: D a classifier of real against generated, with its generator loss.
    Gan(GanLoss),
    /// The Wasserstein GAN: D a clipped critic.
    Wasserstein,
}

/// Critic steps before the WGAN's next generator step, after `generator_steps` of them: 100
/// for the first 25 and every 500th (so that the critic is near optimal when the estimate
/// matters most), else [`N_CRITIC`], as in the reference code.
pub fn critic_steps(generator_steps: u64) -> usize {
    if generator_steps < 25 || generator_steps.is_multiple_of(500) {
        100
    } else {
        N_CRITIC
    }
}

/// The generator of both GANs, and the samples scored every epoch.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GanNet {
    /// The generator's hidden widths, comma-separated.
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "128,256,512,1024")]
    pub hidden: Vec<usize>,
    /// Dimensions of the noise z.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 100)]
    pub latent_dim: usize,
    /// Samples scored every epoch by the sample-quality yardstick's reference classifier
    /// (trained once into reference-classifier-<dataset> beside the run's directory); 0: none.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub quality_samples: usize,
}

impl GanNet {
    /// The checks of both GANs: the generator's widths, and what the shared flags may be.
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        if config.optimizer.weight_decay != 0.0 {
            return Err(format!(
                "--weight-decay is Adam's L2 penalty of the VAE family; model {} trains \
                 without one",
                config.kind()
            ));
        }
        if config.optimizer.batch_size < 2 {
            return Err(format!(
                "--batch-size {}: the generator's batch normalization needs at least 2 images a \
                 batch",
                config.optimizer.batch_size
            ));
        }
        Ok(())
    }
}

/// `--model gan`: the generator, the generator's loss, and minibatch discrimination.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model gan")]
pub struct GanSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: GanNet,
    /// The generator's loss: non-saturating (−ln D(G(z))) or minimax (ln(1 − D(G(z)))).
    #[arg(long, default_value_t = GanLoss::NonSaturating)]
    #[serde(with = "by_str")]
    pub gan_loss: GanLoss,
    /// Minibatch discrimination in the discriminator (100 kernels of 5 dimensions).
    #[arg(long)]
    pub minibatch_discrimination: bool,
}

impl Settings for GanSettings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.net.check(config)
    }

    fn wants_reference(&self) -> bool {
        self.net.quality_samples > 0
    }
}

/// `--model wgan`: the generator (the critic and its clipping are the paper's).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model wgan")]
pub struct WganSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: GanNet,
}

impl Settings for WganSettings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.net.check(config)
    }

    fn wants_reference(&self) -> bool {
        self.net.quality_samples > 0
    }
}

/// `--model gan` in the registry.
pub const GAN: ModelEntry = ModelEntry {
    name: "gan",
    about: "the MLP GAN of PyTorch-GAN's gan.py, non-saturating or minimax loss",
    schema: Schema::of::<GanSettings>(),
    binarize: Binarize::None,
    defaults: |c| {
        c.optimizer.batch_size = 64;
        c.optimizer.lr = 2e-4;
    },
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(GanModel::new(config, build)),
};

/// `--model wgan` in the registry.
pub const WGAN: ModelEntry = ModelEntry {
    name: "wgan",
    about: "the Wasserstein GAN: gan's generator, a weight-clipped critic, RMSProp",
    schema: Schema::of::<WganSettings>(),
    binarize: Binarize::None,
    defaults: |c| {
        c.optimizer.batch_size = 64;
        c.optimizer.lr = 5e-5;
    },
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(GanModel::new(config, build)),
};

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
        let z = draws.normal(Purpose::Latent, 1, self.g.latent_dim);
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
        let z = draws.normal(Purpose::Latent, 1, self.g.latent_dim);
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
            let z = z.normal(Purpose::Latent, 1, self.g.latent_dim);
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
            .normal(Purpose::Latent, 1, self.g.latent_dim);
        let fakes = self.generate(&z);
        let chunk = match self.d.minibatch {
            Some(_) => 64,
            None => CHUNK_ROWS,
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

    fn report(&self) -> &dyn Report {
        self
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
            .normal(Purpose::Latent, 1, self.g.latent_dim);
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
        let mut grids = super::report::Grids::new(out, self.shape);
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
        let z = standard_normal(rng, (n, self.g.latent_dim));
        Ok(Picture::square(
            self.generate(&z),
            format!("{n} samples of the generator"),
        ))
    }
}

impl Sample for GanModel {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        let z = standard_normal(rng, (n, self.g.latent_dim));
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
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::data::Split;
    use crate::model::Restore;

    /// 40 images of 4×4 and a tiny generator; `model` is `gan` or `wgan`.
    fn tiny_run(model: &str, minibatch: bool) -> (RunConfig, Split) {
        let pixels: Vec<u8> = (0..40 * 16).map(|i| ((i * 37) % 256) as u8).collect();
        let labels: Vec<u8> = (0..40).map(|i| (i % 10) as u8).collect();
        let mut config = RunConfig::for_model(model.parse().unwrap());
        config.model.set("hidden", "6,5").unwrap();
        config.model.set("latent_dim", "3").unwrap();
        if minibatch {
            config
                .model
                .set("minibatch_discrimination", "true")
                .unwrap();
        }
        config.optimizer.batch_size = 8;
        (config, Split::new(pixels, labels, (4, 4)))
    }

    fn epoch(model: &mut GanModel, data: &TrainData, keys: Keys) -> (Row, usize) {
        let mut batches = 0;
        let values = model.train_epoch(
            data,
            &mut Epoch {
                keys,
                world: &crate::parallel::Alone,
                batch_size: 8,
                on_batch: &mut |_| {
                    batches += 1;
                    ControlFlow::Continue(())
                },
            },
        );
        (values, batches)
    }

    fn state(model: &GanModel) -> Vec<Matrix> {
        (model.stores().into_iter())
            .flat_map(|s| s.iter().map(|(_, _, v)| v.clone()).collect::<Vec<_>>())
            .chain(model.progress_rows())
            .collect()
    }

    fn build(config: &RunConfig) -> GanModel {
        GanModel::new(config, &Build::of((4, 4)))
    }

    fn data(config: &RunConfig, split: Split) -> TrainData {
        all_images(config, split).unwrap()
    }

    #[test]
    fn resuming_restores_both_optimizers_and_is_exact() {
        let dir = std::env::temp_dir().join(format!("henbun-gan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, minibatch) in [("gan", false), ("gan", true), ("wgan", false)] {
            let (config, split) = tiny_run(name, minibatch);
            let mut straight = build(&config);
            let data = data(&config, split.clone());
            epoch(&mut straight, &data, Keys::epoch(9, 1));
            let path = dir.join(format!("{name}-{minibatch}.safetensors"));
            straight.state().save(&path, &Metadata::new()).unwrap();
            epoch(&mut straight, &data, Keys::epoch(9, 2));

            let mut resumed = build(&config);
            assert_ne!(state(&resumed), state(&straight));
            crate::model::restore(&mut resumed, &path, Restore::Everything).unwrap();
            assert_eq!(resumed.progress_rows().len(), 1);
            epoch(&mut resumed, &data, Keys::epoch(9, 2));
            assert_eq!(state(&resumed), state(&straight), "{name} {minibatch}");
            assert_eq!(resumed.g_opt.state(), straight.g_opt.state());
            assert_eq!(resumed.d_opt.state(), straight.d_opt.state());
            assert_eq!(resumed.progress_rows().len(), 2);

            // The parameters alone, for sampling: the same images.
            let mut sampler = build(&config);
            let later = dir.join(format!("{name}-{minibatch}-2.safetensors"));
            straight.state().save(&later, &Metadata::new()).unwrap();
            crate::model::restore(&mut sampler, &later, Restore::Params).unwrap();
            let z = standard_normal(&mut ChaCha8Rng::seed_from_u64(1), (5, 3));
            assert_eq!(sampler.generate(&z), straight.generate(&z));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_gan_steps_both_networks_once_a_batch() {
        let (config, split) = tiny_run("gan", false);
        let mut model = build(&config);
        let data = data(&config, split);
        let (values, batches) = epoch(&mut model, &data, Keys::epoch(0, 1));
        assert_eq!(batches, 5);
        assert_eq!(model.steps(), (5, 5));
        assert!(values.names().eq(GAN_TRAIN));
        // D's loss is the mean of two cross-entropies, D(x) and D(G(z)) probabilities.
        assert!(
            values.get("train_d_loss") > 0.0 && values.values().all(|v| v.is_finite()),
            "{values:?}"
        );
        let (real, fake) = (values.get("train_d_real"), values.get("train_d_fake"));
        assert!((0.0..=1.0).contains(&real) && (0.0..=1.0).contains(&fake));
    }

    #[test]
    fn the_wgan_critic_takes_100_steps_first_and_stays_clipped() {
        assert_eq!(
            (0..30).map(critic_steps).collect::<Vec<_>>()[23..27],
            [100, 100, 5, 5]
        );
        assert_eq!((critic_steps(500), critic_steps(501)), (100, 5));
        let (config, split) = tiny_run("wgan", false);
        let mut model = build(&config);
        let data = data(&config, split);
        let in_box = |m: &GanModel| {
            m.d_store
                .iter()
                .all(|(_, _, v)| v.iter().all(|w| w.abs() <= WGAN_CLIP))
        };
        assert!(in_box(&model), "the critic starts clipped");
        let (values, batches) = epoch(&mut model, &data, Keys::epoch(0, 1));
        // 5 batches: all five are critic steps of the first generator step's 100, then the
        // generator steps once.
        assert_eq!(batches, 5);
        assert_eq!(model.steps(), (1, 5));
        assert!(in_box(&model));
        assert!(values.names().eq(WGAN_TRAIN));
        // The Wasserstein estimate is the critic loss's negative.
        assert_eq!(
            values.get("train_wasserstein"),
            -values.get("train_critic_loss")
        );
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let (mut config, _) = tiny_run("wgan", false);
        config.optimizer.batch_size = 1;
        let check = |c: &RunConfig| c.model.check(c);
        assert!(check(&config).unwrap_err().starts_with("--batch-size 1"));
        config.optimizer.batch_size = 8;
        config.optimizer.weight_decay = 0.1;
        assert!(check(&config).unwrap_err().starts_with("--weight-decay"));
        let (config, _) = tiny_run("gan", true);
        assert_eq!(check(&config), Ok(()));
        assert_eq!(
            "minmax".parse::<GanLoss>().unwrap_err().to_string(),
            "unknown GAN loss `minmax` (expected non-saturating or minimax)"
        );
    }

    #[test]
    fn the_run_sets_both_optimizers_rates() {
        for name in ["gan", "wgan"] {
            let (config, _) = tiny_run(name, false);
            let mut model = build(&config);
            model.state().set_lr(1e-5);
            assert_eq!(model.state().lrs(), [1e-5, 1e-5], "{name}");
            assert_eq!((model.g_opt.lr(), model.d_opt.lr()), (1e-5, 1e-5));
        }
    }

    #[test]
    fn warnings_name_a_winning_discriminator_and_collapsed_classes() {
        let (config, _) = tiny_run("gan", false);
        let model = build(&config);
        // train: D loss, G loss, D(x), D(G(z)), norms; test: D(x), D(G(z)), IS, classes, KL.
        let columns = GAN_COLUMNS[1];
        let names: Vec<&'static str> = columns.names().collect();
        let row = Row::new(
            &names,
            vec![0.01, 6.0, 0.99, 0.01, 0.1, 0.1, 0.99, 0.01, 2.1, 3.0, 1.2],
        );
        let warnings = model.warnings(&row);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("D's loss fell to 0.0100"));
        assert!(warnings[1].contains("3 of 10 classes"));
        let healthy = vec![0.6, 0.9, 0.6, 0.4, 1.0, 1.0, 0.6, 0.4, 8.9, 10.0, 0.02];
        assert!(model.warnings(&Row::new(&names, healthy)).is_empty());
    }
}
