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
//! ([`prior`](super::prior)): so the model samples, and `−log p(z) − log p(x | z)` at
//! the image's own code bounds `−log p(x)` from above.
//!
//! This file holds the networks and the codebook; [`model`](super::model) is the run's glue.

use std::rc::Rc;

use autodiff::gemm::gemm;
use autodiff::{Matrix, Tape, Var, bce_with_logits, mse, straight_through};
use ndarray::Axis;
use nn::{Activation, Bound, Linear, Mlp, MlpConfig, ParamId, ParamStore};
use rand::Rng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;

use crate::models::Likelihood;
use crate::train::Loss;

/// The decay γ of the codebook's moving averages (the paper's appendix A.1).
pub const EMA_DECAY: f32 = 0.99;

/// The Laplace smoothing ε of the moving averages' code counts (as in sonnet).
pub const EMA_EPSILON: f32 = 1e-5;

/// How the codebook learns (`--codebook-update`). The run's default is `Ema`, which gave a lower
/// reconstruction term and rate than `Loss` at K = 64 and K = 512 (docs/vqvae.md).
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
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
            let beta = vq.config().commitment;
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
}
