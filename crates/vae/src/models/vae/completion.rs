//! Image completion (Sohn et al. 2015, the structured-output CVAE): observe part of an image,
//! generate the rest. [`Completion`] is a conditional VAE with the observed pixels `x_o` as its
//! condition and the unobserved `x_u` as its data: recognition `q(z|x_u, x_o)`, prior network
//! `p(z|x_o)`, generation `p(x_u|z, x_o)`. [`Regressor`] is the deterministic baseline: the
//! generation network without z, `x_o → x_u`, which can only predict each pixel's mean.

use autodiff::{Matrix, Var, bce_with_logits, reparameterize};
use ndarray::{Axis, concatenate, s};
use nn::{Bound, Mlp, MlpConfig, ParamStore};
use rand_chacha::ChaCha8Rng;

use std::path::{Path, PathBuf};

use autodiff::Tape;
use serde::{Deserialize, Serialize};

use super::eval;
use super::model::VaeNet;
use super::net::{Likelihood, Prior, Vae, VaeConfig, bernoulli_means};
use super::report::{
    ELBO_COLUMNS, active_units_figure, describe_elbo, describe_test_elbo, elbo_epoch, elbo_values,
    iw_nll_figure,
};
use crate::data::Binarize;
use crate::dist::standard_normal;
use crate::model::files;
use crate::model::{
    Abilities, Columns, Complete, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row,
    RunConfig, RunError, RunModel, Schema, Settings, State, TestData, TrainData, all_images,
    by_str, check_hidden, keep, positive,
};
use crate::models::report::{Grids, nll_figure};
use crate::random::{Draws, Keys};
use crate::train::Loss;

/// Which part of the image is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Observe {
    /// The left half of the columns.
    LeftHalf,
    /// The top half of the rows.
    TopHalf,
    /// The top-left quarter (the tutorial's setting: one quadrant seen, three generated).
    #[default]
    Quadrant,
}

/// An unknown `--observe` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown observed part `{0}` (expected left-half, top-half or quadrant)")]
pub struct ParseObserveError(pub String);

spelled!(Observe, ParseObserveError {
    LeftHalf => "left-half",
    TopHalf => "top-half",
    Quadrant => "quadrant",
});

/// The observed and unobserved pixel columns of a flattened `height × width` image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    observed: Vec<usize>,
    unobserved: Vec<usize>,
}

impl Mask {
    /// The split of a `(height, width)` image that `observe` describes.
    pub fn new(observe: Observe, (height, width): (usize, usize)) -> Mask {
        let seen = |r: usize, c: usize| match observe {
            Observe::LeftHalf => c < width / 2,
            Observe::TopHalf => r < height / 2,
            Observe::Quadrant => r < height / 2 && c < width / 2,
        };
        let (observed, unobserved) = (0..height * width).partition(|&k| seen(k / width, k % width));
        Mask {
            observed,
            unobserved,
        }
    }

    /// The observed pixel indices.
    pub fn observed(&self) -> &[usize] {
        &self.observed
    }

    /// The unobserved pixel indices.
    pub fn unobserved(&self) -> &[usize] {
        &self.unobserved
    }

    /// `(x_o, x_u)`: the observed and the unobserved columns of the image rows `x`.
    pub fn split(&self, x: &Matrix) -> (Matrix, Matrix) {
        (
            x.select(Axis(1), &self.observed),
            x.select(Axis(1), &self.unobserved),
        )
    }

    /// Whole images from their observed and unobserved columns (the inverse of [`Mask::split`]).
    pub fn join(&self, observed: &Matrix, unobserved: &Matrix) -> Matrix {
        let pixels = self.observed.len() + self.unobserved.len();
        let mut x = Matrix::zeros((observed.nrows(), pixels));
        for (cols, part) in [(&self.observed, observed), (&self.unobserved, unobserved)] {
            for (j, &col) in cols.iter().enumerate() {
                x.column_mut(col).assign(&part.column(j));
            }
        }
        x
    }
}

/// The completion CVAE: a [`Vae`] of `x_u` given `x_o`, with a learned prior.
#[derive(Debug, Clone)]
pub struct Completion {
    mask: Mask,
    vae: Vae,
}

impl Completion {
    /// The networks of `config` (whose `input_dim` is the whole image's) for images of `shape`
    /// with `observe` seen: data `x_u`, condition `x_o`, learned prior.
    pub fn new(
        store: &mut ParamStore,
        config: VaeConfig,
        observe: Observe,
        shape: (usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mask = Mask::new(observe, shape);
        let config = VaeConfig {
            input_dim: mask.unobserved.len(),
            cond_dim: mask.observed.len(),
            prior: Prior::Learned,
            ..config
        };
        Completion {
            vae: Vae::new(store, config, rng),
            mask,
        }
    }

    /// Which pixels are seen.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// Each image whose observed part is `x_o` (rows × observed pixels) completed: z drawn from
    /// the prior network's `p(z|x_o)`, the unobserved pixels' decoded means beside the observed
    /// ones.
    pub fn complete(&self, store: &ParamStore, x_o: &Matrix, rng: &mut ChaCha8Rng) -> Matrix {
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let c = p.constant(x_o.clone());
        let (mu, log_var) = self.vae.prior(&p, Some(c)).expect("a learned prior");
        let z = reparameterize(mu, log_var, &standard_normal(rng, mu.shape()));
        let decoded = self.vae.decode(&p, z, Some(c)).value();
        self.mask.join(x_o, &self.vae.mean_image(&decoded))
    }

    /// The conditional VAE of `x_u` given `x_o`.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// `-ELBO(x_u|x_o)` of whole images `x`, averaged, with the parts `recon` (the unobserved
    /// pixels only) and `kl` (against the prior network's `p(z|x_o)`).
    pub fn loss<'t>(&self, p: &Bound<'t>, x: &Matrix, draws: &Draws<'_>) -> Loss<'t> {
        let (x_o, x_u) = self.mask.split(x);
        self.vae
            .loss(p, p.constant(x_u), Some(p.constant(x_o)), draws)
    }
}

/// The deterministic baseline: `x_o →` (the completion model's generation network, without
/// z) `→` Bernoulli logits of `x_u`, trained on the same cross-entropy. Parameters
/// `regressor.fc*`.
#[derive(Debug, Clone)]
pub struct Regressor {
    mask: Mask,
    net: Mlp,
}

impl Regressor {
    /// The network `|x_o| → hidden (reversed, as the decoder) → |x_u|` with `activation`.
    ///
    /// Panics unless `likelihood` is Bernoulli: its loss is the cross-entropy.
    #[track_caller]
    pub fn new(
        store: &mut ParamStore,
        config: &VaeConfig,
        observe: Observe,
        shape: (usize, usize),
        rng: &mut ChaCha8Rng,
    ) -> Self {
        assert_eq!(
            config.likelihood,
            Likelihood::Bernoulli,
            "Regressor: Bernoulli pixels only"
        );
        let mask = Mask::new(observe, shape);
        let mut widths = vec![mask.observed.len()];
        widths.extend(config.hidden.iter().rev());
        widths.push(mask.unobserved.len());
        let net = Mlp::new(
            store,
            "regressor",
            &MlpConfig::new(&widths, config.activation),
            rng,
        );
        Regressor { mask, net }
    }

    /// Which pixels are seen.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// Logits of the unobserved pixels given the observed ones.
    pub fn predict<'t>(&self, p: &Bound<'t>, x_o: Var<'t>) -> Var<'t> {
        self.net.forward(p, x_o)
    }

    /// `-ln p(x_u|x_o)` of whole images `x` under the factorised Bernoulli prediction, per
    /// example, averaged; the part `recon` is that per-example value.
    pub fn loss<'t>(&self, p: &Bound<'t>, x: &Matrix) -> Loss<'t> {
        let (x_o, x_u) = self.mask.split(x);
        let recon = bce_with_logits(self.predict(p, p.constant(x_o)), p.constant(x_u));
        Loss::new(recon.mean_rows(), [("recon", recon)])
    }
}

/// `--model completion`: the VAE family's network and the part of the image it sees.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model completion")]
pub struct CompletionSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: VaeNet,
    /// The part seen: left-half, top-half or quadrant (top-left).
    #[arg(long, default_value = "quadrant")]
    #[serde(with = "by_str")]
    pub observe: Observe,
}

impl Settings for CompletionSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        self.net.check()
    }
}

/// `--model completion` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "completion",
    about: "the completion CVAE: the unobserved pixels given the observed ones",
    schema: Schema::of::<CompletionSettings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(CompletionModel::new(config, build.shape)),
};

/// `--model regressor`: the generation network's widths and activation, and the part seen
/// (its pixels are Bernoulli).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model regressor")]
pub struct RegressorSettings {
    /// Hidden widths of the network from the seen pixels to the others, comma-separated.
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "400")]
    pub hidden: Vec<usize>,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: nn::Activation,
    /// The part seen: left-half, top-half or quadrant (top-left).
    #[arg(long, default_value = "quadrant")]
    #[serde(with = "by_str")]
    pub observe: Observe,
}

impl Settings for RegressorSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)
    }
}

/// `--model regressor` in the registry.
pub const REGRESSOR: ModelEntry = ModelEntry {
    name: "regressor",
    about: "the deterministic completion baseline",
    schema: Schema::of::<RegressorSettings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(RegressorModel::new(config, build.shape)),
};

/// Completions sampled per test image in the pictures.
const SAMPLES: usize = 6;

/// Rows scored by the regressor at once.
const CHUNK: usize = 4096;

/// `--model completion`: the [`Completion`] CVAE with its parameters and optimizer, as a run
/// trains it.
pub struct CompletionModel {
    completion: Completion,
    params: Params,
}

impl CompletionModel {
    /// The completion CVAE of `config` for images of `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let settings: &CompletionSettings = config.settings();
        let mut store = ParamStore::new();
        let vae = settings.net.config(shape);
        let rng = &mut config.init_rng();
        let completion = Completion::new(&mut store, vae, settings.observe, shape, rng);
        CompletionModel {
            completion,
            params: Params::new(store, config),
        }
    }

    fn net(&self) -> (&Vae, &ParamStore) {
        (self.completion.vae(), &self.params.store)
    }

    /// The first `n` test images: observed part, sampled completions, the truth.
    fn completions(&self, test: &TestData, n: usize, rng: &mut ChaCha8Rng) -> Picture {
        let store = &self.params.store;
        Picture {
            images: completions(&self.completion, store, &test.x, n, SAMPLES, rng),
            cols: SAMPLES + 2,
            what: format!("completions of {} test images", n.min(test.split.len())),
        }
    }
}

impl RunModel for CompletionModel {
    fn columns(&self) -> Columns {
        ELBO_COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let completion = &self.completion;
        elbo_epoch(&mut self.params, data, ctx, |p, batch, draws| {
            completion.loss(p, &batch.images, draws)
        })
    }

    fn test(&self, test: &TestData, keys: Keys) -> Row {
        let (x_o, x_u) = self.completion.mask().split(&test.x);
        let (vae, store) = self.net();
        let draws = &keys.draws(&test.examples);
        elbo_values(eval::elbo(vae, store, &x_u, Some(&x_o), draws))
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            complete: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for CompletionModel {
    fn describe(&self, values: &Row) -> String {
        describe_elbo("train -ELBO", values)
    }

    fn describe_test(&self, values: &Row) -> String {
        describe_test_elbo(values)
    }

    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let (x_o, x_u) = self.completion.mask().split(&test.x);
        let nll = iw_nll_figure("-log p(x_u|x_o)", self.net(), (&x_u, Some(&x_o)), ctx);
        let (vae, store) = self.net();
        let units = active_units_figure(vae, store, &x_u, Some(&x_o));
        Ok(nll.into_iter().chain([units]).collect())
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        grids.picture(files::COMPLETION, &self.completions(test, 12, rng))?;
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(self.completions(test, n, rng))
    }
}

impl Complete for CompletionModel {
    fn complete(&self, x: &Matrix, rng: &mut ChaCha8Rng) -> Matrix {
        let (x_o, _) = self.completion.mask().split(x);
        self.completion.complete(&self.params.store, &x_o, rng)
    }
}

/// `--model regressor`: the [`Regressor`] with its parameters and optimizer, as a run trains
/// it. Its test figure is the exact `-ln p(x_u|x_o)`, reported in the ELBO's columns with a KL
/// of 0.
pub struct RegressorModel {
    regressor: Regressor,
    params: Params,
}

impl RegressorModel {
    /// The regressor of `config` for images of `shape`, initialised from the run's seed.
    ///
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let settings: &RegressorSettings = config.settings();
        let mut store = ParamStore::new();
        let (height, width) = shape;
        let vae = VaeConfig {
            input_dim: height * width,
            hidden: settings.hidden.clone(),
            latent_dim: 1,
            activation: settings.activation,
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
            cond_dim: 0,
            prior: Prior::Standard,
        };
        let rng = &mut config.init_rng();
        let regressor = Regressor::new(&mut store, &vae, settings.observe, shape, rng);
        RegressorModel {
            regressor,
            params: Params::new(store, config),
        }
    }

    /// The exact `-ln p(x_u|x_o)` per image of `x`, averaged.
    fn nll(&self, x: &Matrix) -> f64 {
        let mut total = 0.0f64;
        for rows in x.axis_chunks_iter(Axis(0), CHUNK) {
            let tape = Tape::new();
            let p = self.params.store.bind_frozen(&tape);
            let loss = self.regressor.loss(&p, &rows.to_owned());
            let recon = loss
                .part("recon")
                .expect("the regressor's loss reports `recon`");
            total += f64::from(recon.value().sum());
        }
        total / x.nrows().max(1) as f64
    }
}

impl RegressorModel {
    /// The first `n` test images: observed part, the regressor's mean completion, the truth.
    fn completions(&self, test: &TestData, n: usize) -> Picture {
        let store = &self.params.store;
        Picture {
            images: regressions(&self.regressor, store, &test.x, n),
            cols: 3,
            what: format!("completions of {} test images", n.min(test.split.len())),
        }
    }
}

impl RunModel for RegressorModel {
    fn columns(&self) -> Columns {
        ELBO_COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let regressor = &self.regressor;
        elbo_epoch(&mut self.params, data, ctx, |p, batch, _| {
            regressor.loss(p, &batch.images)
        })
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let nll = self.nll(&test.x);
        Row::new(ELBO_COLUMNS.test, vec![nll, nll, 0.0])
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities::default()
    }
}

impl Report for RegressorModel {
    fn describe(&self, values: &Row) -> String {
        describe_elbo("train -ELBO", values)
    }

    fn describe_test(&self, values: &Row) -> String {
        describe_test_elbo(values)
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        Ok(vec![nll_figure("-log p(x_u|x_o)", self.nll(&test.x), None)])
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        grids.picture(files::COMPLETION, &self.completions(test, 12))?;
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        test: &TestData,
        n: usize,
        _: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(self.completions(test, n))
    }
}

/// A row per test image (the first `n`): the observed part, `samples` completions (z drawn
/// from the prior network's `p(z|x_o)`, the unobserved pixels' decoded means beside the
/// observed ones), and the truth (`samples + 2` per row).
pub fn completions(
    model: &Completion,
    store: &ParamStore,
    x: &Matrix,
    n: usize,
    samples: usize,
    rng: &mut ChaCha8Rng,
) -> Matrix {
    let n = n.min(x.nrows());
    let x = x.slice(s![..n, ..]).to_owned();
    let (x_o, _) = model.mask().split(&x);
    // Row i·samples + s completes image i.
    let rows: Vec<usize> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i, samples))
        .collect();
    let filled = model.complete(store, &x_o.select(Axis(0), &rows), rng);
    let observed = observed_only(model.mask(), &x);
    let mut out = Vec::with_capacity(n * (samples + 2));
    for i in 0..n {
        out.push(observed.slice(s![i..i + 1, ..]));
        out.push(filled.slice(s![i * samples..(i + 1) * samples, ..]));
        out.push(x.slice(s![i..i + 1, ..]));
    }
    concatenate(Axis(0), &out).expect("same widths")
}

/// The regressor's row per test image (the first `n`): the observed part, its one prediction
/// (the unobserved pixels' predicted means), and the truth.
pub fn regressions(model: &Regressor, store: &ParamStore, x: &Matrix, n: usize) -> Matrix {
    let n = n.min(x.nrows());
    let x = x.slice(s![..n, ..]).to_owned();
    let (x_o, _) = model.mask().split(&x);
    let predicted = {
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let logits = model.predict(&p, p.constant(x_o.clone())).value();
        model.mask().join(&x_o, &bernoulli_means(&logits))
    };
    let observed = observed_only(model.mask(), &x);
    let mut out = Vec::with_capacity(3 * n);
    for i in 0..n {
        out.push(observed.slice(s![i..i + 1, ..]));
        out.push(predicted.slice(s![i..i + 1, ..]));
        out.push(x.slice(s![i..i + 1, ..]));
    }
    concatenate(Axis(0), &out).expect("same widths")
}

/// The gray that stands for "not observed" in the completion pictures.
pub const UNOBSERVED_GRAY: f32 = 0.5;

/// Whole images of `x`'s observed pixels with the rest [`UNOBSERVED_GRAY`].
fn observed_only(mask: &Mask, x: &Matrix) -> Matrix {
    let (x_o, x_u) = mask.split(x);
    mask.join(&x_o, &Matrix::from_elem(x_u.dim(), UNOBSERVED_GRAY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

    #[test]
    fn masks_of_a_4x4_image() {
        // Pixel k sits at row k / 4, column k % 4.
        let left = Mask::new(Observe::LeftHalf, (4, 4));
        assert_eq!(left.observed(), [0, 1, 4, 5, 8, 9, 12, 13]);
        let top = Mask::new(Observe::TopHalf, (4, 4));
        assert_eq!(top.observed(), [0, 1, 2, 3, 4, 5, 6, 7]);
        let quadrant = Mask::new(Observe::Quadrant, (4, 4));
        assert_eq!(quadrant.observed(), [0, 1, 4, 5]);
        assert_eq!(quadrant.unobserved().len(), 12);
        // MNIST: a quarter of 784 is 196.
        assert_eq!(Mask::new(Observe::Quadrant, (28, 28)).observed().len(), 196);
    }

    #[test]
    fn split_then_join_is_the_identity() {
        let x = Matrix::from_shape_fn((3, 16), |(i, j)| (i * 16 + j) as f32);
        for observe in [Observe::LeftHalf, Observe::TopHalf, Observe::Quadrant] {
            let mask = Mask::new(observe, (4, 4));
            let (o, u) = mask.split(&x);
            assert_eq!(o.ncols() + u.ncols(), 16);
            assert_eq!(mask.join(&o, &u), x, "{observe}");
            assert_eq!(observe.to_string().parse::<Observe>(), Ok(observe));
        }
        assert!("corner".parse::<Observe>().is_err());
    }

    fn config() -> VaeConfig {
        crate::models::tiny_config(16, 2)
    }

    fn binary(rows: usize) -> Matrix {
        Matrix::from_shape_fn((rows, 16), |(i, j)| ((i * 7 + j * 3) % 2) as f32)
    }

    #[test]
    fn completion_loss_passes_gradcheck_through_all_three_networks() {
        let mut store = ParamStore::new();
        let rng = &mut ChaCha8Rng::seed_from_u64(5);
        let model = Completion::new(&mut store, config(), Observe::Quadrant, (4, 4), rng);
        assert!(store.id("prior.mu_log_var.w").is_some());
        assert_eq!(model.vae().config().input_dim, 12);
        let x = binary(3);
        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                model
                    .loss(&p, &x, &crate::random::test_draws(9, x.nrows()))
                    .loss
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn regressor_scores_only_the_unobserved_pixels() {
        let mut store = ParamStore::new();
        let rng = &mut ChaCha8Rng::seed_from_u64(6);
        let model = Regressor::new(&mut store, &config(), Observe::LeftHalf, (4, 4), rng);
        let x = binary(2);
        let tape = Tape::new();
        let p = store.bind(&tape);
        let loss = model.loss(&p, &x);
        // Against a direct computation on the unobserved columns only.
        let (x_o, x_u) = model.mask().split(&x);
        let logits = model.predict(&p, p.constant(x_o)).value();
        let direct: f32 = logits
            .iter()
            .zip(&x_u)
            .map(|(&l, &t)| l.max(0.0) - l * t + (-l.abs()).exp().ln_1p())
            .sum::<f32>()
            / 2.0;
        assert!(
            (loss.loss.item() - direct).abs() < 1e-4,
            "{} vs {direct}",
            loss.loss.item()
        );
    }
}
