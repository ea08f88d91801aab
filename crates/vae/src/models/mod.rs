//! The models. Each is one file: its settings, its constructor, its loss, and the
//! [`RunModel`](crate::model::RunModel) that a run trains, with its [`ModelEntry`]; [`MODELS`]
//! lists the entries.

/// `FromStr` and `Display` of a setting's enum from one table of its variants and their
/// spellings on the command line (and in checkpoints); an unknown spelling is `$error(s)`.
macro_rules! spelled {
    ($kind:ident, $error:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl std::str::FromStr for $kind {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($kind::$variant),)+
                    _ => Err($error(s.to_string())),
                }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self {
                    $($kind::$variant => $name,)+
                })
            }
        }
    };
}

mod ae;
mod classifier;
mod dae;
pub mod gan;
pub mod pixel_ar;
pub mod report;
pub mod vae;
pub mod vqvae;

pub use crate::data::{CLASSES, one_hot};
pub use ae::{AeConfig, AeModel, AeNet, AeSettings, Autoencoder};
pub use classifier::{Classifier, ClassifierModel, ClassifierSettings, predictions};
pub use dae::DaeSettings;
pub use gan::{
    D_HIDDEN, Discriminator, G_BATCH_NORM, GAN_BETA1, Game, GanLoss, GanModel, GanNet, GanSettings,
    Generator, MINIBATCH_DIMS, MINIBATCH_KERNELS, N_CRITIC, ParseGanLossError, WGAN_CLIP,
    WganSettings, critic_steps,
};
pub use pixel_ar::{
    LEVELS, MIN_LOG_SCALE, PixelAr, PixelArConfig, PixelArModel, PixelArSettings, Window,
};
pub use vae::{
    Completion, CompletionModel, CompletionSettings, Counts, Cvae, CvaeModel, CvaeSettings,
    Likelihood, M2, M2Model, M2Settings, Mask, Observe, PAPER_ALPHA, ParseLikelihoodError,
    ParseObserveError, Prior, Regressor, RegressorModel, RegressorSettings, Unlabeled, Vae,
    VaeConfig, VaeModel, VaeNet, VaeSettings, balanced_subset, bernoulli_means,
};
pub use vqvae::{
    Codebook, CodebookUpdate, EMA_DECAY, EMA_EPSILON, Evaluation, PRIOR_FIT,
    ParseCodebookUpdateError, Quantized, Usage, VqConfig, VqVae, VqVaeModel, VqVaeSettings,
    nearest, squared_distances,
};

use crate::model::{ModelEntry, ModelKind};

/// Every model `--model` can name, in the order the help lists them: one line per model.
pub static MODELS: &[&ModelEntry] = &[
    &vae::model::MODEL,
    &vae::cvae::MODEL,
    &vae::completion::MODEL,
    &vae::completion::REGRESSOR,
    &vae::m2::MODEL,
    &ae::MODEL,
    &dae::MODEL,
    &vqvae::MODEL,
    &pixel_ar::MODEL,
    &gan::GAN,
    &gan::WGAN,
    &classifier::MODEL,
];

/// The ranges `0..size`, `size..2·size`, … covering `0..n`: the row chunks of an evaluation
/// that bounds its memory.
pub(crate) fn row_chunks(n: usize, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(size).map(move |s| s..(s + size).min(n))
}

/// Every model, in the registry's order.
pub fn all() -> impl Iterator<Item = ModelKind> {
    MODELS.iter().map(|&e| ModelKind(e))
}

/// The model `--model NAME` names.
pub fn kind(name: &str) -> Result<ModelKind, ParseModelKindError> {
    all()
        .find(|k| k.name() == name)
        .ok_or_else(|| ParseModelKindError(name.to_string()))
}

/// The model of a run that names none: the VAE, the registry's first.
pub fn default_kind() -> ModelKind {
    ModelKind(MODELS[0])
}

/// An unknown `--model` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}` (expected {names})", names = names())]
pub struct ParseModelKindError(pub String);

/// `vae, cvae, ... or m2`: every registered name.
fn names() -> String {
    let names: Vec<&str> = MODELS.iter().map(|e| e.name).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
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

/// The defaults of `kind` with tiny networks for tests: hidden width 3, latent dimension 2,
/// 10 labels (where the model has those settings).
#[cfg(test)]
pub(crate) fn tiny_run(kind: ModelKind) -> crate::model::RunConfig {
    let mut config = crate::model::RunConfig::for_model(kind);
    for (key, value) in [("hidden", "3"), ("latent_dim", "2"), ("labels", "10")] {
        if config.model.has(key) {
            config.model.set(key, value).unwrap();
        }
    }
    config
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn every_registered_name_is_unique_and_parses_back() {
        let names: Vec<&str> = all().map(ModelKind::name).collect();
        assert_eq!(
            names,
            [
                "vae",
                "cvae",
                "completion",
                "regressor",
                "m2",
                "ae",
                "dae",
                "vqvae",
                "pixel-ar",
                "gan",
                "wgan",
                "classifier"
            ]
        );
        for kind in all() {
            assert_eq!(super::kind(kind.name()), Ok(kind));
        }
        assert_eq!(default_kind().name(), "vae");
        let err = super::kind("gn").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown model `gn` (expected vae, cvae, completion, regressor, m2, ae, dae, vqvae, \
             pixel-ar, gan, wgan or classifier)"
        );
    }

    #[test]
    fn each_model_reports_as_many_values_as_it_has_columns() {
        use crate::data::{Binarize, Split};
        use crate::model::{Epoch, TestData};
        // 20 random 4×4 images of the ten labels.
        let pixels: Vec<u8> = (0..20 * 16).map(|i| ((i * 37) % 256) as u8).collect();
        let labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
        let split = Split::new(pixels, labels, (4, 4));
        for kind in all() {
            let mut config = tiny_run(kind);
            config.optimizer.batch_size = 8;
            config.data.binarize = Binarize::Static;
            let mut model = (kind.entry().build)(&config, &crate::model::Build::of((4, 4)));
            let columns = model.columns();
            let data = (kind.entry().data)(&config, split.clone()).unwrap();
            let mut steps = 0;
            let train = model.train_epoch(
                &data,
                &mut Epoch {
                    keys: crate::random::Keys::epoch(0, 1),
                    world: &crate::parallel::Alone,
                    batch_size: 8,
                    on_batch: &mut |_| {
                        steps += 1;
                        std::ops::ControlFlow::Continue(())
                    },
                },
            );
            assert!(train.names().eq(columns.train.iter().copied()), "{kind}");
            assert_eq!(steps, data.batches(8), "{kind}");
            let keys = crate::random::Keys::evaluation(0);
            let test = model.test(&TestData::new(split.clone()), keys);
            assert!(test.names().eq(columns.test.iter().copied()), "{kind}");
            assert!(
                train.values().chain(test.values()).all(f64::is_finite),
                "{kind}"
            );
            let fitted = model.after_training(
                &data,
                &mut crate::model::AfterTraining {
                    note: &mut |_| {},
                    on_step: &mut || std::ops::ControlFlow::Continue(()),
                },
            );
            assert!(fitted.is_continue(), "{kind}");
            let scores = model.abilities().score.is_some();
            assert_eq!(scores, kind.entry().scores, "{kind}: ModelEntry::scores");
        }
    }
}
