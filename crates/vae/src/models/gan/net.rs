//! Generative adversarial networks: `--model gan`, the MLP GAN of PyTorch-GAN's `gan.py`
//! (Goodfellow et al. 2014), optionally with minibatch discrimination (Salimans et al. 2016),
//! and `--model wgan`, the Wasserstein GAN (Arjovsky et al. 2017) with the same generator and a
//! weight-clipped critic.
//!
//! A generator G maps noise z ~ N(0, I) to an image in [−1, 1] (the data are scaled to match);
//! a discriminator D scores images. Each owns its parameters and its optimizer, and a batch
//! takes one step of each, top to bottom: G's step with D frozen, then D's step on the same
//! generated images, detached.
//!
//! This file holds the networks and the game; [`model`](super::model) is the run's glue.

use autodiff::{Matrix, Tape, Var, concat_cols, minibatch_discrimination};
use ndarray::s;
use nn::{BatchNorm1d, BatchNormConfig, Bound, Init, Linear, ParamId, ParamStore, Stats};
use rand_chacha::ChaCha8Rng;

/// Rows per forward pass of the generator's evaluation.
const CHUNK_ROWS: usize = 4096;

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

    /// Whether it has minibatch discrimination features (its logits then depend on the
    /// batch).
    pub fn has_minibatch(&self) -> bool {
        self.minibatch.is_some()
    }

    /// The logits of the rows of `x` (in [−1, 1]), a chunk at a time (without minibatch
    /// discrimination a row's logit is its own; with it, each chunk is a batch).
    pub fn logits(&self, params: &ParamStore, x: &Matrix, chunk: usize) -> Vec<f32> {
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
