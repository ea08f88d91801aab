//! The denoising autoencoder of Vincent et al. (2010): the [`Autoencoder`] given a corrupted
//! image ([`Noise`]), trained to reconstruct the clean one.
//!
//! [`Autoencoder`]: super::Autoencoder

use serde::{Deserialize, Serialize};

use super::ae::{AeModel, AeNet};
use crate::data::{Binarize, Noise, NoiseKind};
use crate::model::{ModelEntry, RunConfig, Schema, Settings, all_images, by_str, keep};

/// `--model dae`: the autoencoder's network and the corruption of its input.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model dae")]
pub struct DaeSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: AeNet,
    /// How the input is corrupted: mask, salt-pepper or gaussian.
    #[arg(long, default_value = "mask")]
    #[serde(with = "by_str")]
    pub noise: NoiseKind,
    /// The fraction of pixels masked or salt-and-peppered, in [0, 1], or the Gaussian's σ
    /// [default: 0.25, 0.25, 0.5].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::model::short_f32::option"
    )]
    pub noise_level: Option<f32>,
}

impl DaeSettings {
    /// The noise it trains with: `--noise` at `--noise-level` (or the kind's default level).
    pub fn noise(&self) -> Result<Noise, String> {
        (self.noise).at(self.noise_level.unwrap_or(self.noise.default_level()))
    }
}

impl Settings for DaeSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        self.net.check()?;
        self.noise().map(|_| ())
    }
}

/// `--model dae` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "dae",
    about: "the denoising autoencoder of Vincent et al. (--noise, --noise-level)",
    schema: Schema::of::<DaeSettings>(),
    binarize: Binarize::None,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(denoising(config, build.shape)),
};

/// The denoising autoencoder of `config` for images of `shape`.
fn denoising(config: &RunConfig, shape: (usize, usize)) -> AeModel {
    let settings: &DaeSettings = config.settings();
    let noise = settings
        .noise()
        .expect("the model's check accepted the level");
    AeModel::with_noise(config, settings.net.config(shape), Some(noise))
}
