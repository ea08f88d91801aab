//! Layers, initialisers, optimizers and checkpoints on the autodiff tape.
//!
//! A model's parameters live in a [`ParamStore`] under dotted names; layers ([`Linear`],
//! [`Mlp`]) hold [`ParamId`]s. One training step binds the store to a fresh tape, runs the
//! forward and backward passes, drops the tape and lets an [`Optimizer`] update the store in place:
//!
//! ```
//! use nn::{Activation, Adam, AdamConfig, Mlp, MlpConfig, Optimizer, ParamStore};
//! use nn::autodiff::{Tape, ndarray::array};
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let mlp = Mlp::new(&mut store, "net", &MlpConfig::new(&[2, 4, 1], Activation::Tanh), &mut rng);
//! let mut opt = Adam::new(&store, AdamConfig::default());
//! let (loss, grads) = {
//!     let tape = Tape::new();
//!     let p = store.bind(&tape);
//!     let y = mlp.forward(&p, p.constant(array![[0.0f32, 1.0]]));
//!     let loss = y.square().mean();
//!     (loss.item(), p.grads(tape.backward(loss)))
//! };                                   // the tape is dropped before the update
//! opt.step(&mut store, &grads);
//! assert!(loss.is_finite());
//! ```
#![warn(missing_docs)]

mod activation;
mod bound;
pub mod checkpoint;
mod dropout;
mod grads;
mod init;
mod linear;
mod mlp;
mod norm;
pub mod optim;
mod param;

pub use activation::{Activation, ParseActivationError};
pub use autodiff;
pub use bound::Bound;
pub use dropout::{Dropout, Mode};
pub use grads::ParamGrads;
pub use init::Init;
pub use linear::Linear;
pub use mlp::{Mlp, MlpConfig};
pub use norm::{BatchNorm1d, BatchNormConfig, Stats};
pub use optim::{
    Adam, AdamConfig, Optimizer, OptimizerState, Rmsprop, RmspropConfig, Schedule, Sgd, SgdConfig,
    StateError, clip_grad_norm, clip_weights,
};
pub use param::{ParamId, ParamStore};
