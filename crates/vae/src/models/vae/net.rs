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

use ndarray::ArrayView2;

use crate::random::{Draws, Purpose};
use crate::train::Loss;

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
