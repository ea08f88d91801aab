//! The settings of `--model gan` and `--model wgan` and their checks.

use serde::{Deserialize, Serialize};

use super::net::GanLoss;
use crate::model::{RunConfig, Settings, by_str, check_hidden, positive};

/// The generator of both GANs, and the samples scored every epoch.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GanNet {
    /// The generator's hidden widths, comma-separated.
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "128,256,512,1024")]
    pub hidden: Vec<usize>,
    /// Dimensions of the noise z.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 100)]
    pub latent_dim: usize,
    /// Samples scored every epoch by the sample-quality yardstick's reference classifier
    /// (trained once into `reference-classifier-<dataset>` beside the run's directory); 0: none.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub quality_samples: usize,
}

impl GanNet {
    /// The checks of both GANs: the generator's widths, and what the shared flags may be.
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if self.latent_dim == 0 {
            return Err("--latent-dim must be at least 1".into());
        }
        if config.optimizer.weight_decay != 0.0 {
            return Err(format!(
                "--weight-decay is Adam's L2 penalty of the VAE family; model {} trains \
                 without one",
                config.kind()
            ));
        }
        if config.optimizer.batch_size < 2 {
            return Err(format!(
                "--batch-size {}: the generator's batch normalization needs at least 2 images a \
                 batch",
                config.optimizer.batch_size
            ));
        }
        Ok(())
    }
}

/// `--model gan`: the generator, the generator's loss, and minibatch discrimination.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model gan")]
pub struct GanSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: GanNet,
    /// The generator's loss: non-saturating (−ln D(G(z))) or minimax (ln(1 − D(G(z)))).
    #[arg(long, default_value_t = GanLoss::NonSaturating)]
    #[serde(with = "by_str")]
    pub gan_loss: GanLoss,
    /// Minibatch discrimination in the discriminator (100 kernels of 5 dimensions).
    #[arg(long)]
    pub minibatch_discrimination: bool,
}

impl Settings for GanSettings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.net.check(config)
    }

    fn wants_reference(&self) -> bool {
        self.net.quality_samples > 0
    }
}

/// `--model wgan`: the generator (the critic and its clipping are the paper's).
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model wgan")]
pub struct WganSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: GanNet,
}

impl Settings for WganSettings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.net.check(config)
    }

    fn wants_reference(&self) -> bool {
        self.net.quality_samples > 0
    }
}
