//! `--model vae` as a run trains it: the VAE family's network settings ([`VaeNet`]), the VAE's
//! own ([`VaeSettings`]), and [`VaeModel`] with its report and its abilities (sampling from the
//! prior, scoring an image).

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use ndarray::s;
use nn::{Activation, ParamStore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::net::{Likelihood, Prior, Vae, VaeConfig};
use super::report::{
    ELBO_COLUMNS, active_units_figure, describe_elbo, describe_test_elbo, elbo_epoch, elbo_values,
    iw_nll_figure,
};
use super::{eval, pictures};
use crate::data::{Binarize, perturb};
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Score, ScoreSettings, Scores, Settings, State,
    TestData, TrainData, all_images, by_str, check_hidden, files, positive, short_f32,
};
use crate::models::report::{Grids, cluster_figures};
use crate::random::{Keys, examples};

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
pub(crate) fn check_background(rate: f32) -> Result<(), String> {
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
