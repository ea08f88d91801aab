//! The VAE of Kingma & Welling (M1): an MLP encoder to (μ, log σ²), reparameterized sampling,
//! an MLP decoder to Bernoulli logits (or a fixed-variance Gaussian mean), loss −ELBO.
//!
//! The same network, given a condition `c` (`cond_dim > 0`), is the conditional VAE of Sohn et
//! al. (2015): `q(z|x, c)`, `p(x|z, c)`, and a prior that is N(0, I) or learned, `p(z|c)`. The
//! condition enters the first layer of each network as a term `c·W_c` of its pre-activation,
//! which is `concat(x, c)·W` with `W` split in two. The label CVAE, the completion CVAE and M2
//! are built on it.

use autodiff::{
    Matrix, Var, bce_with_logits, bce_with_logits_rows, gaussian_kl, gaussian_kl_between,
    gaussian_nll, gaussian_nll_rows, reparameterize,
};
use nn::{Activation, Bound, Init, Linear, Mlp, MlpConfig, ParamId, ParamStore};
use rand_chacha::ChaCha8Rng;

use std::path::{Path, PathBuf};

use ndarray::{ArrayView2, s};

use serde::{Deserialize, Serialize};

use super::Loss;
use super::report::{
    ELBO_COLUMNS, Grids, active_units_figure, cluster_figures, describe_elbo, describe_test_elbo,
    elbo_epoch, elbo_values, iw_nll_figure,
};
use crate::data::{Binarize, perturb};
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Score, ScoreSettings, Scores, Settings, State,
    TestData, TrainData, all_images, by_str, check_hidden, positive, short_f32,
};
use crate::random::{Draws, Keys, Purpose, examples};
use crate::run::files;
use crate::{eval, pictures};

/// The decoder's distribution over pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Likelihood {
    /// Independent Bernoulli pixels; the decoder outputs logits (binary or grayscale targets).
    #[default]
    Bernoulli,
    /// Independent Gaussian pixels of fixed unit variance; the decoder outputs the mean.
    /// `-ln p(x|z) = ½ Σ (x - x̂)² + (D/2) ln 2π`: a squared error.
    Gaussian,
}

/// An unknown likelihood name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown likelihood `{0}` (expected bernoulli or gaussian)")]
pub struct ParseLikelihoodError(pub String);

impl Likelihood {
    /// A decoder's output as pictures in [0, 1]: Bernoulli means σ(logits), or the Gaussian
    /// mean clamped.
    pub fn mean_image(self, decoded: &Matrix) -> Matrix {
        match self {
            Likelihood::Bernoulli => bernoulli_means(decoded),
            Likelihood::Gaussian => decoded.mapv(|m| m.clamp(0.0, 1.0)),
        }
    }
}

spelled!(Likelihood, ParseLikelihoodError {
    Bernoulli => "bernoulli",
    Gaussian => "gaussian",
});

/// The shape of a [`Vae`].
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Pixels per image (784 for 28×28).
    pub input_dim: usize,
    /// Hidden widths of the encoder; the decoder mirrors them. At least one.
    pub hidden: Vec<usize>,
    /// Dimensions of z.
    pub latent_dim: usize,
    /// Between hidden layers.
    pub activation: Activation,
    /// The decoder's distribution.
    pub likelihood: Likelihood,
    /// Weight of the KL term (1 for the ELBO; β-VAE otherwise).
    pub beta: f32,
    /// Width of the condition `c` given to every network (0: none, the plain VAE).
    pub cond_dim: usize,
    /// The prior over z.
    pub prior: Prior,
}

/// The prior `p(z)` (or `p(z|c)`) of a [`Vae`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prior {
    /// N(0, I), whatever the condition.
    #[default]
    Standard,
    /// A diagonal Gaussian `p(z|c)` whose mean and log-variance an MLP of the condition gives
    /// (`prior.fc*`, `prior.mu_log_var`): Sohn et al.'s prior network. Needs `cond_dim > 0`.
    Learned,
}

/// Encoder `encoder.fc*` (input → hidden) and `encoder.mu_log_var` (→ [μ | log σ²], 2·latent
/// wide); decoder `decoder.fc*` (latent → hidden reversed → input). With a condition, also
/// `encoder.cond.w` and `decoder.cond.w` (cond → the first hidden width of each), and with a
/// learned prior `prior.fc*` (cond → hidden) and `prior.mu_log_var`.
#[derive(Debug, Clone)]
pub struct Vae {
    config: VaeConfig,
    encoder: Mlp,
    mu_log_var: Linear,
    decoder: Mlp,
    encoder_cond: Option<ParamId>,
    decoder_cond: Option<ParamId>,
    prior: Option<(Mlp, Linear)>,
}

impl Vae {
    /// Adds the parameters to `store`, weights drawn from `rng` (Xavier uniform, zero biases).
    ///
    /// Panics if `config.hidden` is empty, a width is zero, or a learned prior has no condition.
    #[track_caller]
    pub fn new(store: &mut ParamStore, config: VaeConfig, rng: &mut ChaCha8Rng) -> Self {
        assert!(
            !config.hidden.is_empty(),
            "Vae: needs at least one hidden layer"
        );
        assert!(
            config.prior == Prior::Standard || config.cond_dim > 0,
            "Vae: a learned prior p(z|c) needs a condition"
        );
        let mut widths = vec![config.input_dim];
        widths.extend(&config.hidden);
        let mut encoder = MlpConfig::new(&widths, config.activation);
        encoder.output = config.activation;
        let encoder = Mlp::new(store, "encoder", &encoder, rng);
        let first = config.hidden[0];
        let last = *config.hidden.last().expect("checked non-empty");
        let mu_log_var = Linear::new(
            store,
            "encoder.mu_log_var",
            last,
            2 * config.latent_dim,
            rng,
        );
        let mut widths = vec![config.latent_dim];
        widths.extend(config.hidden.iter().rev());
        widths.push(config.input_dim);
        let decoder = Mlp::new(
            store,
            "decoder",
            &MlpConfig::new(&widths, config.activation),
            rng,
        );
        let c = config.cond_dim;
        let mut cond_weight = |name: &str, width: usize| {
            (c > 0).then(|| store.add(name, Init::XavierUniform.matrix(c, width, rng)))
        };
        let encoder_cond = cond_weight("encoder.cond.w", first);
        let decoder_cond = cond_weight("decoder.cond.w", last);
        let prior = (config.prior == Prior::Learned).then(|| {
            let mut widths = vec![c];
            widths.extend(&config.hidden);
            let mut net = MlpConfig::new(&widths, config.activation);
            net.output = config.activation;
            let net = Mlp::new(store, "prior", &net, rng);
            let head = Linear::new(store, "prior.mu_log_var", last, 2 * config.latent_dim, rng);
            (net, head)
        });
        Vae {
            config,
            encoder,
            mu_log_var,
            decoder,
            encoder_cond,
            decoder_cond,
            prior,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// q(z|x) (or q(z|x, c)): the posterior's mean and log-variance, each batch×latent.
    #[track_caller]
    pub fn encode<'t>(&self, p: &Bound<'t>, x: Var<'t>, c: Option<Var<'t>>) -> (Var<'t>, Var<'t>) {
        self.encode_from(p, self.encoder_input(p, x), c)
    }

    /// `x·W₁ + b₁`, the encoder's first pre-activation without the condition's term: shared by
    /// all the conditions one `x` is encoded under (M2 encodes each image under ten labels).
    pub fn encoder_input<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        self.encoder.layers()[0].forward(p, x)
    }

    /// [`Vae::encode`] from [`Vae::encoder_input`] (rows may have been gathered from it).
    #[track_caller]
    pub fn encode_from<'t>(
        &self,
        p: &Bound<'t>,
        pre: Var<'t>,
        c: Option<Var<'t>>,
    ) -> (Var<'t>, Var<'t>) {
        let pre = self.add_condition(p, pre, c, self.encoder_cond);
        let stats = self
            .mu_log_var
            .forward(p, self.encoder.forward_from(p, pre));
        split_stats(stats, self.config.latent_dim)
    }

    /// p(x|z) (or p(x|z, c))'s parameters: Bernoulli logits or the Gaussian mean, batch×input.
    #[track_caller]
    pub fn decode<'t>(&self, p: &Bound<'t>, z: Var<'t>, c: Option<Var<'t>>) -> Var<'t> {
        let pre = self.decoder.layers()[0].forward(p, z);
        let pre = self.add_condition(p, pre, c, self.decoder_cond);
        self.decoder.forward_from(p, pre)
    }

    /// A learned prior's mean and log-variance given `c`; `None` for N(0, I).
    #[track_caller]
    pub fn prior<'t>(&self, p: &Bound<'t>, c: Option<Var<'t>>) -> Option<(Var<'t>, Var<'t>)> {
        let (net, head) = self.prior.as_ref()?;
        let c = c.expect("Vae: a learned prior needs the condition");
        Some(split_stats(
            head.forward(p, net.forward(p, c)),
            self.config.latent_dim,
        ))
    }

    /// `KL(q(z|x, c) ‖ p(z|c))` per example (batch×1), in closed form.
    #[track_caller]
    pub fn kl<'t>(
        &self,
        p: &Bound<'t>,
        mu: Var<'t>,
        log_var: Var<'t>,
        c: Option<Var<'t>>,
    ) -> Var<'t> {
        match self.prior(p, c) {
            None => gaussian_kl(mu, log_var),
            Some((mu_p, log_var_p)) => gaussian_kl_between(mu, log_var, mu_p, log_var_p),
        }
    }

    /// `pre + c·W_c`, checking that a condition is given exactly when the model has one.
    #[track_caller]
    fn add_condition<'t>(
        &self,
        p: &Bound<'t>,
        pre: Var<'t>,
        c: Option<Var<'t>>,
        weight: Option<ParamId>,
    ) -> Var<'t> {
        match (c, weight) {
            (None, None) => pre,
            (Some(c), Some(w)) => {
                assert_eq!(
                    c.shape(),
                    (pre.shape().0, self.config.cond_dim),
                    "Vae: condition of the wrong shape"
                );
                pre + c.matmul(p[w])
            }
            (Some(_), None) => panic!("Vae: a condition given to an unconditional model"),
            (None, Some(_)) => panic!("Vae: a conditional model needs its condition"),
        }
    }

    /// `-ln p(x|z)` per example (batch×1) from the decoder's output.
    pub fn recon<'t>(&self, decoded: Var<'t>, x: Var<'t>) -> Var<'t> {
        match self.config.likelihood {
            Likelihood::Bernoulli => bce_with_logits(decoded, x),
            Likelihood::Gaussian => {
                let unit_variance = x.tape().constant(Matrix::zeros((1, 1)));
                gaussian_nll(decoded, unit_variance, x)
            }
        }
    }

    /// [`Vae::recon`]'s values without a tape, row `r` of `decoded` against row `image_of[r]`
    /// of `x`: for scoring many samples of each image without copying it for each.
    #[track_caller]
    pub fn recon_rows(
        &self,
        decoded: ArrayView2<'_, f32>,
        x: ArrayView2<'_, f32>,
        image_of: &[usize],
    ) -> Vec<f32> {
        match self.config.likelihood {
            Likelihood::Bernoulli => bce_with_logits_rows(decoded, x, image_of),
            // The unit variance of `recon`: log σ² = 0.
            Likelihood::Gaussian => gaussian_nll_rows(decoded, 0.0, x, image_of),
        }
    }

    /// The decoder's output as a picture in [0, 1]: Bernoulli means σ(logits), or the Gaussian
    /// mean clamped.
    pub fn mean_image(&self, decoded: &Matrix) -> Matrix {
        self.config.likelihood.mean_image(decoded)
    }

    /// `-ln p(x|z, c)` and `KL(q(z|x, c) ‖ p(z|c))` per example (batch×1 each), with one
    /// reparameterized sample of z per example.
    pub fn neg_elbo_parts<'t>(
        &self,
        p: &Bound<'t>,
        x: Var<'t>,
        c: Option<Var<'t>>,
        draws: &Draws<'_>,
    ) -> (Var<'t>, Var<'t>) {
        let (mu, log_var) = self.encode(p, x, c);
        self.parts_from_posterior(p, x, c, mu, log_var, draws)
    }

    /// [`Vae::neg_elbo_parts`] from the posterior's statistics. Their rows are `k` blocks of
    /// one row per example of `draws` (M2 encodes each image under ten labels); block `k`
    /// draws its ε from the examples' `k`-th stream of [`Purpose::Eps`].
    #[track_caller]
    pub fn parts_from_posterior<'t>(
        &self,
        p: &Bound<'t>,
        x: Var<'t>,
        c: Option<Var<'t>>,
        mu: Var<'t>,
        log_var: Var<'t>,
        draws: &Draws<'_>,
    ) -> (Var<'t>, Var<'t>) {
        let (rows, cols) = mu.shape();
        let copies = rows.checked_div(draws.len()).unwrap_or(0);
        assert_eq!(
            copies * draws.len(),
            rows,
            "Vae::parts_from_posterior: {rows} rows for {} examples",
            draws.len()
        );
        let eps = draws.normal(Purpose::Eps, copies, cols);
        let z = reparameterize(mu, log_var, &eps);
        let recon = self.recon(self.decode(p, z, c), x);
        (recon, self.kl(p, mu, log_var, c))
    }

    /// The negative ELBO of `x` (batch×input) given `c`, with one reparameterized sample per
    /// example: `recon + β·kl` averaged over the batch, with the parts `recon` and `kl`.
    pub fn loss<'t>(
        &self,
        p: &Bound<'t>,
        x: Var<'t>,
        c: Option<Var<'t>>,
        draws: &Draws<'_>,
    ) -> Loss<'t> {
        let (recon, kl) = self.neg_elbo_parts(p, x, c, draws);
        let objective = if self.config.beta == 1.0 {
            recon + kl
        } else {
            recon + kl * self.config.beta
        };
        Loss::new(objective.mean_rows(), [("recon", recon), ("kl", kl)])
    }
}

/// The means σ(l) of Bernoulli pixels with logits `l`: a picture in [0, 1].
pub fn bernoulli_means(logits: &Matrix) -> Matrix {
    logits.mapv(|l| 1.0 / (1.0 + (-l).exp()))
}

/// The network of the VAE family (vae, cvae, completion, m2): the flags every one of them takes.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct VaeNet {
    /// Encoder hidden widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "400")]
    pub hidden: Vec<usize>,
    /// Dimensions of z.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 32)]
    pub latent_dim: usize,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: Activation,
    /// The decoder's distribution: bernoulli, or gaussian (unit variance: a squared error).
    #[arg(long, default_value = "bernoulli")]
    #[serde(with = "by_str")]
    pub likelihood: Likelihood,
    /// Weight of the KL term (1: the ELBO).
    #[arg(long, value_name = "β", default_value_t = 1.0)]
    #[serde(with = "short_f32")]
    pub beta: f32,
}

impl VaeNet {
    /// The unconditional network with prior N(0, I) for images of `shape` (a model sets its
    /// own condition and prior).
    pub fn config(&self, (height, width): (usize, usize)) -> VaeConfig {
        VaeConfig {
            input_dim: height * width,
            hidden: self.hidden.clone(),
            latent_dim: self.latent_dim,
            activation: self.activation,
            likelihood: self.likelihood,
            beta: self.beta,
            cond_dim: 0,
            prior: Prior::Standard,
        }
    }

    /// Rejects a network that cannot be built or a β that is not a weight.
    pub fn check(&self) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err("--beta must be a non-negative number".into());
        }
        Ok(())
    }
}

/// `--model vae`: its network, and the background noise of a likelihood ratio's background
/// model.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model vae")]
pub struct VaeSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: VaeNet,
    /// Replace each training pixel with noise at this rate, in [0, 1) (Ren et al.'s background
    /// model for likelihood-ratio OOD detection).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    #[serde(with = "short_f32")]
    pub background: f32,
}

impl Settings for VaeSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        self.net.check()?;
        check_background(self.background)
    }
}

/// `--model vae` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "vae",
    about: "the VAE of Kingma & Welling, M1",
    schema: Schema::of::<VaeSettings>(),
    binarize: Binarize::Dynamic,
    defaults: crate::model::keep,
    background: crate::model::keep,
    legacy: &[],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(VaeModel::new(config, build.shape)),
};

/// Refuses a `--background` rate outside [0, 1).
pub(super) fn check_background(rate: f32) -> Result<(), String> {
    if !(0.0..1.0).contains(&rate) {
        return Err(format!("--background must be a rate in [0, 1), got {rate}"));
    }
    Ok(())
}

/// `--model vae`: the [`Vae`] with its parameters and optimizer, as a run trains it.
pub struct VaeModel {
    vae: Vae,
    params: Params,
    /// The training pixels' replacement rate (`--background`), and whether the targets are
    /// binary (replaced by random bits, else by uniform intensities).
    background: (f32, bool),
}

impl VaeModel {
    /// The VAE of `config` for images of `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let settings: &VaeSettings = config.settings();
        let mut store = ParamStore::new();
        let vae = Vae::new(
            &mut store,
            settings.net.config(shape),
            &mut config.init_rng(),
        );
        VaeModel {
            vae,
            params: Params::new(store, config),
            background: (settings.background, config.data.binarize != Binarize::None),
        }
    }
}

impl RunModel for VaeModel {
    fn columns(&self) -> Columns {
        ELBO_COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let (vae, (rate, binary)) = (&self.vae, self.background);
        elbo_epoch(&mut self.params, data, ctx, |p, batch, draws| {
            let x = perturb(batch.images, rate, binary, draws);
            vae.loss(p, p.constant(x), None, draws)
        })
    }

    fn test(&self, test: &TestData, keys: Keys) -> Row {
        elbo_values(eval::elbo(
            &self.vae,
            &self.params.store,
            &test.x,
            None,
            &keys.draws(&test.examples),
        ))
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn report(&self) -> &dyn Report {
        self
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            sample: Some(self),
            score: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for VaeModel {
    fn describe(&self, row: &Row) -> String {
        describe_elbo("train -ELBO", row)
    }

    fn describe_test(&self, test: &Row) -> String {
        describe_test_elbo(test)
    }

    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let net = (&self.vae, &self.params.store);
        let nll = iw_nll_figure("-log p(x)", net, (&test.x, None), ctx);
        let units = active_units_figure(net.0, net.1, &test.x, None);
        let means = eval::posterior_means(net.0, net.1, &test.x, None);
        let clusters = cluster_figures("posterior means", &means, test.split.labels(), ctx);
        Ok(nll.into_iter().chain([units]).chain(clusters).collect())
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let (vae, store) = (&self.vae, &self.params.store);
        let mut grids = Grids::new(out, test.split.image_shape());
        let x = test.x.slice(s![..test.x.nrows().min(64), ..]).to_owned();
        grids.grid(files::SAMPLES, &pictures::samples(vae, store, 64, rng), 8)?;
        let reconstructions = pictures::reconstructions(vae, store, &x, 4, 16);
        grids.grid(files::RECONSTRUCTIONS, &reconstructions, 16)?;
        let interpolation = pictures::interpolation(vae, store, &x, 8, 10);
        grids.grid(files::INTERPOLATION, &interpolation, 12)?;
        if vae.config().latent_dim == 2 {
            grids.grid(files::MANIFOLD, &pictures::manifold(vae, store, 20), 20)?;
            let means = eval::posterior_means(vae, store, &test.x, None);
            grids.latent(&means, test.split.labels())?;
        }
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        _test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(Picture::square(
            self.sample(n, rng).images,
            format!("{n} samples"),
        ))
    }
}

impl Sample for VaeModel {
    /// Decoder means of z ~ N(0, I).
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        Samples {
            images: pictures::samples(&self.vae, &self.params.store, n, rng),
            labels: None,
        }
    }
}

impl Score for VaeModel {
    fn score_name(&self) -> &'static str {
        "-ELBO"
    }

    /// The negative ELBO of each image, one sample of z.
    fn score(&self, x: &Matrix, keys: Keys) -> Vec<f64> {
        let rows = examples(x.nrows());
        eval::neg_elbo_rows(&self.vae, &self.params.store, x, None, &keys.draws(&rows))
    }

    fn score_column(&self) -> &'static str {
        "neg_elbo"
    }

    /// `neg_elbo`; `neg_log_px`, the importance-weighted `-ln p(x)`; `recon_sq_error`, the
    /// squared error of the reconstruction through the posterior mean; `neg_recon_prob`, An &
    /// Cho's reconstruction probability as a loss (`neg_log_px` and `neg_recon_prob` skipped at
    /// 0 samples).
    fn scores(&self, x: &Matrix, settings: &ScoreSettings, keys: Keys) -> Vec<Scores> {
        let (vae, store) = (&self.vae, &self.params.store);
        let rows = examples(x.nrows());
        let rng = &keys.draws(&rows);
        let mut scores = vec![Scores {
            column: "neg_elbo",
            values: self.score(x, keys),
        }];
        if settings.iw_samples > 0 {
            scores.push(Scores {
                column: "neg_log_px",
                values: eval::iw_nll_rows(vae, store, x, None, settings.iw_samples, rng),
            });
        }
        scores.push(Scores {
            column: "recon_sq_error",
            values: eval::recon_sq_error_rows(vae, store, x),
        });
        if settings.recon_samples > 0 {
            scores.push(Scores {
                column: "neg_recon_prob",
                values: eval::neg_recon_prob_rows(vae, store, x, settings.recon_samples, rng),
            });
        }
        scores
    }
}

/// `[μ | log σ²]` (batch×2·latent) as its two halves.
fn split_stats(stats: Var<'_>, latent: usize) -> (Var<'_>, Var<'_>) {
    (
        stats.slice_cols(0..latent),
        stats.slice_cols(latent..2 * latent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};

    fn tiny(likelihood: Likelihood) -> (ParamStore, Vae) {
        crate::models::tiny_vae(6, 2, likelihood)
    }

    #[test]
    fn parameter_names_follow_the_layers() {
        let (store, _) = tiny(Likelihood::Bernoulli);
        let names: Vec<&str> = store.iter().map(|(_, n, _)| n).collect();
        assert_eq!(
            names,
            [
                "encoder.fc1.w",
                "encoder.fc1.b",
                "encoder.mu_log_var.w",
                "encoder.mu_log_var.b",
                "decoder.fc1.w",
                "decoder.fc1.b",
                "decoder.fc2.w",
                "decoder.fc2.b",
            ]
        );
    }

    #[test]
    fn the_whole_loss_passes_gradcheck_for_both_likelihoods() {
        for likelihood in [Likelihood::Bernoulli, Likelihood::Gaussian] {
            let (store, vae) = tiny(likelihood);
            let x = Matrix::from_shape_fn((3, 6), |(i, j)| ((i + 2 * j) % 3) as f32 / 2.0);
            let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
            // The same noise at every evaluation: a fixed seed per call.
            gradcheck(
                |v| {
                    let p = store.bind_vars(v[0].tape(), v);
                    let x = p.constant(x.clone());
                    vae.loss(&p, x, None, &crate::random::test_draws(9, 3)).loss
                },
                &params,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{likelihood}: {e}"));
        }
    }

    #[test]
    fn loss_is_recon_plus_kl() {
        let (store, vae) = tiny(Likelihood::Bernoulli);
        let tape = Tape::new();
        let p = store.bind(&tape);
        let x = p.constant(Matrix::from_elem((4, 6), 1.0));
        let out = vae.loss(&p, x, None, &crate::random::test_draws(1, 4));
        let m = out.metrics();
        let (recon, kl) = (m.part("recon").unwrap(), m.part("kl").unwrap());
        assert!((m.loss - (recon + kl)).abs() < 1e-5, "{m:?}");
        assert!(kl >= 0.0 && recon > 0.0);
    }
}
