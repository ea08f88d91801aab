//! The VQ-VAE (van den Oord et al. 2017): an MLP encoder outputs `N` vectors of `D` dims, each
//! replaced by its nearest of `K` codebook embeddings; the decoder reconstructs the image from
//! the quantized vectors. The loss is the course's
//!
//! `L = −log p(x | z_q(x)) + ‖sg[z_e(x)] − e‖² + β‖z_e(x) − sg[e]‖²`,
//!
//! the decoder's gradient passed straight through the quantization to the encoder
//! (`z_q = z_e + sg(e − z_e)`, [`autodiff::straight_through`]). With
//! [`CodebookUpdate::Ema`] the codebook is instead the exponential moving average of the
//! encoder outputs assigned to each code (the paper's appendix A.1) and only the commitment term
//! stays in the loss.
//!
//! The codebook starts from encoder outputs of the first batch; with `--restart-dead` a code
//! unused over an epoch is re-seeded from an encoder output of the epoch's last batch (as in
//! Jukebox). After training, priors over the codes are fitted to the training images' codes
//! ([`code_prior`](super::code_prior)): so the model samples, and `−log p(z) − log p(x | z)` at
//! the image's own code bounds `−log p(x)` from above.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::gemm::gemm;
use autodiff::{Matrix, Tape, Var, bce_with_logits, mse, straight_through};
use ndarray::{Axis, s};
use nn::checkpoint::Metadata;
use nn::{Activation, Bound, Linear, Mlp, MlpConfig, Optimizer, ParamId, ParamStore};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::code_prior::{FitConfig, Made, categorical_log_prob, categorical_log_probs};
use serde::{Deserialize, Serialize};

use super::Likelihood;
use super::report::Grids;
use super::vae::model::check_background;
use crate::chart::codebook::save_usage;
use crate::data::{Binarize, eval_targets, perturb};
use crate::eval::pca::squared_error_rows;
use crate::model::files;
use crate::model::{
    Abilities, AfterTraining, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report,
    Row, RunConfig, RunError, RunModel, Sample, Samples, Schema, Score, ScoreSettings, Scores,
    Settings, State, TestData, TrainData, all_images, by_str, check_hidden, keep, positive,
    short_f32,
};
use crate::random::{Keys, Purpose};
use crate::train;
use crate::train::{Loss, MetricsMean};

/// The decay γ of the codebook's moving averages (the paper's appendix A.1).
pub const EMA_DECAY: f32 = 0.99;

/// The Laplace smoothing ε of the moving averages' code counts (as in sonnet).
pub const EMA_EPSILON: f32 = 1e-5;

/// Hidden widths of the autoregressive prior.
const PRIOR_HIDDEN: [usize; 1] = [512];

/// How the autoregressive prior is fitted.
pub const PRIOR_FIT: FitConfig = FitConfig {
    epochs: 10,
    batch_size: 128,
    lr: 1e-3,
};

/// The stream of the run's seed that initialises and fits the priors (stream 0 initialises the
/// networks).
const PRIOR_STREAM: u64 = 0x0097_1f0e;

/// Rows evaluated at once (bounds the memory of a forward pass).
const CHUNK_ROWS: usize = 4096;

/// The metadata key saying whether the checkpoint's priors are fitted to its codebook.
const PRIOR_KEY: &str = "vqvae_prior";

/// How the codebook learns (`--codebook-update`). The run's default is `Ema`, which gave a lower
/// reconstruction term and rate than `Loss` at K = 64 and K = 512 (README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodebookUpdate {
    /// By gradient descent on the codebook term `‖sg[z_e] − e‖²` of the loss (the paper's main
    /// text).
    Loss,
    /// As exponential moving averages of the code counts and of the sums of the encoder outputs
    /// assigned to each code (the paper's appendix A.1); the loss keeps only the commitment
    /// term.
    Ema,
}

/// An unknown `--codebook-update` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codebook update `{0}` (expected loss or ema)")]
pub struct ParseCodebookUpdateError(pub String);

spelled!(CodebookUpdate, ParseCodebookUpdateError {
    Loss => "loss",
    Ema => "ema",
});

/// The shape of a [`VqVae`].
#[derive(Debug, Clone, PartialEq)]
pub struct VqConfig {
    /// Pixels per image.
    pub input_dim: usize,
    /// Hidden widths of the encoder; the decoder mirrors them. At least one.
    pub hidden: Vec<usize>,
    /// Between hidden layers.
    pub activation: Activation,
    /// Bernoulli cross-entropy on logits, or (Gaussian) the squared error.
    pub likelihood: Likelihood,
    /// Code vectors per image, N.
    pub codes: usize,
    /// Dimensions of each code vector, D.
    pub code_dim: usize,
    /// Embeddings in the codebook, K.
    pub codebook: usize,
    /// The weight β of the commitment term.
    pub commitment: f32,
    /// How the codebook learns.
    pub update: CodebookUpdate,
}

/// The squared distances `‖zᵢ − e_k‖²` (`rows × K`) of the rows of `z` to the rows of `e`,
/// as `‖z‖² − 2·z·eᵀ + ‖e‖²` with the middle term one GEMM.
pub fn squared_distances(z: &Matrix, e: &Matrix) -> Matrix {
    let mut d = Matrix::zeros((z.nrows(), e.nrows()));
    gemm(-2.0, z.view(), e.t(), 0.0, d.view_mut());
    let e_norms: Vec<f32> = e.rows().into_iter().map(|r| r.dot(&r)).collect();
    for (mut row, z) in d.rows_mut().into_iter().zip(z.rows()) {
        let z_norm = z.dot(&z);
        for (v, &e_norm) in row.iter_mut().zip(&e_norms) {
            *v += z_norm + e_norm;
        }
    }
    d
}

/// The index of the nearest row of `e` to each row of `z` (ties to the lowest index).
pub fn nearest(z: &Matrix, e: &Matrix) -> Vec<usize> {
    squared_distances(z, e)
        .rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (k, &d) in row.iter().enumerate() {
                if d < row[best] {
                    best = k;
                }
            }
            best
        })
        .collect()
}

/// What quantizing a batch gives besides its loss: the code of every vector and the vectors.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The code of each of the batch's vectors, `N` per image in raster order.
    pub codes: Vec<usize>,
    /// The encoder's vectors `z_e`, one a row (`rows·N × D`).
    pub z_e: Matrix,
}

/// Encoder `encoder.fc*` (input → hidden) and `encoder.codes` (→ N·D); decoder `decoder.fc*`
/// (N·D → hidden reversed → input: logits, or the mean). The codebook is a [`Codebook`].
#[derive(Debug, Clone)]
pub struct VqVae {
    config: VqConfig,
    encoder: Mlp,
    to_codes: Linear,
    decoder: Mlp,
}

impl VqVae {
    /// Adds the networks' parameters to `store`, weights drawn from `rng`.
    ///
    /// Panics if `config.hidden` is empty or a size is zero.
    #[track_caller]
    pub fn new(store: &mut ParamStore, config: VqConfig, rng: &mut ChaCha8Rng) -> Self {
        assert!(
            !config.hidden.is_empty() && config.codes > 0 && config.code_dim > 0,
            "VqVae: needs a hidden layer, codes and code dimensions"
        );
        let mut widths = vec![config.input_dim];
        widths.extend(&config.hidden);
        let mut encoder = MlpConfig::new(&widths, config.activation);
        encoder.output = config.activation;
        let encoder = Mlp::new(store, "encoder", &encoder, rng);
        let last = *config.hidden.last().expect("checked non-empty");
        let width = config.codes * config.code_dim;
        let to_codes = Linear::new(store, "encoder.codes", last, width, rng);
        let mut widths = vec![width];
        widths.extend(config.hidden.iter().rev());
        widths.push(config.input_dim);
        let decoder = MlpConfig::new(&widths, config.activation);
        let decoder = Mlp::new(store, "decoder", &decoder, rng);
        VqVae {
            config,
            encoder,
            to_codes,
            decoder,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &VqConfig {
        &self.config
    }

    /// The encoder's vectors `z_e` of the rows of `x`, an image a row (`batch × N·D`).
    pub fn encode<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        self.to_codes.forward(p, self.encoder.forward(p, x))
    }

    /// The decoder's output for quantized vectors `z_q` (`rows × N·D`): Bernoulli logits, or
    /// the Gaussian mean.
    pub fn decode<'t>(&self, p: &Bound<'t>, z_q: Var<'t>) -> Var<'t> {
        self.decoder.forward(p, z_q)
    }

    /// The reconstruction term per image (`batch × 1`): the Bernoulli cross-entropy in nats,
    /// or the squared error, of `target` under the decoder's output `decoded`.
    pub fn recon<'t>(&self, decoded: Var<'t>, target: Var<'t>) -> Var<'t> {
        match self.config.likelihood {
            Likelihood::Bernoulli => bce_with_logits(decoded, target),
            Likelihood::Gaussian => mse(decoded, target).scale(self.config.input_dim as f32),
        }
    }

    /// The encoder's vectors `z_e` (`rows × N·D`), one a row (`rows·N × D`).
    fn vectors(&self, z_e: &Matrix) -> Matrix {
        let shape = (z_e.nrows() * self.config.codes, self.config.code_dim);
        z_e.to_shape(shape).expect("whole rows").to_owned()
    }

    /// The encoder's vectors of the rows of `x`, one a row, on a tape of their own (the values
    /// the codebook starts from).
    pub fn encoder_vectors(&self, store: &ParamStore, x: Rc<Matrix>) -> Matrix {
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        self.vectors(&self.encode(&p, p.constant(x)).value())
    }

    /// The quantized vectors: `z_e`'s rows replaced by their nearest rows of the codebook `e`
    /// (`K × D`), an image a row (`batch × N·D`), with the codes and `z_e` as numbers.
    pub fn quantize<'t>(&self, z_e: Var<'t>, e: Var<'t>) -> (Var<'t>, Quantized) {
        let (rows, (n, d)) = (z_e.shape().0, (self.config.codes, self.config.code_dim));
        let vectors = self.vectors(&z_e.value());
        let codes = nearest(&vectors, &e.value());
        let e_q = e.gather_rows(&codes).reshape((rows, n * d));
        let quantized = Quantized {
            codes,
            z_e: vectors,
        };
        (e_q, quantized)
    }

    /// The loss of a batch `x` (targets `x` too) with the codebook `e`, averaged over the batch,
    /// with its parts per image: `recon`, `codebook` (`‖sg[z_e] − e‖²`, in the loss under
    /// [`CodebookUpdate::Loss`] only) and `commitment` (`β‖z_e − sg[e]‖²`).
    pub fn loss<'t>(&self, p: &Bound<'t>, e: Var<'t>, x: Var<'t>) -> (Loss<'t>, Quantized) {
        let z_e = self.encode(p, x);
        let (e_q, quantized) = self.quantize(z_e, e);
        let width = (self.config.codes * self.config.code_dim) as f32;
        let z_q = straight_through(e_q, z_e);
        let recon = self.recon(self.decode(p, z_q), x);
        let codebook = mse(z_e.detach(), e_q).scale(width);
        let commitment = mse(z_e, e_q.detach()).scale(width * self.config.commitment);
        let total = match self.config.update {
            CodebookUpdate::Loss => recon + codebook + commitment,
            CodebookUpdate::Ema => recon + commitment,
        };
        let parts = [
            ("recon", recon),
            ("codebook", codebook),
            ("commitment", commitment),
        ];
        (Loss::new(total.mean_rows(), parts), quantized)
    }
}

/// The `K × D` embeddings, as a parameter trained by the loss or a buffer of moving averages,
/// and under [`CodebookUpdate::Ema`] the averages: `codebook.ema.count` (`1 × K`, `N_k`) and
/// `codebook.ema.sum` (`K × D`, `m_k`), so that `e_k = m_k / N̂_k` with the Laplace-smoothed
/// count `N̂_k = (N_k + ε) / (n + K·ε) · n`, `n = Σ_k N_k`.
#[derive(Debug, Clone)]
pub struct Codebook {
    /// `codebook.e`: in the parameters under `Loss`, in the buffers under `Ema`.
    embeddings: ParamId,
    /// `(count, sum)` in the buffers under `Ema`; `None` under `Loss`.
    ema: Option<(ParamId, ParamId)>,
}

impl Codebook {
    /// `size` embeddings of `dim` dims, uniform in ±1/size until [`initialise`](Self::initialise),
    /// added to `params` or (with their averages) to `buffers` as `update` says.
    pub fn new(
        (params, buffers): (&mut ParamStore, &mut ParamStore),
        (size, dim): (usize, usize),
        update: CodebookUpdate,
        rng: &mut ChaCha8Rng,
    ) -> Codebook {
        let bound = 1.0 / size as f32;
        let init = Matrix::from_shape_simple_fn((size, dim), || rng.random_range(-bound..bound));
        let (embeddings, ema) = match update {
            CodebookUpdate::Loss => (params.add("codebook.e", init), None),
            CodebookUpdate::Ema => {
                let count = buffers.add("codebook.ema.count", Matrix::ones((1, size)));
                let sum = buffers.add("codebook.ema.sum", init.clone());
                (buffers.add("codebook.e", init), Some((count, sum)))
            }
        };
        Codebook { embeddings, ema }
    }

    /// The store that holds the embeddings.
    fn home<'a>(&self, params: &'a ParamStore, buffers: &'a ParamStore) -> &'a ParamStore {
        match self.ema {
            None => params,
            Some(_) => buffers,
        }
    }

    /// The embeddings (`K × D`).
    pub fn value<'a>(&self, params: &'a ParamStore, buffers: &'a ParamStore) -> &'a Matrix {
        self.home(params, buffers).value(self.embeddings)
    }

    /// The embeddings on the tape of `p`: the parameter (trained by the loss), or under `Ema` a
    /// constant.
    pub fn var<'t>(&self, p: &Bound<'t>, buffers: &ParamStore) -> Var<'t> {
        match self.ema {
            None => p[self.embeddings],
            Some(_) => p.constant(buffers.value(self.embeddings).clone()),
        }
    }

    /// Sets the embeddings to `e` (and under `Ema` the averages to one assignment of each
    /// embedding to itself: `N_k = 1`, `m_k = e_k`, as Jukebox starts them).
    fn set(&self, (params, buffers): (&mut ParamStore, &mut ParamStore), e: &Matrix) {
        match self.ema {
            None => params.value_mut(self.embeddings).assign(e),
            Some((count, sum)) => {
                buffers.value_mut(count).fill(1.0);
                buffers.value_mut(sum).assign(e);
                buffers.value_mut(self.embeddings).assign(e);
            }
        }
    }

    /// Starts the codebook from `K` distinct rows of `z_e` drawn by `rng` (with repeats if it has
    /// fewer than `K` rows).
    pub fn initialise(
        &self,
        stores: (&mut ParamStore, &mut ParamStore),
        z_e: &Matrix,
        rng: &mut ChaCha8Rng,
    ) {
        let size = self.value(stores.0, stores.1).nrows();
        let rows: Vec<usize> = if z_e.nrows() >= size {
            index::sample(rng, z_e.nrows(), size).into_vec()
        } else {
            (0..size).map(|k| k % z_e.nrows()).collect()
        };
        self.set(stores, &z_e.select(Axis(0), &rows));
    }

    /// One step of the moving averages (`Ema` only; nothing otherwise) from the batch's
    /// assignments: `N_k ← γN_k + (1 − γ)n_k`, `m_k ← γm_k + (1 − γ)Σ_{i→k} zᵢ`, then
    /// `e_k = m_k / N̂_k`.
    pub fn ema_step(&self, buffers: &mut ParamStore, quantized: &Quantized) {
        let Some((count, sum)) = self.ema else {
            return;
        };
        let size = buffers.value(count).ncols();
        let (mut n, mut s) = (vec![0.0f32; size], Matrix::zeros(buffers.value(sum).dim()));
        for (&k, z) in quantized.codes.iter().zip(quantized.z_e.rows()) {
            n[k] += 1.0;
            let mut row = s.row_mut(k);
            row += &z;
        }
        let keep = EMA_DECAY;
        let mut counts = buffers.value_mut(count);
        for (c, &n_k) in counts.iter_mut().zip(&n) {
            *c = keep * *c + (1.0 - keep) * n_k;
        }
        let counts = buffers.value(count).clone();
        let mut sums = buffers.value_mut(sum);
        sums.zip_mut_with(&s, |m, &s| *m = keep * *m + (1.0 - keep) * s);
        let total: f32 = counts.sum();
        let smoothed =
            counts.mapv(|c| (c + EMA_EPSILON) / (total + size as f32 * EMA_EPSILON) * total);
        let e = buffers.value(sum) / &smoothed.t();
        buffers.value_mut(self.embeddings).assign(&e);
    }

    /// Re-seeds each code of `dead` from a row of `z_e` drawn by `rng` (under `Ema` its
    /// averages too: `N_k = 1`, `m_k` the row).
    pub fn restart(
        &self,
        (params, buffers): (&mut ParamStore, &mut ParamStore),
        dead: &[usize],
        z_e: &Matrix,
        rng: &mut ChaCha8Rng,
    ) {
        for &k in dead {
            let row = z_e.row(rng.random_range(0..z_e.nrows()));
            match self.ema {
                None => params.value_mut(self.embeddings).row_mut(k).assign(&row),
                Some((count, sum)) => {
                    buffers.value_mut(count)[[0, k]] = 1.0;
                    buffers.value_mut(sum).row_mut(k).assign(&row);
                    buffers.value_mut(self.embeddings).row_mut(k).assign(&row);
                }
            }
        }
    }
}

/// How often each code was used: the number of codes used and the perplexity, exp of the
/// entropy of the average usage (nats), which is K when every code is used equally often and
/// 1 when one code takes everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub Vec<u64>);

impl Usage {
    /// No code used yet, of `size`.
    pub fn new(size: usize) -> Usage {
        Usage(vec![0; size])
    }

    /// Counts `codes`.
    pub fn add(&mut self, codes: &[usize]) {
        for &k in codes {
            self.0[k] += 1;
        }
    }

    /// Codes used at least once.
    pub fn used(&self) -> usize {
        self.0.iter().filter(|&&c| c > 0).count()
    }

    /// Codes never used.
    pub fn dead(&self) -> Vec<usize> {
        (0..self.0.len()).filter(|&k| self.0[k] == 0).collect()
    }

    /// `exp(−Σ_k p_k ln p_k)` of the usage shares `p_k`; 0 if nothing was counted.
    pub fn perplexity(&self) -> f64 {
        let total: u64 = self.0.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let entropy: f64 = (self.0.iter().filter(|&&c| c > 0))
            .map(|&c| {
                let p = c as f64 / total as f64;
                -p * p.ln()
            })
            .sum();
        entropy.exp()
    }
}

/// Per-image figures of a set of images under a [`VqVaeModel`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The reconstruction term (nats, or the squared error) of each image.
    pub recon: Vec<f64>,
    /// `‖z_e − e‖²` summed over each image's vectors.
    pub codebook: Vec<f64>,
    /// The codes, `N` per image.
    pub codes: Vec<usize>,
    /// The reconstructions as pictures in [0, 1].
    pub pictures: Matrix,
}

/// `--model vqvae`: its networks, its code and codebook, how the codebook learns, and the
/// background noise of a likelihood ratio's background model.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model vqvae")]
pub struct VqVaeSettings {
    /// Encoder hidden widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "400")]
    pub hidden: Vec<usize>,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: Activation,
    /// The decoder's distribution: bernoulli, or gaussian (unit variance: a squared error).
    #[arg(long, default_value = "bernoulli")]
    #[serde(with = "by_str")]
    pub likelihood: Likelihood,
    /// Code vectors per image, N.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 8)]
    pub codes: usize,
    /// Dimensions of each code vector, D.
    #[arg(long, value_name = "D", value_parser = positive, default_value_t = 8)]
    pub code_dim: usize,
    /// Embeddings in the codebook, K (at least 2).
    #[arg(long, value_name = "K", default_value_t = 64)]
    pub codebook: usize,
    /// The weight β of the commitment term (0.25 in the paper).
    #[arg(long, value_name = "β", default_value_t = 0.25)]
    #[serde(with = "short_f32")]
    pub commitment: f32,
    /// How the codebook learns: ema (moving averages of the encoder outputs assigned to each
    /// code, decay 0.99) or loss (its term of the loss).
    #[arg(long, default_value_t = CodebookUpdate::Ema)]
    #[serde(with = "by_str")]
    pub codebook_update: CodebookUpdate,
    /// Re-seed every code unused over an epoch from an encoder output of the epoch's last batch.
    #[arg(long)]
    pub restart_dead: bool,
    /// Replace each training pixel with noise at this rate, in [0, 1) (a likelihood ratio's
    /// background model).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    #[serde(with = "short_f32")]
    pub background: f32,
}

impl Settings for VqVaeSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if self.codebook < 2 {
            return Err(format!(
                "--codebook {}: a codebook needs at least 2 embeddings",
                self.codebook
            ));
        }
        if self.codes == 0 {
            return Err("--codes must be at least 1".into());
        }
        if self.code_dim == 0 {
            return Err("--code-dim must be at least 1".into());
        }
        if !(self.commitment.is_finite() && self.commitment >= 0.0) {
            return Err("--commitment must be a non-negative number".into());
        }
        check_background(self.background)
    }
}

/// `--model vqvae` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "vqvae",
    about: "a VQ-VAE: a discrete code from a learned codebook, with priors fitted to its codes",
    schema: Schema::of::<VqVaeSettings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(VqVaeModel::new(config, build.shape)),
};

/// `metrics.csv` of the VQ-VAE: the loss's three terms, the perplexity of the epoch's code
/// usage and the codes it used, in training (before restarts) and on the test set.
const COLUMNS: Columns = Columns {
    train: &[
        "train_recon",
        "train_codebook",
        "train_commitment",
        "train_perplexity",
        "train_codes_used",
    ],
    test: &[
        "test_recon",
        "test_codebook",
        "test_perplexity",
        "test_codes_used",
    ],
};

/// `--model vqvae`: the [`VqVae`], its [`Codebook`], its optimizer, and its priors.
pub struct VqVaeModel {
    vq: VqVae,
    codebook: Codebook,
    /// The networks (and the codebook under `--codebook-update loss`), with Adam.
    params: Params,
    /// The codebook under `ema` with its averages, and the categorical prior's log-probabilities.
    buffers: ParamStore,
    /// `prior.categorical`, in `buffers`: `N × K` log-probabilities.
    categorical: ParamId,
    made: Made,
    /// Whether the priors are fitted to the codes of the current codebook.
    prior_fitted: bool,
    restart_dead: bool,
    /// The training pixels' replacement rate (`--background`, a background model for the
    /// likelihood ratio), and whether the targets are binary.
    background: (f32, bool),
    seed: u64,
}

impl VqVaeModel {
    /// The VQ-VAE of `config` for images of `shape`.
    pub fn new(run: &RunConfig, (height, width): (usize, usize)) -> Self {
        let config: &VqVaeSettings = run.settings();
        let vq_config = VqConfig {
            input_dim: height * width,
            hidden: config.hidden.clone(),
            activation: config.activation,
            likelihood: config.likelihood,
            codes: config.codes,
            code_dim: config.code_dim,
            codebook: config.codebook,
            commitment: config.commitment,
            update: config.codebook_update,
        };
        let mut rng = run.init_rng();
        let mut store = ParamStore::new();
        let mut buffers = ParamStore::new();
        let vq = VqVae::new(&mut store, vq_config, &mut rng);
        let size = (config.codebook, config.code_dim);
        let codebook = Codebook::new(
            (&mut store, &mut buffers),
            size,
            config.codebook_update,
            &mut rng,
        );
        let uniform = -(config.codebook as f32).ln();
        let categorical = buffers.add(
            "prior.categorical",
            Matrix::from_elem((config.codes, config.codebook), uniform),
        );
        let made = Made::new(
            config.codes,
            config.codebook,
            &PRIOR_HIDDEN,
            &mut prior_rng(run.seed),
        );
        VqVaeModel {
            vq,
            codebook,
            params: Params::new(store, run),
            buffers,
            categorical,
            made,
            prior_fitted: false,
            restart_dead: config.restart_dead,
            background: (config.background, run.data.binarize != Binarize::None),
            seed: run.seed,
        }
    }

    /// The network.
    pub fn vqvae(&self) -> &VqVae {
        &self.vq
    }

    /// The embeddings (`K × D`).
    pub fn embeddings(&self) -> &Matrix {
        self.codebook.value(&self.params.store, &self.buffers)
    }

    /// Every row of `x` (images as in [`TestData::x`]) encoded, quantized and decoded.
    pub fn evaluate(&self, x: &Matrix) -> Evaluation {
        let mut eval = Evaluation {
            recon: Vec::with_capacity(x.nrows()),
            codebook: Vec::with_capacity(x.nrows()),
            codes: Vec::with_capacity(x.nrows() * self.vq.config.codes),
            pictures: Matrix::zeros(x.dim()),
        };
        let width = (self.vq.config.codes * self.vq.config.code_dim) as f32;
        for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
            let rows = start..(start + CHUNK_ROWS).min(x.nrows());
            let tape = Tape::new();
            let p = self.params.store.bind_frozen(&tape);
            let xv = p.constant(x.slice(s![rows.clone(), ..]).to_owned());
            let z_e = self.vq.encode(&p, xv);
            let (e_q, quantized) = self.vq.quantize(z_e, self.codebook.var(&p, &self.buffers));
            let per_image =
                |v: Var<'_>| v.value().iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
            let decoded = self.vq.decode(&p, e_q);
            eval.recon.extend(per_image(self.vq.recon(decoded, xv)));
            eval.codebook.extend(per_image(mse(z_e, e_q).scale(width)));
            eval.codes.extend(quantized.codes);
            eval.pictures
                .slice_mut(s![rows, ..])
                .assign(&self.vq.config.likelihood.mean_image(&decoded.value()));
        }
        eval
    }

    /// The codes of the rows of `x` (`N` per image), without decoding them.
    pub fn codes_of(&self, x: &Matrix) -> Vec<usize> {
        let mut codes = Vec::with_capacity(x.nrows() * self.vq.config.codes);
        for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
            let rows = start..(start + CHUNK_ROWS).min(x.nrows());
            let tape = Tape::new();
            let p = self.params.store.bind_frozen(&tape);
            let z_e = self
                .vq
                .encode(&p, p.constant(x.slice(s![rows, ..]).to_owned()));
            let (_, quantized) = self.vq.quantize(z_e, self.codebook.var(&p, &self.buffers));
            codes.extend(quantized.codes);
        }
        codes
    }

    /// The pictures of code sequences (`N` per image).
    pub fn decode_codes(&self, codes: &[usize]) -> Matrix {
        let (n, d) = (self.vq.config.codes, self.vq.config.code_dim);
        let rows = codes.len() / n;
        let e = self.embeddings().select(Axis(0), codes);
        let z_q = e.into_shape_with_order((rows, n * d)).expect("whole rows");
        let tape = Tape::new();
        let p = self.params.store.bind_frozen(&tape);
        let decoded = self.vq.decode(&p, p.constant(z_q));
        self.vq.config.likelihood.mean_image(&decoded.value())
    }

    /// `−ln p(z)` (nats) of each image's codes under the categorical and the autoregressive
    /// prior.
    pub fn rates(&self, codes: &[usize]) -> (Vec<f64>, Vec<f64>) {
        let categorical = categorical_log_prob(self.buffers.value(self.categorical), codes);
        let neg = |v: Vec<f64>| v.into_iter().map(|l| -l).collect::<Vec<_>>();
        (neg(categorical), neg(self.made.log_prob(codes)))
    }

    /// Why it cannot sample or bound a likelihood yet, if its priors are not fitted (a
    /// checkpoint of a run that has not reached its end).
    fn fitted(&self) -> Result<(), String> {
        match self.prior_fitted {
            true => Ok(()),
            false => Err(
                "the VQ-VAE's priors are not fitted to its codes yet (they are at the \
                 end of its run): finish the run with `vae-train --resume <checkpoint>`"
                    .into(),
            ),
        }
    }

    /// `n` images decoded from codes drawn from the autoregressive prior.
    fn prior_samples(&self, n: usize, rng: &mut ChaCha8Rng) -> Matrix {
        self.decode_codes(&self.made.sample(n, rng))
    }
}

/// The RNG of the priors: the run's seed on its own stream.
fn prior_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(PRIOR_STREAM);
    rng
}

/// Bits of nats.
fn bits(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl RunModel for VqVaeModel {
    fn columns(&self) -> Columns {
        COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let (vq, codebook, buffers) = (&self.vq, &self.codebook, &mut self.buffers);
        let (rate, binary) = self.background;
        let (store, opt) = self.params.parts();
        let train = data.all();
        let mut usage = Usage::new(vq.config.codebook);
        let mut mean = MetricsMean::default();
        let mut last_z_e = None;
        let mut batches = train.epoch(ctx.batch_size, ctx.keys);
        while let Some(batch) = batches.next_batch() {
            let examples = batch.len();
            let draws = ctx.keys.draws(&batch.indices);
            let x = Rc::new(perturb(batch.images, rate, binary, &draws));
            if opt.t() == 0 {
                let vectors = vq.encoder_vectors(store, Rc::clone(&x));
                let rng = &mut ctx.keys.shared(Purpose::Codebook, 0);
                codebook.initialise((store, buffers), &vectors, rng);
            }
            let mut quantized = None;
            let stepped = train::step(store, opt, |p| {
                let (loss, q) = vq.loss(p, codebook.var(p, buffers), p.constant(Rc::clone(&x)));
                quantized = Some(q);
                loss
            });
            if let (Ok(_), Some(q)) = (&stepped, quantized) {
                usage.add(&q.codes);
                codebook.ema_step(buffers, &q);
                last_z_e = Some(q.z_e);
            }
            if train::report(stepped, examples, &mut mean, &mut *ctx.on_batch).is_break() {
                break;
            }
        }
        let (perplexity, used) = (usage.perplexity(), usage.used());
        if let (true, Some(z_e)) = (self.restart_dead, last_z_e) {
            let dead = usage.dead();
            let rng = &mut ctx.keys.shared(Purpose::Codebook, 1);
            codebook.restart((store, buffers), &dead, &z_e, rng);
        }
        self.prior_fitted = false;
        let m = mean.mean();
        let part = |name| m.part(name).unwrap_or(f64::NAN);
        let values = vec![
            part("recon"),
            part("codebook"),
            part("commitment"),
            perplexity,
            used as f64,
        ];
        Row::new(COLUMNS.train, values)
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let eval = self.evaluate(&test.x);
        let mut usage = Usage::new(self.vq.config.codebook);
        usage.add(&eval.codes);
        let values = vec![
            mean(&eval.recon),
            mean(&eval.codebook),
            usage.perplexity(),
            usage.used() as f64,
        ];
        Row::new(COLUMNS.test, values)
    }

    fn state(&mut self) -> State<'_> {
        let prior = if self.prior_fitted { "fitted" } else { "none" };
        State {
            metadata: Metadata::from_iter([(PRIOR_KEY.to_string(), prior.to_string())]),
            ..State::single(&mut self.params.store, &mut self.params.opt)
                .with_buffers(vec![&mut self.buffers, self.made.store_mut()])
        }
    }

    fn report(&self) -> &dyn Report {
        self
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            sample: self.prior_fitted.then_some(self as &dyn Sample),
            score: self.prior_fitted.then_some(self as &dyn Score),
            ..Abilities::default()
        }
    }

    fn after_training(
        &mut self,
        data: &TrainData,
        ctx: &mut AfterTraining<'_>,
    ) -> ControlFlow<(), bool> {
        if self.prior_fitted {
            return ControlFlow::Continue(false);
        }
        let train = data.all();
        let targets = eval_targets(train.split(), train.binarize());
        // A background model's priors model the codes of images perturbed as it trained on.
        let mut rng = prior_rng(self.seed);
        let (rate, binary) = self.background;
        let keys = Keys::after_training(self.seed);
        let codes: Vec<usize> = (targets.batches(CHUNK_ROWS))
            .flat_map(|batch| {
                let draws = keys.draws(&batch.indices);
                self.codes_of(&perturb(batch.images, rate, binary, &draws))
            })
            .collect();
        let (n, k) = (self.vq.config.codes, self.vq.config.codebook);
        (ctx.note)(&format!(
            "fitting the priors to the codes of {} training images ({n} codes of {k} each)",
            targets.len()
        ));
        let log_probs = categorical_log_probs(&codes, n, k);
        self.buffers.value_mut(self.categorical).assign(&log_probs);
        self.made = Made::new(n, k, &PRIOR_HIDDEN, &mut rng);
        let losses = self
            .made
            .fit(&codes, PRIOR_FIT, &mut rng, &mut *ctx.on_step)?;
        if let Some(last) = losses.last() {
            (ctx.note)(&format!(
                "autoregressive prior: training rate {:.2} bits per image after {} epochs",
                bits(*last),
                losses.len()
            ));
        }
        self.prior_fitted = true;
        ControlFlow::Continue(true)
    }

    fn read_metadata(&mut self, meta: &Metadata, _path: &Path) -> Result<(), RunError> {
        self.prior_fitted = meta.get(PRIOR_KEY).map(String::as_str) == Some("fitted");
        Ok(())
    }
}

impl Report for VqVaeModel {
    fn describe(&self, v: &Row) -> String {
        let k = self.vq.config.codebook;
        format!(
            "train recon {:8.3}  codebook {:6.3}  perplexity {:6.2}  codes {:>3}/{k}  \
             test recon {:8.3}  perplexity {:6.2}  codes {:>3}/{k}",
            v.get("train_recon"),
            v.get("train_codebook"),
            v.get("train_perplexity"),
            v.get("train_codes_used"),
            v.get("test_recon"),
            v.get("test_perplexity"),
            v.get("test_codes_used")
        )
    }

    fn describe_test(&self, v: &Row) -> String {
        format!(
            "test reconstruction term {:.2}, codebook term {:.3}, perplexity {:.2}, {} of {} codes used",
            v.get("test_recon"),
            v.get("test_codebook"),
            v.get("test_perplexity"),
            v.get("test_codes_used"),
            self.vq.config.codebook
        )
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        self.fitted().map_err(RunError::Config)?;
        let eval = self.evaluate(&test.x);
        let (categorical, autoregressive) = self.rates(&eval.codes);
        let recon = mean(&eval.recon);
        let mut usage = Usage::new(self.vq.config.codebook);
        usage.add(&eval.codes);
        let (k, n) = (self.vq.config.codebook, self.vq.config.codes);
        let mut figures = vec![
            Figure::new(
                "reconstruction term",
                recon,
                format!("test reconstruction term -log p(x|z_q) {recon:.2} nats"),
            ),
            Figure::new(
                "codes used",
                usage.used() as f64,
                format!(
                    "test codes used {} of {k}, perplexity {:.2}",
                    usage.used(),
                    usage.perplexity()
                ),
            ),
        ];
        let ceiling = n as f64 * (k as f64).log2();
        for (prior, rates) in [
            ("categorical", &categorical),
            ("autoregressive", &autoregressive),
        ] {
            let rate = mean(rates);
            figures.push(Figure::new(
                format!("rate, {prior} prior"),
                bits(rate),
                format!(
                    "test rate -log p(z) under the {prior} prior {:.2} bits per image \
                     (N log2 K = {ceiling:.0})",
                    bits(rate)
                ),
            ));
            if self.vq.config.likelihood == Likelihood::Bernoulli {
                figures.push(Figure::new(
                    format!("-log p(x) bound, {prior} prior"),
                    recon + rate,
                    format!(
                        "test -log p(x) <= {:.2} nats (reconstruction + rate, {prior} prior)",
                        recon + rate
                    ),
                ));
            }
        }
        Ok(figures)
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        grids.reconstructions(&test.x, |x| self.evaluate(x).pictures)?;
        if self.prior_fitted {
            grids.grid(files::SAMPLES, &self.prior_samples(64, rng), 8)?;
        }
        let mut usage = Usage::new(self.vq.config.codebook);
        usage.add(&self.codes_of(&test.x));
        let path = grids.other(files::CODEBOOK);
        save_usage(&path, &usage.0, "test images")?;
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        _test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        self.fitted()?;
        Ok(Picture::square(
            self.prior_samples(n, rng),
            format!("{n} decodings of codes drawn from the autoregressive prior"),
        ))
    }
}

impl Sample for VqVaeModel {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        Samples {
            images: self.prior_samples(n, rng),
            labels: None,
        }
    }
}

impl Score for VqVaeModel {
    fn score_name(&self) -> &'static str {
        "rate + distortion"
    }

    fn score_column(&self) -> &'static str {
        "rate_distortion"
    }

    /// The reconstruction term (the distortion) plus the autoregressive prior's `−ln p(z)` of
    /// each image's codes (the rate, nats): with a Bernoulli decoder the `−log p(x)` bound of the
    /// end figures; with the Gaussian, the squared error plus the rate.
    fn score(&self, x: &Matrix, keys: Keys) -> Vec<f64> {
        let exact = ScoreSettings {
            iw_samples: 0,
            recon_samples: 0,
        };
        let all = self.scores(x, &exact, keys);
        all.into_iter().next().expect("the bound first").values
    }

    /// Rate + distortion, the distortion alone (`recon`, the reconstruction term), and the
    /// squared error `Σ (x̂ − x)²` of the reconstruction.
    fn scores(&self, x: &Matrix, _settings: &ScoreSettings, _keys: Keys) -> Vec<Scores> {
        let eval = self.evaluate(x);
        let (_, rates) = self.rates(&eval.codes);
        let bound = eval.recon.iter().zip(&rates).map(|(r, z)| r + z).collect();
        let sq_error = squared_error_rows(x, &eval.pictures);
        vec![
            Scores {
                column: self.score_column(),
                values: bound,
            },
            Scores {
                column: "recon",
                values: eval.recon,
            },
            Scores {
                column: "sq_error",
                values: sq_error,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use crate::model::{Build, Restore, TestData};
    use autodiff::{GradcheckConfig, gradcheck_against};

    /// A 6-pixel VQ-VAE, one tanh hidden layer of 5, 2 codes of 3 dims, 4 embeddings.
    fn tiny(
        update: CodebookUpdate,
        likelihood: Likelihood,
    ) -> (ParamStore, ParamStore, VqVae, Codebook) {
        let config = VqConfig {
            input_dim: 6,
            hidden: vec![5],
            activation: Activation::Tanh,
            likelihood,
            codes: 2,
            code_dim: 3,
            codebook: 4,
            commitment: 0.25,
            update,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut params, mut buffers) = (ParamStore::new(), ParamStore::new());
        let vq = VqVae::new(&mut params, config, &mut rng);
        let codebook = Codebook::new((&mut params, &mut buffers), (4, 3), update, &mut rng);
        (params, buffers, vq, codebook)
    }

    fn images() -> Matrix {
        Matrix::from_shape_fn((5, 6), |(i, j)| ((i * 7 + j * 3) % 4) as f32 / 3.0)
    }

    #[test]
    fn nearest_codes_match_brute_force_with_ties_to_the_lowest_index() {
        // Whole numbers, so that every distance is exact in f32 and ties are true ties. Rows 1
        // and 3 of e are the same embedding, so a vector nearest to it ties between them.
        let e =
            Matrix::from_shape_vec((4, 2), vec![0.0, 0.0, 2.0, 2.0, -3.0, 1.0, 2.0, 2.0]).unwrap();
        let z = Matrix::from_shape_fn((40, 2), |(i, j)| ((i * 5 + j * 3) % 9) as f32 - 4.0);
        let d = squared_distances(&z, &e);
        let codes = nearest(&z, &e);
        for (i, zi) in z.rows().into_iter().enumerate() {
            let brute: Vec<f32> = (e.rows().into_iter())
                .map(|ek| zi.iter().zip(ek).map(|(a, b)| (a - b) * (a - b)).sum())
                .collect();
            assert_eq!(d.row(i).to_vec(), brute, "row {i}");
            let best = brute.iter().copied().fold(f32::INFINITY, f32::min);
            let first = brute.iter().position(|&v| v == best).unwrap();
            assert_eq!(codes[i], first, "row {i}: {brute:?}");
            assert_ne!(
                codes[i], 3,
                "row 3 always ties with row 1, which comes first"
            );
        }
        // Equidistant from two embeddings: (1, 1) is 2 from (0, 0) and from (2, 2).
        let tie = Matrix::from_shape_vec((1, 2), vec![1.0, 1.0]).unwrap();
        assert_eq!(nearest(&tie, &e), [0]);
    }

    /// The VQ loss's tape gradient against central differences of the function whose true
    /// derivative the straight-through estimator defines: at the base point's codes, with
    /// `c = e_q − z_e` held constant, `recon(z_e + c) + ‖sg[z_e] − e_q‖² + β‖z_e − sg[e_q]‖²`.
    /// So the encoder gets the decoder's gradient plus β times the commitment gradient, the
    /// decoder its own, and the codebook only the codebook term's.
    #[test]
    fn the_vq_objective_passes_gradcheck_against_its_straight_through_surrogate() {
        for likelihood in [Likelihood::Bernoulli, Likelihood::Gaussian] {
            let (params, buffers, vq, codebook) = tiny(CodebookUpdate::Loss, likelihood);
            let x = images();
            let inputs: Vec<Matrix> = params.iter().map(|(_, _, v)| v.clone()).collect();
            // The base point's z_e, codes and e_q.
            let (z_e0, e_q0, codes0) = {
                let tape = Tape::new();
                let p = params.bind_frozen(&tape);
                let z_e = vq.encode(&p, p.constant(x.clone()));
                let (e_q, q) = vq.quantize(z_e, codebook.var(&p, &buffers));
                (z_e.value().to_owned(), e_q.value().to_owned(), q.codes)
            };
            let width = 6.0;
            let beta = vq.config.commitment;
            gradcheck_against(
                |v| {
                    let p = params.bind_vars(v[0].tape(), v);
                    let e = codebook.var(&p, &buffers);
                    vq.loss(&p, e, p.constant(x.clone())).0.loss
                },
                |v| {
                    let p = params.bind_vars(v[0].tape(), v);
                    let xv = p.constant(x.clone());
                    let z_e = vq.encode(&p, xv);
                    let e_q = codebook
                        .var(&p, &buffers)
                        .gather_rows(&codes0)
                        .reshape((5, 6));
                    let z_q = z_e + p.constant(&*e_q0 - &*z_e0);
                    let recon = vq.recon(vq.decode(&p, z_q), xv);
                    let book = mse(p.constant((*z_e0).clone()), e_q).scale(width);
                    let commit = mse(z_e, p.constant((*e_q0).clone())).scale(width * beta);
                    (recon + book + commit).mean_rows()
                },
                &inputs,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{likelihood}: {e}"));
        }
    }

    #[test]
    fn under_ema_the_codebook_is_no_parameter_and_gets_no_gradient() {
        let (params, buffers, vq, codebook) = tiny(CodebookUpdate::Ema, Likelihood::Bernoulli);
        assert!(params.id("codebook.e").is_none());
        assert!(buffers.id("codebook.e").is_some());
        let tape = Tape::new();
        let p = params.bind(&tape);
        let (loss, _) = vq.loss(&p, codebook.var(&p, &buffers), p.constant(images()));
        // The loss is recon + commitment: the codebook term is reported, not trained.
        let m = loss.metrics();
        let sum = m.part("recon").unwrap() + m.part("commitment").unwrap();
        assert!((m.loss - sum).abs() < 1e-4 * sum, "{} vs {sum}", m.loss);
    }

    /// Two steps of the moving averages on a 1-D codebook of 2, by hand (γ = 0.99, ε = 1e-5):
    ///
    /// Start (as initialised): e = [0, 10], N = [1, 1], m = [0, 10].
    /// Step 1, z = [1, 2, 9] → codes [0, 0, 1]: n = [2, 1], Σz = [3, 9].
    ///   N = [0.99 + 0.02, 0.99 + 0.01] = [1.01, 1.00]; m = [0.03, 9.9 + 0.09] = [0.03, 9.99];
    ///   total 2.01, N̂ = (N + ε)/(2.01 + 2ε)·2.01; e = m / N̂ ≈ [0.029703, 9.99].
    /// Step 2, z = [4, 8] → codes [0, 1]: n = [1, 1], Σz = [4, 8].
    ///   N = [0.9999 + 0.01, 0.99 + 0.01] = [1.0099, 1.0]; m = [0.0297 + 0.04, 9.8901 + 0.08]
    ///   = [0.0697, 9.9701]; total 2.0099; e ≈ [0.069017, 9.9701].
    #[test]
    fn the_moving_averages_follow_a_two_step_trajectory_by_hand() {
        let (mut params, mut buffers) = (ParamStore::new(), ParamStore::new());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let book = Codebook::new(
            (&mut params, &mut buffers),
            (2, 1),
            CodebookUpdate::Ema,
            &mut rng,
        );
        let start = Matrix::from_shape_vec((2, 1), vec![0.0, 10.0]).unwrap();
        book.set((&mut params, &mut buffers), &start);
        let by_hand = |n: [f64; 2], m: [f64; 2]| {
            let total = n[0] + n[1];
            let eps = f64::from(EMA_EPSILON);
            let smooth = |c: f64| (c + eps) / (total + 2.0 * eps) * total;
            [m[0] / smooth(n[0]), m[1] / smooth(n[1])]
        };
        let steps = [
            (vec![1.0, 2.0, 9.0], [1.01, 1.0], [0.03, 9.99]),
            (vec![4.0, 8.0], [1.0099, 1.0], [0.0697, 9.9701]),
        ];
        for (z, n, m) in steps {
            let z = Matrix::from_shape_vec((z.len(), 1), z).unwrap();
            let codes = nearest(&z, book.value(&params, &buffers));
            book.ema_step(&mut buffers, &Quantized { codes, z_e: z });
            let (count, sum) = book.ema.unwrap();
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() < 1e-5 * b.abs().max(1.0);
            for k in 0..2 {
                assert!(close(buffers.value(count)[[0, k]], n[k]), "N_{k}");
                assert!(close(buffers.value(sum)[[k, 0]], m[k]), "m_{k}");
                let e = by_hand(n, m)[k];
                assert!(
                    close(book.value(&params, &buffers)[[k, 0]], e),
                    "e_{k}: {e}"
                );
            }
        }
        let e = book.value(&params, &buffers);
        assert!((e[[0, 0]] - 0.069017).abs() < 1e-5 && (e[[1, 0]] - 9.9701).abs() < 1e-4);
    }

    #[test]
    fn dead_codes_are_reseeded_from_the_batch_and_the_others_kept() {
        for update in [CodebookUpdate::Loss, CodebookUpdate::Ema] {
            let (mut params, mut buffers, _, book) = tiny(update, Likelihood::Bernoulli);
            let before = book.value(&params, &buffers).clone();
            let z_e = Matrix::from_shape_fn((6, 3), |(i, j)| 100.0 + (i * 3 + j) as f32);
            let mut usage = Usage::new(4);
            usage.add(&[0, 2, 2, 0, 2]);
            assert_eq!(usage.dead(), [1, 3]);
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            book.restart((&mut params, &mut buffers), &usage.dead(), &z_e, &mut rng);
            let after = book.value(&params, &buffers);
            for k in [0, 2] {
                assert_eq!(
                    after.row(k),
                    before.row(k),
                    "{update}: used code {k} changed"
                );
            }
            for k in [1, 3] {
                let row = after.row(k);
                assert!(
                    z_e.rows().into_iter().any(|z| z == row),
                    "{update}: code {k}"
                );
            }
            if let Some((count, sum)) = book.ema {
                assert_eq!(buffers.value(count)[[0, 1]], 1.0);
                assert_eq!(buffers.value(sum).row(3), after.row(3));
            }
        }
    }

    #[test]
    fn perplexity_is_k_for_even_use_and_1_for_one_code() {
        let mut even = Usage::new(4);
        even.add(&[0, 1, 2, 3, 3, 2, 1, 0]);
        assert!((even.perplexity() - 4.0).abs() < 1e-12);
        let mut one = Usage::new(4);
        one.add(&[2, 2, 2]);
        assert_eq!((one.perplexity(), one.used()), (1.0, 1));
        assert_eq!(Usage::new(3).perplexity(), 0.0);
    }

    #[test]
    fn the_codebook_starts_from_distinct_encoder_outputs() {
        let (mut params, mut buffers, _, book) = tiny(CodebookUpdate::Loss, Likelihood::Bernoulli);
        let z_e = Matrix::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32);
        book.initialise(
            (&mut params, &mut buffers),
            &z_e,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        let e = book.value(&params, &buffers);
        let mut picked: Vec<usize> = (e.rows().into_iter())
            .map(|row| z_e.rows().into_iter().position(|z| z == row).unwrap())
            .collect();
        picked.sort_unstable();
        picked.dedup();
        assert_eq!(picked.len(), 4, "four distinct rows of the batch");
    }

    fn tiny_run(update: CodebookUpdate) -> (RunConfig, Split) {
        let pixels: Vec<u8> = (0..40 * 16).map(|i| ((i * 37) % 256) as u8).collect();
        let labels: Vec<u8> = (0..40).map(|i| (i % 10) as u8).collect();
        let mut config = RunConfig::for_model("vqvae".parse().unwrap());
        let settings: &mut VqVaeSettings = config.model.get_mut();
        settings.hidden = vec![8];
        (settings.codes, settings.code_dim, settings.codebook) = (2, 3, 5);
        (settings.codebook_update, settings.restart_dead) = (update, true);
        config.optimizer.batch_size = 16;
        (config, Split::new(pixels, labels, (4, 4)))
    }

    fn epoch(model: &mut dyn RunModel, data: &TrainData, keys: Keys) -> Row {
        model.state().set_lr(1e-2);
        model.train_epoch(
            data,
            &mut Epoch {
                keys,
                world: &crate::parallel::Alone,
                batch_size: 16,
                on_batch: &mut |_| ControlFlow::Continue(()),
            },
        )
    }

    fn build(config: &RunConfig) -> VqVaeModel {
        VqVaeModel::new(config, Build::of((4, 4)).shape)
    }

    fn state(model: &VqVaeModel) -> Vec<Matrix> {
        (model.params.store.iter())
            .chain(model.buffers.iter())
            .chain(model.made.store().iter())
            .map(|(_, _, v)| v.clone())
            .collect()
    }

    #[test]
    fn a_checkpoint_keeps_the_moving_averages_and_resuming_is_exact() {
        let dir = std::env::temp_dir().join(format!("henbun-vqvae-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for update in [CodebookUpdate::Loss, CodebookUpdate::Ema] {
            let (config, split) = tiny_run(update);
            let mut straight = build(&config);
            let data = all_images(&config, split.clone()).unwrap();
            epoch(&mut straight, &data, Keys::epoch(9, 1));
            let path = dir.join(format!("{update}.safetensors"));
            straight.state().save(&path, &Metadata::new()).unwrap();
            epoch(&mut straight, &data, Keys::epoch(9, 2));

            let mut resumed = build(&config);
            assert_ne!(state(&resumed), state(&straight));
            crate::model::restore(&mut resumed, &path, Restore::Everything).unwrap();
            epoch(&mut resumed, &data, Keys::epoch(9, 2));
            assert_eq!(state(&resumed), state(&straight), "{update}");
            assert_eq!(resumed.params.opt.state(), straight.params.opt.state());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_background_model_trains_on_perturbed_images_and_rate_0_changes_nothing() {
        let (config, split) = tiny_run(CodebookUpdate::Ema);
        let trained = |background: f32| {
            let mut config = config.clone();
            config.model.get_mut::<VqVaeSettings>().background = background;
            let mut model = build(&config);
            let data = all_images(&config, split.clone()).unwrap();
            epoch(&mut model, &data, Keys::epoch(4, 1));
            state(&model)
        };
        let (clean, again, noisy) = (trained(0.0), trained(0.0), trained(0.5));
        assert_eq!(clean, again);
        // The perturbation changes what is learnt.
        assert_ne!(clean, noisy);
    }

    #[test]
    fn after_training_the_priors_make_samples_scores_and_a_bound() {
        let (config, split) = tiny_run(CodebookUpdate::Ema);
        let mut model = build(&config);
        let data = all_images(&config, split.clone()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let train = epoch(&mut model, &data, Keys::epoch(2, 1));
        assert!(train.names().eq(COLUMNS.train.iter().copied()));
        let abilities = model.abilities();
        assert!(abilities.sample.is_none() && abilities.score.is_none());
        let test = TestData::new(split);
        let why = model.sample_picture(&test, 4, &mut rng).unwrap_err();
        assert!(why.contains("--resume"), "{why}");
        let (mut steps, mut notes) = (0, Vec::new());
        let fitted = model.after_training(
            &data,
            &mut AfterTraining {
                note: &mut |m| notes.push(m.to_string()),
                on_step: &mut || {
                    steps += 1;
                    ControlFlow::Continue(())
                },
            },
        );
        assert_eq!(fitted, ControlFlow::Continue(true));
        // 40 sequences in batches of 128: one step an epoch.
        assert_eq!(steps, PRIOR_FIT.epochs);
        assert!(notes[0].contains("40 training images"), "{notes:?}");
        // Fitted once, it is not fitted again.
        let again = model.after_training(
            &data,
            &mut AfterTraining {
                note: &mut |_| {},
                on_step: &mut || ControlFlow::Continue(()),
            },
        );
        assert_eq!(again, ControlFlow::Continue(false));
        let samples = model.abilities().sample.unwrap().sample(6, &mut rng).images;
        assert_eq!(samples.dim(), (6, 16));
        let scores = (model.abilities().score.unwrap()).score(&test.x, Keys::evaluation(2));
        let eval = model.evaluate(&test.x);
        let (_, rates) = model.rates(&eval.codes);
        for i in 0..40 {
            assert!(rates[i] > 0.0 && (scores[i] - eval.recon[i] - rates[i]).abs() < 1e-9);
        }
    }
}
