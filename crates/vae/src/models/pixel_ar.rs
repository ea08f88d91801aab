//! A local autoregressive model of grayscale pixels: the exact likelihood `p(x) = Πⱼ p(xⱼ | x<ⱼ)`
//! in raster order, each factor a discretized logistic over the 256 intensities (PixelCNN++'s,
//! Salimans et al. 2017, one component) whose location and log-scale an MLP reads off the pixel's
//! causal neighbourhood: the [`Window`] of the rows just above it and the pixels just left of
//! it. The same MLP serves every pixel; with `position` it is also told the pixel's row and
//! column (one-hot, as a learned per-pixel bias of its first layer), so it can learn what belongs
//! where.
//!
//! It is the model of the likelihood ratio of out-of-distribution detection (Ren et al. 2019):
//! a foreground that knows where a pixel is, against a background model that sees only the
//! neighbourhood and trained on images with a fraction of pixels replaced by noise
//! ([`background_model`]). The background captures the local statistics that both datasets share
//! (black surroundings, smooth strokes), and the ratio cancels them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;

use autodiff::{Matrix, Var, discretized_logistic_nll};
use ndarray::s;
use nn::{Activation, Bound, Init, Mlp, MlpConfig, ParamId, ParamStore};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::report::Grids;
use super::vae::model::check_background;
use crate::data::{Binarize, perturb};
use crate::model::files;
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Score, Settings, State, TestData, TrainData,
    all_images, by_str, check_hidden, positive, short_f32,
};
use crate::random::Keys;
use crate::train;

/// Intensity levels of a pixel: 8-bit images.
pub const LEVELS: usize = 256;

/// The floor of a pixel's log-scale (PixelCNN++'s): a scale below e⁻⁷ ≈ 1/8 of a level would
/// put all the mass on one level, so a confident model's log-likelihood stays finite.
pub const MIN_LOG_SCALE: f32 = -7.0;

/// Images per forward pass when scoring (each one is `height·width` rows of the MLP).
const CHUNK_IMAGES: usize = 128;

/// The causal neighbourhood a pixel's distribution is read from: `rows_above` whole rows of
/// `2·half_width + 1` pixels centred on its column, then the `half_width` pixels to its left.
/// Pixels outside the image read as black.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Rows above the pixel.
    pub rows_above: usize,
    /// Columns on each side of the pixel.
    pub half_width: usize,
}

impl Window {
    /// The window of a likelihood ratio's background model: 3 rows above, 3 columns on each
    /// side (24 pixels).
    pub const LOCAL: Window = Window {
        rows_above: 3,
        half_width: 3,
    };

    /// The window of the model (`--window 7,7`): 7 rows above, 7 columns on each side (112
    /// pixels). Against the [`LOCAL`](Self::LOCAL) background its likelihood ratio separates
    /// MNIST from Fashion-MNIST far better than a 3,3 foreground's (docs/pixel-ar.md).
    pub const WIDE: Window = Window {
        rows_above: 7,
        half_width: 7,
    };

    /// The largest `rows_above` and `half_width` accepted: a 28×28 image's.
    pub const MAX: usize = 27;

    /// Pixels in the window.
    pub fn len(self) -> usize {
        self.rows_above * (2 * self.half_width + 1) + self.half_width
    }

    /// Whether the window holds no pixel.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The (row, column) offsets of its pixels from the predicted one, in the order of a
    /// context's columns: the rows above from the top, each from the left, then the row's own
    /// pixels from the left.
    pub fn offsets(self) -> Vec<(isize, isize)> {
        let (r, w) = (self.rows_above as isize, self.half_width as isize);
        let above = (-r..0).flat_map(move |dr| (-w..=w).map(move |dc| (dr, dc)));
        above.chain((-w..0).map(|dc| (0, dc))).collect()
    }

    /// The context of every pixel of every row of `x` (images of `shape`, intensities in
    /// [0, 1]): one row per (image, pixel) in raster order, one column per window pixel, the
    /// intensities mapped to [−1, 1] and −1 (black) outside the image.
    pub fn contexts(self, x: &Matrix, (height, width): (usize, usize)) -> Matrix {
        let pixels = height * width;
        assert_eq!(
            x.ncols(),
            pixels,
            "Window::contexts: images of {} pixels for a shape of {height}x{width}",
            x.ncols()
        );
        let (offsets, k) = (self.offsets(), self.len());
        let mut out = Matrix::zeros((x.nrows() * pixels, k));
        let rows = out
            .as_slice_mut()
            .expect("a new matrix is contiguous")
            .chunks_mut(pixels * k);
        let images: Vec<_> = rows.zip(x.rows()).collect();
        autodiff::parallel::for_each_block(images, |(out, image)| {
            for (j, ctx) in out.chunks_exact_mut(k).enumerate() {
                fill_context(ctx, &offsets, |at| image[at], j, width);
            }
        });
        out
    }
}

impl fmt::Display for Window {
    /// `7,7`: rows above, then columns on each side.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.rows_above, self.half_width)
    }
}

/// A `--window` that is not `ROWS,HALF_WIDTH` within [`Window::MAX`], or holds no pixel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "window `{0}`: expected ROWS,HALF_WIDTH (rows above the pixel, columns on each side), \
     each 0 to 27 and not both 0, e.g. 7,7"
)]
pub struct ParseWindowError(pub String);

impl FromStr for Window {
    type Err = ParseWindowError;

    fn from_str(s: &str) -> Result<Window, ParseWindowError> {
        let bad = || ParseWindowError(s.to_string());
        let (rows, half) = s.split_once(',').ok_or_else(bad)?;
        let number = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n <= Window::MAX);
        let window = Window {
            rows_above: number(rows).ok_or_else(bad)?,
            half_width: number(half).ok_or_else(bad)?,
        };
        if window.is_empty() {
            return Err(bad());
        }
        Ok(window)
    }
}

/// Writes into `ctx` the context of pixel `j` of an image `width` pixels wide whose pixel at
/// index `at` is `pixel(at)`, one element per window offset: `2·pixel − 1`, or −1 (black)
/// outside the image.
fn fill_context(
    ctx: &mut [f32],
    offsets: &[(isize, isize)],
    pixel: impl Fn(usize) -> f32,
    j: usize,
    width: usize,
) {
    let (r, c) = ((j / width) as isize, (j % width) as isize);
    for (v, &(dr, dc)) in ctx.iter_mut().zip(offsets) {
        let (rr, cc) = (r + dr, c + dc);
        *v = if rr < 0 || cc < 0 || cc >= width as isize {
            -1.0
        } else {
            2.0 * pixel(rr as usize * width + cc as usize) - 1.0
        };
    }
}

/// The shape of a [`PixelAr`].
#[derive(Debug, Clone, PartialEq)]
pub struct PixelArConfig {
    /// Height and width of the images.
    pub shape: (usize, usize),
    /// The neighbourhood each pixel is predicted from.
    pub window: Window,
    /// Hidden widths of the MLP. At least one.
    pub hidden: Vec<usize>,
    /// Between hidden layers.
    pub activation: Activation,
    /// Whether the MLP is told the pixel's row and column.
    pub position: bool,
}

/// The network: `net.fc1` (window → first hidden layer) ... → 2 outputs (location, log-scale in
/// [−1, 1] units), and with `position` a weight `position.w` of shape `[height + width, hidden₁]`
/// whose rows for the pixel's row and column add to the first layer's pre-activation.
#[derive(Debug, Clone)]
pub struct PixelAr {
    config: PixelArConfig,
    net: Mlp,
    position: Option<ParamId>,
    /// One row per pixel in raster order: the one-hot of its row, then of its column (shared
    /// with every tape that reads it).
    one_hot: Rc<Matrix>,
}

impl PixelAr {
    /// Adds the parameters to `store`, weights drawn from `rng` (Xavier uniform, zero biases).
    ///
    /// Panics if `config.hidden` is empty or a width is zero.
    #[track_caller]
    pub fn new(store: &mut ParamStore, config: PixelArConfig, rng: &mut ChaCha8Rng) -> Self {
        assert!(
            !config.hidden.is_empty(),
            "PixelAr: needs at least one hidden layer"
        );
        let mut widths = vec![config.window.len()];
        widths.extend(&config.hidden);
        widths.push(2);
        let net = Mlp::new(
            store,
            "net",
            &MlpConfig::new(&widths, config.activation),
            rng,
        );
        let (height, width) = config.shape;
        let position = config.position.then(|| {
            let init = Init::XavierUniform.matrix(height + width, config.hidden[0], rng);
            store.add("position.w", init)
        });
        let one_hot = Rc::new(Matrix::from_shape_fn(
            (height * width, height + width),
            |(j, k)| f32::from(u8::from(k == j / width || k == height + j % width)),
        ));
        PixelAr {
            config,
            net,
            position,
            one_hot,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &PixelArConfig {
        &self.config
    }

    /// Pixels per image.
    fn pixels(&self) -> usize {
        self.config.shape.0 * self.config.shape.1
    }

    /// The MLP's two outputs for the rows of `contexts`, row `i` the context of pixel
    /// `pixel[i]`: the location and the log-scale (floored at [`MIN_LOG_SCALE`]), each a column,
    /// in [−1, 1] units.
    fn outputs<'t>(&self, p: &Bound<'t>, contexts: Matrix, pixel: &[usize]) -> (Var<'t>, Var<'t>) {
        let mut pre = self.net.layers()[0].forward(p, p.constant(contexts));
        if let Some(w) = self.position {
            // Row and column as one-hot inputs, computed once per pixel and gathered per row.
            let per_pixel = p.constant(Rc::clone(&self.one_hot)).matmul(p[w]);
            pre = pre + per_pixel.gather_rows(pixel);
        }
        let out = self.net.forward_from(p, pre);
        (
            out.slice_cols(0..1),
            out.slice_cols(1..2).clamp_min(MIN_LOG_SCALE),
        )
    }

    /// `−ln p(x)` of each row of `x` (images, intensities `k/255` in [0, 1]) in nats (n×1).
    pub fn nll<'t>(&self, p: &Bound<'t>, x: &Matrix) -> Var<'t> {
        let (n, pixels) = (x.nrows(), self.pixels());
        let contexts = self.config.window.contexts(x, self.config.shape);
        let pixel: Vec<usize> = (0..n).flat_map(|_| 0..pixels).collect();
        let (mean, log_scale) = self.outputs(p, contexts, &pixel);
        let targets = x
            .to_shape((n * pixels, 1))
            .expect("rows of pixels")
            .mapv(|v| 2.0 * v - 1.0);
        discretized_logistic_nll(mean, log_scale, &targets, LEVELS)
            .reshape((n, pixels))
            .sum_cols()
    }

    /// `−ln p(x)` of every row of `x` in nats, with the parameters in `store`.
    pub fn nll_rows(&self, store: &ParamStore, x: &Matrix) -> Vec<f64> {
        let mut out = Vec::with_capacity(x.nrows());
        for rows in super::row_chunks(x.nrows(), CHUNK_IMAGES) {
            let tape = autodiff::Tape::new();
            let p = store.bind_frozen(&tape);
            let nll = self.nll(&p, &x.slice(s![rows, ..]).to_owned());
            out.extend(nll.value().iter().map(|&v| f64::from(v)));
        }
        out
    }

    /// `n` images drawn pixel by pixel in raster order, each intensity from its discretized
    /// logistic given the pixels drawn before it; intensities `k/255` in [0, 1].
    pub fn sample(&self, store: &ParamStore, n: usize, rng: &mut ChaCha8Rng) -> Matrix {
        let (height, width) = self.config.shape;
        let window = self.config.window;
        let offsets = window.offsets();
        let mut images = Matrix::zeros((n, height * width));
        for j in 0..height * width {
            let mut contexts = Matrix::zeros((n, window.len()));
            for (i, mut ctx) in contexts.rows_mut().into_iter().enumerate() {
                let ctx = ctx.as_slice_mut().expect("a row of a new matrix");
                fill_context(ctx, &offsets, |at| images[[i, at]], j, width);
            }
            let tape = autodiff::Tape::new();
            let p = store.bind_frozen(&tape);
            let (mean, log_scale) = self.outputs(&p, contexts, &vec![j; n]);
            let (mean, log_scale) = (mean.value(), log_scale.value());
            for i in 0..n {
                // The logistic's inverse CDF, then the nearest level: the edge levels take the
                // tails, as the likelihood's do.
                let u: f64 = rng.random_range(1e-6..1.0 - 1e-6);
                let v = f64::from(mean[[i, 0]])
                    + f64::from(log_scale[[i, 0]]).exp() * (u.ln() - (-u).ln_1p());
                let level = ((v + 1.0) / 2.0 * (LEVELS - 1) as f64).round();
                images[[i, j]] = level.clamp(0.0, (LEVELS - 1) as f64) as f32 / 255.0;
            }
        }
        images
    }
}

/// `--model pixel-ar`: its network, the neighbourhood it reads, and the background noise of a
/// likelihood ratio's background model.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model pixel-ar")]
pub struct PixelArSettings {
    /// Hidden widths of the MLP that reads a pixel's neighbourhood, comma-separated.
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "128,128")]
    pub hidden: Vec<usize>,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: Activation,
    /// The neighbourhood each pixel is predicted from, ROWS,HALF_WIDTH (the rows above it, the
    /// columns on each side).
    #[arg(long, value_name = "ROWS,HALF_WIDTH", default_value_t = Window::WIDE)]
    #[serde(with = "by_str")]
    pub window: Window,
    /// Predict each pixel from its neighbourhood only, without its row and column (what a
    /// likelihood ratio's background model does).
    #[arg(long)]
    pub local: bool,
    /// Replace each training pixel with a random gray level at this rate, in [0, 1) (a
    /// likelihood ratio's background model).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    #[serde(with = "short_f32")]
    pub background: f32,
}

impl Settings for PixelArSettings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        check_background(self.background)?;
        if config.data.binarize != Binarize::None {
            return Err(format!(
                "--binarize {}: model pixel-ar gives the probability of each of the {LEVELS} \
                 gray levels, so it trains on gray images (--binarize none)",
                config.data.binarize
            ));
        }
        Ok(())
    }
}

/// `--model pixel-ar` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "pixel-ar",
    about: "a local autoregressive model of gray levels, exact likelihood",
    schema: Schema::of::<PixelArSettings>(),
    binarize: Binarize::None,
    defaults: |c| c.epochs = 4,
    background: background_model,
    // pixel-ar's only window before it was a setting.
    legacy: &[("window", "3,3")],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(PixelArModel::new(config, build.shape)),
};

/// How the background model of pixel-ar's likelihood ratio differs from the model besides its
/// perturbed training images: it sees only the [`Window::LOCAL`] neighbourhood, not where a
/// pixel is, and is half as wide.
pub fn background_model(config: &mut RunConfig) {
    let settings: &mut PixelArSettings = config.model.get_mut();
    settings.local = true;
    settings.window = Window::LOCAL;
    settings.hidden = settings.hidden.iter().map(|&w| w.div_ceil(2)).collect();
}

/// `metrics.csv` of pixel-ar: `−ln p(x)` per image in training and on the test set, and the
/// test set's in bits per pixel.
const COLUMNS: Columns = Columns {
    train: &["train_neg_log_px"],
    test: &["test_neg_log_px", "test_bits_per_dim"],
};

/// `--model pixel-ar`: the [`PixelAr`] with its parameters and optimizer, and the rate at which
/// its training pixels are replaced by noise (a background model).
pub struct PixelArModel {
    model: PixelAr,
    params: Params,
    background: f32,
}

impl PixelArModel {
    /// The model of `config` for images of `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let settings: &PixelArSettings = config.settings();
        let mut store = ParamStore::new();
        let model_config = PixelArConfig {
            shape,
            window: settings.window,
            hidden: settings.hidden.clone(),
            activation: settings.activation,
            position: !settings.local,
        };
        let model = PixelAr::new(&mut store, model_config, &mut config.init_rng());
        PixelArModel {
            model,
            params: Params::new(store, config),
            background: settings.background,
        }
    }

    /// The network.
    pub fn network(&self) -> &PixelAr {
        &self.model
    }

    /// Nats per image to bits per pixel.
    fn bits_per_dim(&self, nats: f64) -> f64 {
        nats / std::f64::consts::LN_2 / self.model.pixels() as f64
    }

    fn test_nll(&self, test: &TestData) -> f64 {
        let nll = self.model.nll_rows(&self.params.store, &test.x);
        nll.iter().sum::<f64>() / nll.len().max(1) as f64
    }
}

impl RunModel for PixelArModel {
    fn columns(&self) -> Columns {
        COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let (model, rate) = (&self.model, self.background);
        let (store, opt) = self.params.parts();
        let mean = train::epoch(
            store,
            opt,
            data.all(),
            ctx.plan(),
            |p, batch, draws| {
                let x = perturb(batch.images, rate, false, draws);
                let nll = model.nll(p, &x);
                crate::train::Loss::new(nll.mean_rows(), [("nll", nll)])
            },
            &mut *ctx.on_batch,
        );
        Row::new(COLUMNS.train, vec![mean.loss])
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let nll = self.test_nll(test);
        Row::new(COLUMNS.test, vec![nll, self.bits_per_dim(nll)])
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

impl Report for PixelArModel {
    fn describe(&self, values: &Row) -> String {
        format!(
            "train -log p(x) {:8.3}  test -log p(x) {:8.3} ({:.4} bits/dim)",
            values.get("train_neg_log_px"),
            values.get("test_neg_log_px"),
            values.get("test_bits_per_dim")
        )
    }

    fn describe_test(&self, values: &Row) -> String {
        format!(
            "-log p(x) {:.2} ({:.4} bits/dim)",
            values.get("test_neg_log_px"),
            values.get("test_bits_per_dim")
        )
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let nll = self.test_nll(test);
        let bits = self.bits_per_dim(nll);
        Ok(vec![Figure::new(
            "-log p(x)",
            nll,
            format!("test -log p(x) {nll:.2} nats, exact ({bits:.4} bits/dim)"),
        )])
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        grids.grid(files::SAMPLES, &self.sample(64, rng).images, 8)?;
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

impl Sample for PixelArModel {
    /// Images drawn pixel by pixel.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        Samples {
            images: self.model.sample(&self.params.store, n, rng),
            labels: None,
        }
    }

    /// Its images are draws, not means.
    fn draws_means(&self) -> bool {
        false
    }
}

impl Score for PixelArModel {
    fn score_name(&self) -> &'static str {
        "-log p(x)"
    }

    /// The exact `−ln p(x)` of each image, in nats.
    fn score(&self, x: &Matrix, _keys: Keys) -> Vec<f64> {
        self.model.nll_rows(&self.params.store, x)
    }

    fn score_column(&self) -> &'static str {
        "neg_log_px"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

    fn tiny(shape: (usize, usize), position: bool) -> (ParamStore, PixelAr) {
        let mut store = ParamStore::new();
        let config = PixelArConfig {
            shape,
            window: Window {
                rows_above: 1,
                half_width: 1,
            },
            hidden: vec![4],
            activation: Activation::Tanh,
            position,
        };
        let model = PixelAr::new(&mut store, config, &mut ChaCha8Rng::seed_from_u64(5));
        (store, model)
    }

    /// Every image of `pixels` pixels, intensities k/255, as rows (256^pixels of them).
    fn every_image(pixels: usize) -> Matrix {
        let n = LEVELS.pow(pixels as u32);
        Matrix::from_shape_fn((n, pixels), |(i, j)| {
            ((i / LEVELS.pow(j as u32)) % LEVELS) as f32 / 255.0
        })
    }

    #[test]
    fn the_window_lists_the_rows_above_then_the_pixels_to_the_left() {
        assert_eq!(Window::LOCAL.len(), 24);
        let w = Window {
            rows_above: 1,
            half_width: 1,
        };
        assert_eq!(w.offsets(), [(-1, -1), (-1, 0), (-1, 1), (0, -1)]);
        // A 2×3 image 0..6 (as k/255); the context of pixel (1, 0) and of pixel (1, 2).
        let x = Matrix::from_shape_fn((1, 6), |(_, j)| j as f32 / 5.0);
        let c = w.contexts(&x, (2, 3));
        assert_eq!(c.dim(), (6, 4));
        let v = |j: usize| 2.0 * j as f32 / 5.0 - 1.0;
        assert_eq!(c.row(3).to_vec(), [-1.0, v(0), v(1), -1.0]);
        assert_eq!(c.row(5).to_vec(), [v(1), v(2), -1.0, v(4)]);
        // The first pixel sees nothing but black.
        assert!(c.row(0).iter().all(|&v| v == -1.0));
    }

    #[test]
    fn a_pixels_context_holds_only_pixels_before_it() {
        let x = Matrix::from_shape_fn((1, 20), |(_, j)| (j * 37 % 256) as f32 / 255.0);
        let window = Window::LOCAL;
        let before = window.contexts(&x, (4, 5));
        for changed in 0..20 {
            let mut y = x.clone();
            y[[0, changed]] = 1.0 - y[[0, changed]];
            let after = window.contexts(&y, (4, 5));
            for j in 0..=changed {
                assert_eq!(
                    before.row(j),
                    after.row(j),
                    "pixel {j} sees pixel {changed}"
                );
            }
        }
    }

    #[test]
    fn the_probabilities_of_every_image_sum_to_one() {
        // 1×2 and 2×1 images: all 65 536 of them, with and without the position.
        for (shape, position) in [((1, 2), false), ((1, 2), true), ((2, 1), true)] {
            let (store, model) = tiny(shape, position);
            let nll = model.nll_rows(&store, &every_image(2));
            let total: f64 = nll.iter().map(|&v| (-v).exp()).sum();
            assert!((total - 1.0).abs() < 1e-4, "{shape:?} {position}: {total}");
        }
    }

    #[test]
    fn the_whole_loss_passes_gradcheck() {
        for position in [false, true] {
            let (store, model) = tiny((3, 3), position);
            let x =
                Matrix::from_shape_fn((2, 9), |(i, j)| ((i * 50 + j * 29) % 256) as f32 / 255.0);
            let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
            gradcheck(
                |v| {
                    let p = store.bind_vars(v[0].tape(), v);
                    model.nll(&p, &x).mean_rows()
                },
                &params,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("position {position}: {e}"));
        }
    }

    #[test]
    fn samples_follow_the_models_probabilities() {
        // One pixel: the samples' level frequencies against the exact probabilities.
        let (store, model) = tiny((1, 1), true);
        let p: Vec<f64> = (model.nll_rows(&store, &every_image(1)).iter())
            .map(|&v| (-v).exp())
            .collect();
        let n = 20_000;
        let samples = model.sample(&store, n, &mut ChaCha8Rng::seed_from_u64(1));
        let mean = |f: &dyn Fn(f64) -> f64| {
            let sampled = samples.iter().map(|&v| f(f64::from(v))).sum::<f64>() / n as f64;
            let exact: f64 = (p.iter().enumerate())
                .map(|(k, p)| p * f(k as f64 / 255.0))
                .sum();
            (sampled, exact)
        };
        let (sampled, exact) = mean(&|v| v);
        assert!((sampled - exact).abs() < 0.01, "{sampled} {exact}");
        let (sampled, exact) = mean(&|v| v * v);
        assert!((sampled - exact).abs() < 0.01, "{sampled} {exact}");
        assert!(samples.iter().all(|&v| v == (v * 255.0).round() / 255.0));
    }

    #[test]
    fn the_background_model_is_local_and_narrower() {
        let mut config = RunConfig::for_model(crate::models::kind("pixel-ar").unwrap());
        let settings: &PixelArSettings = config.settings();
        assert_eq!(
            (settings.hidden.as_slice(), settings.local),
            (&[128, 128][..], false)
        );
        assert_eq!(settings.window, Window::WIDE);
        background_model(&mut config);
        let settings: &PixelArSettings = config.settings();
        assert_eq!(
            (settings.hidden.as_slice(), settings.local, settings.window),
            (&[64, 64][..], true, Window::LOCAL)
        );
        let names = |config: &RunConfig| {
            let model = PixelArModel::new(config, (28, 28));
            let store = &model.params.store;
            store
                .iter()
                .map(|(_, n, _)| n.to_string())
                .collect::<Vec<_>>()
        };
        assert!(names(&config).iter().all(|n| n.starts_with("net.fc")));
        config.model.get_mut::<PixelArSettings>().local = false;
        assert!(names(&config).contains(&"position.w".to_string()));
    }

    #[test]
    fn a_confident_scale_is_floored() {
        let (mut store, model) = tiny((1, 2), false);
        // The output layer's log-scale column driven far below the floor.
        let last = model.net.layers().last().unwrap();
        store.value_mut(last.b)[[0, 1]] = -50.0;
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let (_, log_scale) = model.outputs(&p, Matrix::zeros((2, 4)), &[0, 1]);
        assert!(log_scale.value().iter().all(|&v| v == MIN_LOG_SCALE));
    }

    #[test]
    fn a_window_reads_and_prints_as_rows_then_half_width() {
        let w: Window = "7,7".parse().unwrap();
        assert_eq!(
            (w, w.len(), w.to_string()),
            (Window::WIDE, 7 * 15 + 7, "7,7".into())
        );
        assert_eq!("0,2".parse::<Window>().unwrap().len(), 2);
        assert_eq!(" 3, 1".parse::<Window>().unwrap().len(), 3 * 3 + 1);
        for bad in ["0,0", "7", "7,", "a,1", "28,1", "1,28", "-1,2", "1,2,3"] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.to_string().contains("ROWS,HALF_WIDTH"), "{bad}: {e}");
        }
    }
}
