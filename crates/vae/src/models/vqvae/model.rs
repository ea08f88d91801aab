//! `--model vqvae` as a run trains it: its settings, the VQ-VAE with its codebook and optimizer,
//! the priors fitted to its codes after training, its figures, pictures, samples and scores.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::{Matrix, Tape, Var, mse};
use ndarray::{Axis, s};
use nn::checkpoint::Metadata;
use nn::{Activation, Optimizer, ParamId, ParamStore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::net::{Codebook, CodebookUpdate, Usage, VqConfig, VqVae};
use super::prior::{FitConfig, Made, categorical_log_prob, categorical_log_probs};
use crate::chart::codebook::save_usage;
use crate::data::{Binarize, eval_targets, perturb};
use crate::eval::pca::squared_error_rows;
use crate::model::{
    Abilities, AfterTraining, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report,
    Row, RunConfig, RunError, RunModel, Sample, Samples, Schema, Score, ScoreSettings, Scores,
    Settings, State, TestData, TrainData, all_images, by_str, check_hidden, files, keep, positive,
    short_f32,
};
use crate::models::Likelihood;
use crate::models::report::Grids;
use crate::models::vae::model::check_background;
use crate::random::{Keys, Purpose};
use crate::train::{self, MetricsMean};

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
            codes: Vec::with_capacity(x.nrows() * self.vq.config().codes),
            pictures: Matrix::zeros(x.dim()),
        };
        let width = (self.vq.config().codes * self.vq.config().code_dim) as f32;
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
                .assign(&self.vq.config().likelihood.mean_image(&decoded.value()));
        }
        eval
    }

    /// The codes of the rows of `x` (`N` per image), without decoding them.
    pub fn codes_of(&self, x: &Matrix) -> Vec<usize> {
        let mut codes = Vec::with_capacity(x.nrows() * self.vq.config().codes);
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
        let (n, d) = (self.vq.config().codes, self.vq.config().code_dim);
        let rows = codes.len() / n;
        let e = self.embeddings().select(Axis(0), codes);
        let z_q = e.into_shape_with_order((rows, n * d)).expect("whole rows");
        let tape = Tape::new();
        let p = self.params.store.bind_frozen(&tape);
        let decoded = self.vq.decode(&p, p.constant(z_q));
        self.vq.config().likelihood.mean_image(&decoded.value())
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
        let mut usage = Usage::new(vq.config().codebook);
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
        let mut usage = Usage::new(self.vq.config().codebook);
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
        let (n, k) = (self.vq.config().codes, self.vq.config().codebook);
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
        let k = self.vq.config().codebook;
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
            self.vq.config().codebook
        )
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        self.fitted().map_err(RunError::Config)?;
        let eval = self.evaluate(&test.x);
        let (categorical, autoregressive) = self.rates(&eval.codes);
        let recon = mean(&eval.recon);
        let mut usage = Usage::new(self.vq.config().codebook);
        usage.add(&eval.codes);
        let (k, n) = (self.vq.config().codebook, self.vq.config().codes);
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
            if self.vq.config().likelihood == Likelihood::Bernoulli {
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
        let mut usage = Usage::new(self.vq.config().codebook);
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

    fn tiny_run(update: CodebookUpdate) -> (RunConfig, Split) {
        let pixels: Vec<u8> = (0..40 * 16).map(|i| ((i * 37) % 256) as u8).collect();
        let labels: Vec<u8> = (0..40).map(|i| (i % 10) as u8).collect();
        let mut config = RunConfig::for_model(crate::models::kind("vqvae").unwrap());
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
