//! The VAE of Kingma & Welling (M1): an MLP encoder to (μ, log σ²), reparameterized sampling,
//! an MLP decoder to Bernoulli logits (or a fixed-variance Gaussian mean), loss −ELBO.

use std::fmt;
use std::str::FromStr;

use autodiff::{Matrix, Var, bce_with_logits, gaussian_kl, gaussian_nll, reparameterize};
use nn::{Activation, Bound, Linear, Mlp, MlpConfig, ParamStore};
use rand_chacha::ChaCha8Rng;

use super::Loss;
use crate::dist::standard_normal;

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

impl FromStr for Likelihood {
    type Err = ParseLikelihoodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bernoulli" => Ok(Likelihood::Bernoulli),
            "gaussian" => Ok(Likelihood::Gaussian),
            _ => Err(ParseLikelihoodError(s.to_string())),
        }
    }
}

impl fmt::Display for Likelihood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Likelihood::Bernoulli => "bernoulli",
            Likelihood::Gaussian => "gaussian",
        })
    }
}

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
}

/// Encoder `encoder.fc*` (input → hidden) and `encoder.mu_log_var` (→ [μ | log σ²], 2·latent
/// wide); decoder `decoder.fc*` (latent → hidden reversed → input).
#[derive(Debug, Clone)]
pub struct Vae {
    config: VaeConfig,
    encoder: Mlp,
    mu_log_var: Linear,
    decoder: Mlp,
}

impl Vae {
    /// Adds the parameters to `store`, weights drawn from `rng` (Xavier uniform, zero biases).
    ///
    /// Panics if `config.hidden` is empty or a width is zero.
    #[track_caller]
    pub fn new(store: &mut ParamStore, config: VaeConfig, rng: &mut ChaCha8Rng) -> Self {
        assert!(
            !config.hidden.is_empty(),
            "Vae: needs at least one hidden layer"
        );
        let mut widths = vec![config.input_dim];
        widths.extend(&config.hidden);
        let mut encoder = MlpConfig::new(&widths, config.activation);
        encoder.output = config.activation;
        let encoder = Mlp::new(store, "encoder", &encoder, rng);
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
        Vae {
            config,
            encoder,
            mu_log_var,
            decoder,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// q(z|x): the posterior's mean and log-variance, each batch×latent.
    pub fn encode<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> (Var<'t>, Var<'t>) {
        let stats = self.mu_log_var.forward(p, self.encoder.forward(p, x));
        let l = self.config.latent_dim;
        (stats.slice_cols(0..l), stats.slice_cols(l..2 * l))
    }

    /// p(x|z)'s parameters: Bernoulli logits or the Gaussian mean, batch×input.
    pub fn decode<'t>(&self, p: &Bound<'t>, z: Var<'t>) -> Var<'t> {
        self.decoder.forward(p, z)
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

    /// The decoder's output as a picture in [0, 1]: Bernoulli means σ(logits), or the Gaussian
    /// mean clamped.
    pub fn mean_image(&self, decoded: &Matrix) -> Matrix {
        match self.config.likelihood {
            Likelihood::Bernoulli => decoded.mapv(|l| 1.0 / (1.0 + (-l).exp())),
            Likelihood::Gaussian => decoded.mapv(|m| m.clamp(0.0, 1.0)),
        }
    }

    /// The negative ELBO of `x` (batch×input) with one reparameterized sample per example:
    /// `recon + β·kl` averaged over the batch, with the parts `recon`, `kl` and `elbo`
    /// (`-(recon + kl)`, whatever β) per example.
    pub fn loss<'t>(&self, p: &Bound<'t>, x: Var<'t>, rng: &mut ChaCha8Rng) -> Loss<'t> {
        let (mu, log_var) = self.encode(p, x);
        let eps = standard_normal(rng, mu.shape());
        let z = reparameterize(mu, log_var, &eps);
        let recon = self.recon(self.decode(p, z), x);
        let kl = gaussian_kl(mu, log_var);
        let objective = if self.config.beta == 1.0 {
            recon + kl
        } else {
            recon + kl * self.config.beta
        };
        Loss::new(objective.mean_rows(), [("recon", recon), ("kl", kl)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

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
                    vae.loss(&p, x, &mut ChaCha8Rng::seed_from_u64(9)).loss
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
        let out = vae.loss(&p, x, &mut ChaCha8Rng::seed_from_u64(1));
        let m = out.metrics();
        let (recon, kl) = (m.part("recon").unwrap(), m.part("kl").unwrap());
        assert!((m.loss - (recon + kl)).abs() < 1e-5, "{m:?}");
        assert!(kl >= 0.0 && recon > 0.0);
    }
}
