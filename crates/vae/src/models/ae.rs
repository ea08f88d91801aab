//! The deterministic autoencoder: an MLP encoder to a linear code of `latent_dim`, an MLP decoder
//! back to the image, trained to reconstruct its input. The loss is Bernoulli cross-entropy on
//! logits, or with the Gaussian likelihood the squared error `‖Y − X‖²` of the course.
//!
//! [`AeModel`] is the model a run trains, for `--model ae` and, with a corruption of the input,
//! for `--model dae` (the [`dae`](super::dae) file). Its end-of-run figures measure what the
//! course says autoencoders are for: the reconstruction error against PCA with as many
//! components, denoising, and k-means clustering of the codes against k-means on raw pixels.

use std::path::{Path, PathBuf};

use autodiff::{Matrix, Var, bce_with_logits, mse};
use ndarray::{Axis, s};
use nn::{Activation, Bound, Linear, Mlp, MlpConfig, ParamStore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Likelihood;
use super::report::{Grids, cluster_figures};
use crate::data::{Binarize, Noise, NoiseKind};
use crate::dist::standard_normal;
use crate::eval::pca::{Pca, squared_error, squared_error_rows};
use crate::model::files;
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, FittedSample, ModelEntry, Params, Picture, Report,
    Row, RunConfig, RunError, RunModel, Samples, Schema, Score, Settings, State, TestData,
    TrainData, all_images, by_str, check_hidden, keep, positive,
};
use crate::random::Keys;
use crate::train;
use crate::train::Loss;

/// Rows evaluated at once (bounds the memory of a forward pass over the test set).
const CHUNK_ROWS: usize = 4096;

/// The shape of an [`Autoencoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct AeConfig {
    /// Pixels per image.
    pub input_dim: usize,
    /// Hidden widths of the encoder; the decoder mirrors them. At least one.
    pub hidden: Vec<usize>,
    /// Dimensions of the code.
    pub latent_dim: usize,
    /// Between hidden layers.
    pub activation: Activation,
    /// Bernoulli cross-entropy on logits, or (Gaussian) the squared error.
    pub likelihood: Likelihood,
}

/// Encoder `encoder.fc*` (input → hidden) and `encoder.code` (→ the code, no activation);
/// decoder `decoder.fc*` (code → hidden reversed → input: logits, or the mean).
#[derive(Debug, Clone)]
pub struct Autoencoder {
    config: AeConfig,
    encoder: Mlp,
    code: Linear,
    decoder: Mlp,
}

impl Autoencoder {
    /// Adds the parameters to `store`, weights drawn from `rng` (Xavier uniform, zero biases).
    ///
    /// Panics if `config.hidden` is empty or a width is zero.
    #[track_caller]
    pub fn new(store: &mut ParamStore, config: AeConfig, rng: &mut ChaCha8Rng) -> Self {
        assert!(
            !config.hidden.is_empty(),
            "Autoencoder: needs at least one hidden layer"
        );
        let mut widths = vec![config.input_dim];
        widths.extend(&config.hidden);
        let mut encoder = MlpConfig::new(&widths, config.activation);
        encoder.output = config.activation;
        let encoder = Mlp::new(store, "encoder", &encoder, rng);
        let last = *config.hidden.last().expect("checked non-empty");
        let code = Linear::new(store, "encoder.code", last, config.latent_dim, rng);
        let mut widths = vec![config.latent_dim];
        widths.extend(config.hidden.iter().rev());
        widths.push(config.input_dim);
        let decoder = Mlp::new(
            store,
            "decoder",
            &MlpConfig::new(&widths, config.activation),
            rng,
        );
        Autoencoder {
            config,
            encoder,
            code,
            decoder,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &AeConfig {
        &self.config
    }

    /// The codes of the rows of `x` (batch×latent).
    pub fn encode<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        self.code.forward(p, self.encoder.forward(p, x))
    }

    /// The decoder's output for `code`: Bernoulli logits, or the Gaussian mean (batch×input).
    pub fn decode<'t>(&self, p: &Bound<'t>, code: Var<'t>) -> Var<'t> {
        self.decoder.forward(p, code)
    }

    /// The reconstruction loss of `target` per example (batch×1): the Bernoulli cross-entropy
    /// `Σ softplus(l) − l·x` in nats, or the squared error `Σ (x̂ − x)²`.
    pub fn recon<'t>(&self, decoded: Var<'t>, target: Var<'t>) -> Var<'t> {
        match self.config.likelihood {
            Likelihood::Bernoulli => bce_with_logits(decoded, target),
            Likelihood::Gaussian => mse(decoded, target).scale(self.config.input_dim as f32),
        }
    }

    /// The loss of reconstructing `target` from `input` (the same image for a plain AE, a
    /// corrupted one for a DAE), averaged over the batch, with its part `recon`.
    pub fn loss<'t>(&self, p: &Bound<'t>, input: Var<'t>, target: Var<'t>) -> Loss<'t> {
        let recon = self.recon(self.decode(p, self.encode(p, input)), target);
        Loss::new(recon.mean_rows(), [("recon", recon)])
    }

    /// The decoder's output as a picture in [0, 1]: σ(logits), or the mean clamped.
    pub fn mean_image(&self, decoded: &Matrix) -> Matrix {
        self.config.likelihood.mean_image(decoded)
    }

    /// The codes of every row of `x` (rows × latent).
    pub fn codes(&self, store: &ParamStore, x: &Matrix) -> Matrix {
        let mut codes = Matrix::zeros((x.nrows(), self.config.latent_dim));
        for rows in super::row_chunks(x.nrows(), CHUNK_ROWS) {
            let tape = autodiff::Tape::new();
            let p = store.bind_frozen(&tape);
            let xv = p.constant(x.slice(s![rows.clone(), ..]).to_owned());
            codes
                .slice_mut(s![rows, ..])
                .assign(&*self.encode(&p, xv).value());
        }
        codes
    }

    /// The pictures the decoder makes of `codes`.
    pub fn decode_images(&self, store: &ParamStore, codes: &Matrix) -> Matrix {
        let tape = autodiff::Tape::new();
        let p = store.bind_frozen(&tape);
        self.mean_image(&self.decode(&p, p.constant(codes.clone())).value())
    }

    /// Every row of `input` encoded and decoded: the mean loss of reconstructing `target` from
    /// it, and the reconstructions as pictures in [0, 1].
    pub fn reconstruct(
        &self,
        store: &ParamStore,
        input: &Matrix,
        target: &Matrix,
    ) -> (f64, Matrix) {
        assert_eq!(
            input.dim(),
            target.dim(),
            "reconstruct: input and target differ in shape"
        );
        let mut pictures = Matrix::zeros(input.dim());
        let mut total = 0.0;
        for rows in super::row_chunks(input.nrows(), CHUNK_ROWS) {
            let tape = autodiff::Tape::new();
            let p = store.bind_frozen(&tape);
            let xv = p.constant(input.slice(s![rows.clone(), ..]).to_owned());
            let tv = p.constant(target.slice(s![rows.clone(), ..]).to_owned());
            let decoded = self.decode(&p, self.encode(&p, xv));
            total += self
                .recon(decoded, tv)
                .value()
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
            pictures
                .slice_mut(s![rows, ..])
                .assign(&self.mean_image(&decoded.value()));
        }
        (total / input.nrows().max(1) as f64, pictures)
    }
}

/// The network of the autoencoders (ae, dae).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AeNet {
    /// Encoder hidden widths, comma-separated (the decoder mirrors them).
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "400")]
    pub hidden: Vec<usize>,
    /// Dimensions of the code.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 32)]
    pub latent_dim: usize,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: Activation,
    /// The loss: bernoulli (cross-entropy on logits), or gaussian (the squared error).
    #[arg(long, default_value = "bernoulli")]
    #[serde(with = "by_str")]
    pub likelihood: Likelihood,
}

impl AeNet {
    /// The network for images of `(height, width)`.
    pub fn config(&self, (height, width): (usize, usize)) -> AeConfig {
        AeConfig {
            input_dim: height * width,
            hidden: self.hidden.clone(),
            latent_dim: self.latent_dim,
            activation: self.activation,
            likelihood: self.likelihood,
        }
    }

    /// Rejects a network that cannot be built.
    pub fn check(&self) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        Ok(())
    }
}

/// `--model ae`: the autoencoder's network.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model ae")]
pub struct AeSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: AeNet,
}

impl Settings for AeSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        self.net.check()
    }
}

/// `--model ae` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "ae",
    about: "a deterministic autoencoder, cross-entropy or squared-error loss",
    schema: Schema::of::<AeSettings>(),
    binarize: Binarize::None,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(AeModel::new(config, build.shape)),
};

/// `metrics.csv` of the AE: the reconstruction loss (nats, or squared error) in training and on
/// the test set, and the test squared error per image.
const AE_COLUMNS: Columns = Columns {
    train: &["train_recon"],
    test: &["test_recon", "test_sq_error"],
};

/// `metrics.csv` of the DAE: the loss of reconstructing the clean image from the corrupted one
/// in training and on the test set (corrupted with its fixed seed), the squared error of the
/// denoised test images, and of the test images reconstructed from the clean input.
const DAE_COLUMNS: Columns = Columns {
    train: &["train_recon"],
    test: &["test_recon", "test_denoised_sq_error", "test_sq_error"],
};

/// `--model ae` and `--model dae`: the [`Autoencoder`] with its parameters and optimizer, and
/// for the DAE the corruption of its input.
pub struct AeModel {
    ae: Autoencoder,
    params: Params,
    noise: Option<Noise>,
}

impl AeModel {
    /// The plain autoencoder of `config` for images of `shape`.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let net = &config.settings::<AeSettings>().net;
        Self::with_noise(config, net.config(shape), None)
    }

    /// The autoencoder `ae_config` of the run `config`, its input corrupted by `noise` (a
    /// DAE) or not.
    pub fn with_noise(config: &RunConfig, ae_config: AeConfig, noise: Option<Noise>) -> Self {
        let mut store = ParamStore::new();
        let ae = Autoencoder::new(&mut store, ae_config, &mut config.init_rng());
        AeModel {
            ae,
            params: Params::new(store, config),
            noise,
        }
    }

    /// The network.
    pub fn autoencoder(&self) -> &Autoencoder {
        &self.ae
    }

    /// The corruption of a DAE's input; `None` for the plain AE.
    pub fn noise(&self) -> Option<Noise> {
        self.noise
    }

    /// `AE` or `DAE`, in the lines of the figures.
    fn who(&self) -> &'static str {
        if self.noise.is_some() { "DAE" } else { "AE" }
    }

    /// The reconstructions of the rows of `input`, as pictures.
    fn pictures_of(&self, input: &Matrix) -> Matrix {
        self.ae.reconstruct(&self.params.store, input, input).1
    }

    /// The figures of denoising under `noise`: the squared error of the noisy test images and
    /// of the model's reconstructions of them, against the clean images.
    fn denoising_figures(&self, test: &TestData, noise: Noise) -> [Figure; 2] {
        let noisy = noise.corrupt_test(&test.x, &test.examples);
        let (noisy_error, output_error) = (
            squared_error(&test.x, &noisy),
            squared_error(&test.x, &self.pictures_of(&noisy)),
        );
        let who = self.who();
        [
            Figure::new(
                format!("noisy input, {noise}"),
                noisy_error,
                format!(
                    "{noise} noise: the noisy input's squared error {noisy_error:.2} per image"
                ),
            ),
            Figure::new(
                format!("{who} output, {noise}"),
                output_error,
                format!(
                    "{noise} noise: the {who}'s output's squared error {output_error:.2} per image"
                ),
            ),
        ]
    }

    /// Codes drawn from the diagonal Gaussian fitted to the codes of the rows of `x`, decoded:
    /// the simplest stand-in for the prior an autoencoder does not have.
    fn code_samples(&self, x: &Matrix, n: usize, rng: &mut ChaCha8Rng) -> Matrix {
        let codes = self.ae.codes(&self.params.store, x);
        let mean = codes.mean_axis(Axis(0)).expect("a test set");
        let sd = codes.std_axis(Axis(0), 0.0);
        let z = standard_normal(rng, (n, codes.ncols())) * &sd + &mean;
        self.ae.decode_images(&self.params.store, &z)
    }
}

impl RunModel for AeModel {
    fn columns(&self) -> Columns {
        if self.noise.is_some() {
            DAE_COLUMNS
        } else {
            AE_COLUMNS
        }
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let (ae, noise) = (&self.ae, self.noise);
        let (store, opt) = self.params.parts();
        let mean = train::epoch(
            store,
            opt,
            data.all(),
            ctx.plan(),
            |p, batch, draws| match noise {
                None => {
                    let x = p.constant(batch.images);
                    ae.loss(p, x, x)
                }
                Some(noise) => {
                    let noisy = p.constant(noise.corrupt(&batch.images, draws));
                    ae.loss(p, noisy, p.constant(batch.images))
                }
            },
            &mut *ctx.on_batch,
        );
        Row::new(self.columns().train, vec![mean.loss])
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let store = &self.params.store;
        let (loss, clean) = self.ae.reconstruct(store, &test.x, &test.x);
        let clean_error = squared_error(&test.x, &clean);
        let values = match self.noise {
            None => vec![loss, clean_error],
            Some(noise) => {
                let noisy = noise.corrupt_test(&test.x, &test.examples);
                let (loss, denoised) = self.ae.reconstruct(store, &noisy, &test.x);
                vec![loss, squared_error(&test.x, &denoised), clean_error]
            }
        };
        Row::new(self.columns().test, values)
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            score: Some(self),
            fitted_sample: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for AeModel {
    fn describe(&self, values: &Row) -> String {
        let (train, test) = (values.get("train_recon"), values.get("test_recon"));
        let clean = values.get("test_sq_error");
        match self.noise {
            None => {
                format!("train recon {train:8.3}  test recon {test:8.3}, squared error {clean:7.3}")
            }
            Some(_) => format!(
                "train recon {train:8.3}  test recon {test:8.3}, denoised squared error {:7.3} \
                 (clean input {clean:7.3})",
                values.get("test_denoised_sq_error")
            ),
        }
    }

    fn describe_test(&self, values: &Row) -> String {
        let unit = match self.ae.config.likelihood {
            Likelihood::Bernoulli => " nats",
            Likelihood::Gaussian => "",
        };
        let (loss, clean) = (values.get("test_recon"), values.get("test_sq_error"));
        match self.noise {
            None => format!(
                "test reconstruction loss {loss:.2}{unit}, squared error {clean:.2} per image"
            ),
            Some(noise) => format!(
                "test ({noise} noise) reconstruction loss {loss:.2}{unit}, denoised squared \
                 error {:.2} per image (clean input: {clean:.2})",
                values.get("test_denoised_sq_error")
            ),
        }
    }

    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let error = squared_error(&test.x, &self.pictures_of(&test.x));
        let mut figures = vec![Figure::new(
            "squared error",
            error,
            format!("test squared error {error:.2} per image"),
        )];

        let d = self.ae.config.latent_dim.min(test.x.ncols());
        let train = ctx.train.load()?;
        (ctx.note)(&format!(
            "fitting PCA with {d} components to {} training images",
            train.len()
        ));
        let pca = Pca::fit(&crate::data::images(&train), d)
            .map_err(|e| RunError::Config(e.to_string()))?;
        let pca_error = squared_error(&test.x, &pca.reconstruct(&test.x));
        figures.push(Figure::new(
            "PCA squared error",
            pca_error,
            format!(
                "PCA with the same {d} components: test squared error {pca_error:.2} per image"
            ),
        ));

        let noises = match self.noise {
            Some(noise) => vec![noise],
            None => NoiseKind::ALL.map(Noise::default_of).to_vec(),
        };
        for noise in noises {
            figures.extend(self.denoising_figures(test, noise));
        }

        let labels = test.split.labels();
        let codes = self.ae.codes(&self.params.store, &test.x);
        figures.extend(cluster_figures("codes", &codes, labels, ctx));
        figures.extend(cluster_figures("pixels", &test.x, labels, ctx));
        Ok(figures)
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        let x = grids.reconstructions(&test.x, |x| self.pictures_of(x))?;
        if let Some(noise) = self.noise {
            let cols = 16;
            let x = x.slice(s![..x.nrows().min(3 * cols), ..]).to_owned();
            let noisy = noise.corrupt_test(&x, &test.examples[..x.nrows()]);
            let rows = crate::image::above(&[&noisy, &self.pictures_of(&noisy), &x], cols);
            grids.grid(files::DENOISING, &rows, cols)?;
        }
        if self.ae.config.latent_dim == 2 {
            let codes = self.ae.codes(&self.params.store, &test.x);
            grids.latent(&codes, test.split.labels())?;
        }
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(Picture::square(
            self.code_samples(&test.x, n, rng),
            format!("{n} decodings of codes drawn from a Gaussian fitted to the test codes"),
        ))
    }
}

impl FittedSample for AeModel {
    fn sample_fitted(&self, x: &Matrix, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        Samples {
            images: self.code_samples(x, n, rng),
            labels: None,
        }
    }

    fn density(&self) -> &'static str {
        "a diagonal Gaussian fitted to the codes"
    }
}

impl Score for AeModel {
    fn score_name(&self) -> &'static str {
        "squared error"
    }

    fn score_column(&self) -> &'static str {
        "sq_error"
    }

    /// The squared error `Σ (x̂ − x)²` of each image's reconstruction.
    fn score(&self, x: &Matrix, _keys: Keys) -> Vec<f64> {
        squared_error_rows(x, &self.pictures_of(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

    fn tiny(likelihood: Likelihood) -> (ParamStore, Autoencoder) {
        let mut store = ParamStore::new();
        let config = AeConfig {
            input_dim: 6,
            hidden: vec![5],
            latent_dim: 2,
            activation: Activation::Tanh,
            likelihood,
        };
        let ae = Autoencoder::new(&mut store, config, &mut ChaCha8Rng::seed_from_u64(0));
        (store, ae)
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
                "encoder.code.w",
                "encoder.code.b",
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
            let (store, ae) = tiny(likelihood);
            let x = Matrix::from_shape_fn((3, 6), |(i, j)| ((i + 2 * j) % 3) as f32 / 2.0);
            let noisy = x.mapv(|v| 1.0 - v);
            let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
            gradcheck(
                |v| {
                    let p = store.bind_vars(v[0].tape(), v);
                    ae.loss(&p, p.constant(noisy.clone()), p.constant(x.clone()))
                        .loss
                },
                &params,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{likelihood}: {e}"));
        }
    }

    #[test]
    fn the_gaussian_loss_is_the_squared_error_of_the_reconstruction() {
        let (store, ae) = tiny(Likelihood::Gaussian);
        let x = Matrix::from_shape_fn((4, 6), |(i, j)| ((i * 3 + j) % 5) as f32 / 4.0);
        let tape = Tape::new();
        let p = store.bind(&tape);
        let xv = p.constant(x.clone());
        let decoded = ae.decode(&p, ae.encode(&p, xv)).value().to_owned();
        let loss = ae.loss(&p, xv, xv).loss.item();
        let by_hand = squared_error(&x, &decoded);
        assert!(
            (f64::from(loss) - by_hand).abs() < 1e-5 * by_hand,
            "{loss} vs {by_hand}"
        );
        // The chunked evaluation agrees with the tape's loss.
        let (mean, _) = ae.reconstruct(&store, &x, &x);
        assert!((mean - by_hand).abs() < 1e-5 * by_hand);
    }

    #[test]
    fn codes_and_pictures_come_in_chunks_that_change_nothing() {
        let (store, ae) = tiny(Likelihood::Bernoulli);
        let n = CHUNK_ROWS + 3;
        let x = Matrix::from_shape_fn((n, 6), |(i, j)| ((i + j) % 2) as f32);
        let codes = ae.codes(&store, &x);
        let (_, pictures) = ae.reconstruct(&store, &x, &x);
        // Rows i and i + 2 are the same image, in different chunks for i = CHUNK_ROWS − 1.
        let i = CHUNK_ROWS - 1;
        assert_eq!(codes.row(i), codes.row(i + 2));
        assert_eq!(pictures.row(i), pictures.row(i + 2));
        assert!(pictures.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
