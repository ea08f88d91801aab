//! Layers, initialisers, optimizers and checkpoints on the autodiff tape.
#![warn(missing_docs)]

pub use autodiff;
