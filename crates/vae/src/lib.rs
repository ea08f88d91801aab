//! Variational autoencoders: data, models, losses, training and evaluation.
#![warn(missing_docs)]

pub use nn;
