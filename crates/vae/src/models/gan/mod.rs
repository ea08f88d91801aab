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
pub use settings::{GAN, GanNet, GanSettings, WGAN, WganSettings};
