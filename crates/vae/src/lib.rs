//! Variational autoencoders: data, models, losses, training and evaluation.
#![warn(missing_docs)]

pub mod chart;
pub mod commands;
pub mod data;
pub mod dist;
pub mod error;
pub mod eval;
pub mod image;
pub mod model;
pub mod models;
pub mod parallel;
pub mod random;
pub mod run;
pub mod train;

pub use autodiff;
pub use nn;
