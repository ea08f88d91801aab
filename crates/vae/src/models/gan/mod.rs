//! Generative adversarial networks: `--model gan`, the MLP GAN of PyTorch-GAN's `gan.py`
//! (Goodfellow et al. 2014), optionally with minibatch discrimination (Salimans et al. 2016),
//! and `--model wgan`, the Wasserstein GAN (Arjovsky et al. 2017) with the same generator and a
//! weight-clipped critic: their networks and game ([`net`]), their settings ([`settings`]) and
//! the run's glue ([`model`]).

pub mod model;
pub mod net;
pub mod settings;

pub use model::GanModel;
pub use net::{
    D_HIDDEN, Discriminator, G_BATCH_NORM, GAN_BETA1, Game, GanLoss, Generator, MINIBATCH_DIMS,
    MINIBATCH_KERNELS, N_CRITIC, ParseGanLossError, WGAN_CLIP, critic_steps,
};
pub use settings::{GanNet, GanSettings, WganSettings};

use crate::data::Binarize;
use crate::model::{ModelEntry, Schema, all_images, keep};

/// `--model gan` in the registry.
pub const GAN: ModelEntry = ModelEntry {
    name: "gan",
    about: "the MLP GAN of PyTorch-GAN's gan.py, non-saturating or minimax loss",
    schema: Schema::of::<GanSettings>(),
    binarize: Binarize::None,
    defaults: |c| {
        c.optimizer.batch_size = 64;
        c.optimizer.lr = 2e-4;
    },
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(GanModel::new(config, build)),
};

/// `--model wgan` in the registry.
pub const WGAN: ModelEntry = ModelEntry {
    name: "wgan",
    about: "the Wasserstein GAN: gan's generator, a weight-clipped critic, RMSProp",
    schema: Schema::of::<WganSettings>(),
    binarize: Binarize::None,
    defaults: |c| {
        c.optimizer.batch_size = 64;
        c.optimizer.lr = 5e-5;
    },
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(GanModel::new(config, build)),
};
