//! The models. Each is one file: its config, its constructor, its loss.

mod completion;
mod cvae;
mod m2;
mod vae;

pub use completion::{Completion, Mask, Observe, ParseObserveError, Regressor};
pub use cvae::{CLASSES, Cvae, one_hot};
pub use m2::{Counts, M2, PAPER_ALPHA, Unlabeled};
pub use vae::{Likelihood, ParseLikelihoodError, Prior, Vae, VaeConfig, bernoulli_means};

use std::fmt;
use std::str::FromStr;

use autodiff::Var;

/// Which model a run trains (`--model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// The VAE (M1).
    #[default]
    Vae,
    /// The VAE conditioned on the label.
    Cvae,
    /// The completion CVAE: the unobserved pixels given the observed ones.
    Completion,
    /// The deterministic completion baseline.
    Regressor,
    /// Semi-supervised M2.
    M2,
}

/// An unknown `--model` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}` (expected vae, cvae, completion, regressor or m2)")]
pub struct ParseModelKindError(pub String);

impl ModelKind {
    /// Every kind, in the order the help lists them.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Vae,
        ModelKind::Cvae,
        ModelKind::Completion,
        ModelKind::Regressor,
        ModelKind::M2,
    ];

    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
            ModelKind::Cvae => "cvae",
            ModelKind::Completion => "completion",
            ModelKind::Regressor => "regressor",
            ModelKind::M2 => "m2",
        }
    }
}

impl FromStr for ModelKind {
    type Err = ParseModelKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ParseModelKindError(s.to_string()))
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model's loss on one batch, with the named per-example parts it is made of.
pub struct Loss<'t> {
    /// The scalar (1×1) that training minimises.
    pub loss: Var<'t>,
    /// Per-example (m×1) parts, e.g. `("recon", …)`, `("kl", …)`.
    pub parts: Vec<(&'static str, Var<'t>)>,
}

impl<'t> Loss<'t> {
    /// A loss and its named parts.
    pub fn new(loss: Var<'t>, parts: impl IntoIterator<Item = (&'static str, Var<'t>)>) -> Self {
        Loss {
            loss,
            parts: parts.into_iter().collect(),
        }
    }

    /// The per-example part named `name`, if the model reports one.
    pub fn part(&self, name: &str) -> Option<Var<'t>> {
        self.parts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The loss and the batch mean of each part, as numbers.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            loss: f64::from(self.loss.item()),
            parts: self
                .parts
                .iter()
                .map(|&(name, v)| (name, f64::from(v.value().mean().unwrap_or(0.0))))
                .collect(),
        }
    }
}

/// Numbers of one batch (or averages over many).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// The training loss.
    pub loss: f64,
    /// Means of the named parts.
    pub parts: Vec<(&'static str, f64)>,
}

impl Metrics {
    /// The part called `name`.
    pub fn part(&self, name: &str) -> Option<f64> {
        self.parts.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

/// A running example-weighted mean of [`Metrics`].
#[derive(Debug, Clone, Default)]
pub struct MetricsMean {
    sum: Metrics,
    count: usize,
}

impl MetricsMean {
    /// Adds the metrics of a batch of `examples` examples.
    pub fn add(&mut self, m: &Metrics, examples: usize) {
        let w = examples as f64;
        if self.count == 0 {
            self.sum = Metrics {
                loss: 0.0,
                parts: m.parts.iter().map(|&(n, _)| (n, 0.0)).collect(),
            };
        }
        self.sum.loss += w * m.loss;
        for ((_, total), &(_, v)) in self.sum.parts.iter_mut().zip(&m.parts) {
            *total += w * v;
        }
        self.count += examples;
    }

    /// The mean so far.
    pub fn mean(&self) -> Metrics {
        let n = self.count.max(1) as f64;
        Metrics {
            loss: self.sum.loss / n,
            parts: self.sum.parts.iter().map(|&(k, v)| (k, v / n)).collect(),
        }
    }
}

/// A tiny configuration for tests: `input_dim` pixels, one tanh hidden layer of 5, Bernoulli,
/// no condition.
#[cfg(test)]
pub(crate) fn tiny_config(input_dim: usize, latent_dim: usize) -> VaeConfig {
    VaeConfig {
        input_dim,
        hidden: vec![5],
        latent_dim,
        activation: nn::Activation::Tanh,
        likelihood: Likelihood::Bernoulli,
        beta: 1.0,
        cond_dim: 0,
        prior: Prior::Standard,
    }
}

/// A tiny VAE for tests ([`tiny_config`] with `likelihood`), seeded weights.
#[cfg(test)]
pub(crate) fn tiny_vae(
    input_dim: usize,
    latent_dim: usize,
    likelihood: Likelihood,
) -> (nn::ParamStore, Vae) {
    use rand::SeedableRng;
    let mut store = nn::ParamStore::new();
    let config = VaeConfig {
        likelihood,
        ..tiny_config(input_dim, latent_dim)
    };
    let vae = Vae::new(
        &mut store,
        config,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
    );
    (store, vae)
}
